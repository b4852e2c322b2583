"""``configure()`` and the configuration in force.

A :class:`Config` is immutable and holds everything the per-event path needs, prepared once: the writer and
its delivery settings, the privacy settings with their key, the trusted proxies, the metrics backend. Every
``configure()`` call builds a whole new one (unspecified arguments come from the environment, then from the
defaults) and swaps it in atomically, so an event is always written under one consistent configuration.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Final

from ._bridges import build_bridges
from ._client_ip import TrustedProxies
from ._delivery import DEFAULT_BLOCK_TIMEOUT, DEFAULT_QUEUE_SIZE, DELIVERY_MODES, OVERFLOW_POLICIES
from ._errors import ConfigurationError, warn_once
from ._metrics import METRIC_BACKENDS, MetricsBackend, NoMetrics, create_backend
from ._output import OUTPUT_NAMES, Target, make_writer
from ._privacy import Privacy

__all__ = ["Config", "configure", "get_config", "set_config"]

_UNSET: Final[Any] = object()
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


Bridge = Callable[[Any, dict[str, Any]], None]
"""Called after a record is written with its catalog row and the record (see ``_pipeline``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The configuration in force. Build it with :func:`configure`; read it with :func:`get_config`."""

    service: str | None = None
    env: str | None = None
    version: str | None = None
    strict: bool = False
    output: Any = "stdout"
    privacy: Privacy = field(default_factory=lambda: Privacy(None, None))
    trusted_proxies: TrustedProxies | None = None
    metrics: MetricsBackend | None = None
    metrics_name: str = "none"
    appsec_tracking: bool = True
    otel_span_events: bool = True
    bridges: tuple[Bridge, ...] = ()
    writer: Target = field(default_factory=lambda: make_writer(None))
    delivery: str = "queue"
    queue_size: int = DEFAULT_QUEUE_SIZE
    overflow: str = "drop"
    block_timeout: float = DEFAULT_BLOCK_TIMEOUT
    static: Mapping[str, Any] = field(default_factory=dict)
    """The keys every record starts with (service, env, version), built once."""


_lock = threading.Lock()
_current: Config | None = None
_overlay: Callable[[Config], Config] | None = None
"""Applied to every configuration installed while set (``testing.capture_events`` keeps its in-memory output
and strict mode through ``configure()`` calls made by the code under test)."""


def set_overlay(overlay: Callable[[Config], Config] | None) -> None:
    """Install (or with ``None`` remove) the overlay applied to every configuration installed from now on."""
    global _overlay  # noqa: PLW0603 - one process-wide hook, for the testing helpers
    _overlay = overlay


def get_config() -> Config:
    """Return the configuration in force, building the default (from the environment) on first use."""
    cfg = _current
    if cfg is None:
        with _lock:
            cfg = _current if _current is not None else _install(_build())
    return cfg


def get_config_for_event() -> Config:
    """:func:`get_config` for the per-event path, which must not raise into product code.

    If the default configuration cannot be built from the environment (a bad ``SECEVENTS_*`` variable, say),
    a safe fallback is installed instead (stdout, no metrics, the hash key if it is usable) and a
    :class:`SecEventsWarning` names the problem once. Strict mode (``SECEVENTS_STRICT=1``) raises instead.
    ``configure()`` itself always raises for bad settings.
    """
    cfg = _current
    if cfg is not None:
        return cfg
    try:
        return get_config()
    except ConfigurationError as exc:
        if os.environ.get("SECEVENTS_STRICT", "").strip().lower() in _TRUE:
            raise
        warn_once(
            "fallback-config",
            f"graffer_secevents: the configuration from the environment is invalid ({exc}); security events "
            "are written to stdout with default settings until configure() succeeds",
        )
        privacy = Privacy(None, os.environ.get("SECEVENTS_HASH_KEY") or None)
        fallback = Config(privacy=privacy, writer=make_writer(None))
        with _lock:
            return _current if _current is not None else _install(fallback)


def set_config(cfg: Config | None) -> Config | None:
    """Swap in ``cfg`` (``None``: rebuild from the environment on next use); return the previous one."""
    global _current
    with _lock:
        if cfg is not None and _overlay is not None:
            cfg = _overlay(cfg)
        previous, _current = _current, cfg
    return previous


def _install(cfg: Config) -> Config:
    global _current  # noqa: PLW0603 - installed once, under the lock
    if _overlay is not None:
        cfg = _overlay(cfg)
    _current = cfg
    return cfg


def configure(
    *,
    service: str | None = _UNSET,
    env: str | None = _UNSET,
    version: str | None = _UNSET,
    output: str | IO[Any] | Any = _UNSET,
    strict: bool = _UNSET,
    privacy: Mapping[str, str] | None = _UNSET,
    hash_key: str | bytes | None = _UNSET,
    trusted_proxies: Iterable[str] | str | None = _UNSET,
    trusted_hops: int | None = _UNSET,
    metrics: str = _UNSET,
    appsec_tracking: bool = _UNSET,
    otel_span_events: bool = _UNSET,
    delivery: str = _UNSET,
    queue_size: int = _UNSET,
    overflow: str = _UNSET,
    block_timeout: float = _UNSET,
) -> Config:
    """Configure the library for this process. Every argument is optional; call it once at start-up.

    Args:
        service, env, version: Datadog's unified service tags; default ``DD_SERVICE``, ``DD_ENV``,
            ``DD_VERSION``.
        output: ``"stdout"`` (default), ``"stderr"``, ``"logging"`` (the stdlib logger ``graffer_secevents``),
            ``"structlog"`` (the application's structlog chain), a :class:`logging.Logger`, or any file-like
            object with ``write`` (text or binary).
        strict: raise :class:`EventValidationError` for invalid event input instead of coercing it
            (default ``SECEVENTS_STRICT``, else off). Meant for tests.
        privacy: per-field modes overriding the defaults, e.g. ``{"usr.email": "drop",
            "network.client.ip": "truncate"}`` (default ``SECEVENTS_PRIVACY`` as ``field=mode,...``).
        hash_key: HMAC key for hashed fields (default ``SECEVENTS_HASH_KEY``). Without one, hashing falls back
            to plain SHA-256 and a :class:`SecEventsWarning` is given once.
        trusted_proxies: CIDRs of the proxies allowed to set forwarding headers (default
            ``SECEVENTS_TRUSTED_PROXIES``, comma-separated). Without them the peer address is the client.
        trusted_hops: trust exactly this many proxy hops instead (default ``SECEVENTS_TRUSTED_HOPS``).
        metrics: ``"auto"`` (default: DogStatsD when the ``datadog`` package is installed, else none),
            ``"dogstatsd"``, ``"otel"``, ``"memory"`` or ``"none"`` (default ``SECEVENTS_METRICS``).
        appsec_tracking: report user events to ddtrace's App & API Protection when the application has
            imported ddtrace (default ``SECEVENTS_APPSEC_TRACKING``, else on).
        otel_span_events: add a span event per security event to the active OpenTelemetry span, when there is
            one and no ddtrace span (default ``SECEVENTS_OTEL_SPAN_EVENTS``, else on).
        delivery: ``"queue"`` (default: a bounded queue and a writer thread, so a stuck output never blocks
            the caller) or ``"sync"`` (written on the caller's thread) (default ``SECEVENTS_DELIVERY``).
        queue_size: the most records the queue holds (default ``SECEVENTS_QUEUE_SIZE``, else 10,000).
        overflow: when the queue is full, ``"drop"`` the record at once and count it (default) or
            ``"block"`` for up to ``block_timeout`` seconds first (default ``SECEVENTS_OVERFLOW``).
        block_timeout: seconds ``overflow="block"`` waits for room (default ``SECEVENTS_BLOCK_TIMEOUT``,
            else 1.0).

    Raises:
        ConfigurationError: an argument or variable is invalid; the message lists the allowed values.

    Example::

        import graffer_secevents as secevents
        secevents.configure(service="auth-api", trusted_proxies=["10.0.0.0/8"], hash_key=os.environ["KEY"])
    """
    cfg = _build(
        service=service,
        env=env,
        version=version,
        output=output,
        strict=strict,
        privacy=privacy,
        hash_key=hash_key,
        trusted_proxies=trusted_proxies,
        trusted_hops=trusted_hops,
        metrics=metrics,
        appsec_tracking=appsec_tracking,
        otel_span_events=otel_span_events,
        delivery=delivery,
        queue_size=queue_size,
        overflow=overflow,
        block_timeout=block_timeout,
    )
    previous = set_config(cfg)
    if previous is not None and previous.metrics is not None and previous.metrics is not cfg.metrics:
        _close_quietly(previous.metrics)
    return cfg


def _close_quietly(backend: MetricsBackend) -> None:
    try:
        backend.close()
    except Exception:  # noqa: BLE001, S110 - closing the old client must not fail a reconfiguration
        pass


def _build(**given: Any) -> Config:  # noqa: PLR0915 - one flat read of every option, in order

    environ = os.environ

    def pick(name: str, env_name: str | None, default: Any = None) -> Any:
        value = given.get(name, _UNSET)
        if value is not _UNSET:
            return value
        if env_name is not None and env_name in environ:
            return environ[env_name]
        return default

    service = _opt_str("service", pick("service", "DD_SERVICE"))
    env = _opt_str("env", pick("env", "DD_ENV"))
    version = _opt_str("version", pick("version", "DD_VERSION"))
    strict = _bool("strict", pick("strict", "SECEVENTS_STRICT", default=False))
    appsec_tracking = _bool(
        "appsec_tracking", pick("appsec_tracking", "SECEVENTS_APPSEC_TRACKING", default=True)
    )
    otel_span_events = _bool(
        "otel_span_events", pick("otel_span_events", "SECEVENTS_OTEL_SPAN_EVENTS", default=True)
    )

    output = pick("output", "SECEVENTS_OUTPUT", default="stdout")
    if isinstance(output, str) and output not in OUTPUT_NAMES:
        raise ConfigurationError(
            f"output: unknown output {output!r}; allowed: {', '.join(OUTPUT_NAMES)}, a logging.Logger, "
            "or a file-like object with write()"
        )
    if not isinstance(output, str) and not callable(getattr(output, "write", None)):
        import logging

        if not isinstance(output, logging.Logger):
            raise ConfigurationError(
                f"output: {type(output).__name__} has no write(); pass 'stdout', 'stderr', 'logging', "
                "'structlog', a logging.Logger or a file-like object"
            )

    privacy_modes = pick("privacy", "SECEVENTS_PRIVACY")
    if isinstance(privacy_modes, str):
        privacy_modes = _parse_privacy(privacy_modes)
    if privacy_modes is not None and not isinstance(privacy_modes, Mapping):
        raise ConfigurationError("privacy: expected a mapping of field to mode, e.g. {'usr.email': 'drop'}")
    privacy = Privacy(privacy_modes, pick("hash_key", "SECEVENTS_HASH_KEY"))
    if not privacy.keyed and "hash" in privacy.modes.values():
        warn_once(
            "unkeyed-hash",
            "graffer_secevents: no hash_key (SECEVENTS_HASH_KEY) is set, so logins and emails are hashed "
            "with "
            "plain SHA-256, which a dictionary attack can reverse; set a secret key",
        )

    hops = pick("trusted_hops", "SECEVENTS_TRUSTED_HOPS")
    if isinstance(hops, str):
        try:
            hops = int(hops)
        except ValueError:
            raise ConfigurationError(
                f"SECEVENTS_TRUSTED_HOPS: expected a whole number >= 1, got {hops!r}"
            ) from None
    trusted = TrustedProxies.from_config(pick("trusted_proxies", "SECEVENTS_TRUSTED_PROXIES"), hops)

    metrics_name = pick("metrics", "SECEVENTS_METRICS", default="auto")
    if not isinstance(metrics_name, str) or metrics_name not in METRIC_BACKENDS:
        raise ConfigurationError(
            f"metrics: unknown backend {metrics_name!r}; allowed: {', '.join(METRIC_BACKENDS)}"
        )
    backend: MetricsBackend | None = create_backend(metrics_name, service=service, env=env, version=version)
    if isinstance(backend, NoMetrics):
        backend = None  # nothing to count: the per-event path skips metrics entirely

    delivery = _choice("delivery", pick("delivery", "SECEVENTS_DELIVERY", default="queue"), DELIVERY_MODES)
    overflow = _choice("overflow", pick("overflow", "SECEVENTS_OVERFLOW", default="drop"), OVERFLOW_POLICIES)
    queue_size = _number("queue_size", pick("queue_size", "SECEVENTS_QUEUE_SIZE", DEFAULT_QUEUE_SIZE), int)
    block_timeout = _number(
        "block_timeout", pick("block_timeout", "SECEVENTS_BLOCK_TIMEOUT", DEFAULT_BLOCK_TIMEOUT), float
    )

    writer = make_writer(output)
    static: dict[str, Any] = {}
    if service:
        static["service"] = service
    if env:
        static["env"] = env
    if version:
        static["version"] = version
    return Config(
        service=service,
        env=env,
        version=version,
        strict=strict,
        output=output,
        privacy=privacy,
        trusted_proxies=trusted,
        metrics=backend,
        metrics_name=metrics_name,
        appsec_tracking=appsec_tracking,
        otel_span_events=otel_span_events,
        bridges=build_bridges(privacy, appsec_tracking=appsec_tracking, otel_span_events=otel_span_events),
        writer=writer,
        delivery=delivery,
        queue_size=queue_size,
        overflow=overflow,
        block_timeout=block_timeout,
        static=static,
    )


def _opt_str(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{name}: expected a string, got {type(value).__name__}")
    return value


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if isinstance(value, str) and value.strip().lower() in allowed:
        return value.strip().lower()
    raise ConfigurationError(f"{name}: unknown value {value!r}; allowed: {', '.join(allowed)}")


def _number(name: str, value: Any, kind: type[int] | type[float]) -> Any:
    """A positive int or float from an argument or an environment string."""
    given = value
    if isinstance(value, str):
        try:
            value = kind(value.strip())
        except ValueError:
            value = None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    if not ok or (kind is int and not isinstance(value, int)) or value != value:  # noqa: PLR0124 - NaN
        expected = "a whole number >= 1" if kind is int else "a number of seconds > 0"
        raise ConfigurationError(f"{name}: expected {expected}, got {given!r}")
    return kind(value)


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigurationError(
        f"{name}: expected a boolean (or one of 1/0, true/false, yes/no, on/off), got {value!r}"
    )


def _parse_privacy(text: str) -> dict[str, str]:
    modes: dict[str, str] = {}
    for item in text.split(","):
        field_name, sep, mode = item.strip().partition("=")
        if not sep or not field_name or not mode:
            raise ConfigurationError(
                f"SECEVENTS_PRIVACY: expected 'field=mode' entries separated by commas, got {item!r}"
            )
        modes[field_name.strip()] = mode.strip()
    return modes
