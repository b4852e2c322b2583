"""`configure()` and the configuration in force.

Every option is declared once, as a row of `OPTIONS` (name, environment variable, parser, default, doc); the
environment reading, the merging of `configure()` calls, the docs' reference table and the tests that keep
`configure()`'s signature and docs/configuration.md in step all read that table.

A `Config` is immutable and holds everything the per-event path needs, prepared once: the writer and its
delivery settings, the
privacy settings with their key, the trusted proxies, the metrics backend. A `configure()` call changes only
the options it names (the others keep the value in force, as structlog's `configure()` does), builds a
whole new `Config` from the result and swaps it in atomically, so an event is always written under one
consistent configuration. The environment is read when the configuration is first built (the first
`configure()` or the first event) and again on `configure(reset=True)`.

Adding an option: a row in `OPTIONS` (with its parser), the keyword in `configure()`'s signature and its
`Args:` line (type checkers need them spelt out), a ``### `name` `` section in docs/configuration.md, and
the code that uses `values[name]` in `_build`. tests/test_config.py fails until the four agree; the
page's environment table is generated (`_tools/config_doc.py`).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Generator, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, Never, Protocol

from ._bridges import build_bridges
from ._client_ip import TrustedProxies
from ._delivery import (
    DEFAULT_BLOCK_TIMEOUT,
    DEFAULT_QUEUE_BYTES,
    DEFAULT_QUEUE_SIZE,
    DELIVERY_MODES,
    OVERFLOW_POLICIES,
)
from ._errors import ConfigurationError, warn_once
from ._file_output import is_path, open_output
from ._metrics import METRIC_BACKENDS, MetricsBackend, NoMetrics, create_backend
from ._output import OUTPUT_NAMES, Target, is_logger, make_writer
from ._privacy import Privacy

if TYPE_CHECKING:
    import logging  # ~10 ms of import, with traceback and tokenize: only the logging output needs it

__all__ = ["OPTIONS", "Config", "Option", "check_names", "configure", "get_config", "set_config"]

_UNSET: Final[Any] = object()
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


# --- parsers: (label, value) -> the validated value -----------------------------------------------------
# `label` is the option's name for a configure() argument and the variable's name for an environment value,
# so an error names what the user actually set. A parser accepts its own output (a merged configuration
# passes values through it again only when they are named anew, but a parser must never depend on that).


def _opt_str(label: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{label}: expected a string, got {type(value).__name__}")
    return value


def _bool(label: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigurationError(
        f"{label}: expected a boolean (or one of 1/0, true/false, yes/no, on/off), got {value!r}"
    )


def _output(label: str, value: object) -> object:
    if isinstance(value, os.PathLike):
        path: os.PathLike[str] = value  # pyright: ignore[reportUnknownVariableType] - fspath checks it
        value = os.fspath(path)
    if isinstance(value, str):
        if value not in OUTPUT_NAMES and value != "console" and not is_path(value):
            raise ConfigurationError(
                f"{label}: unknown output {value!r}; allowed: {', '.join(OUTPUT_NAMES)}, console, "
                "a file path "
                "(e.g. '/var/log/app/security.log', appended to), a logging.Logger, or a file-like object "
                "with write()"
            )
    elif not is_logger(value) and not callable(getattr(value, "write", None)):
        raise ConfigurationError(
            f"{label}: {type(value).__name__} has no write(); pass 'stdout', 'stderr', 'logging', "
            "'structlog', a logging.Logger or a file-like object"
        )
    return value


def _privacy_modes(label: str, value: object) -> Mapping[str, str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        modes: dict[str, str] = {}
        for item in value.split(","):
            field_name, sep, mode = item.strip().partition("=")
            if not sep or not field_name or not mode:
                raise ConfigurationError(
                    f"{label}: expected 'field=mode' entries separated by commas, got {item!r}"
                )
            modes[field_name.strip()] = mode.strip()
        return MappingProxyType(modes)
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{label}: expected a mapping of field to mode, e.g. {{'usr.email': 'drop'}}"
        )
    given: Mapping[Any, Any] = value  # pyright: ignore[reportUnknownVariableType] - checked by Privacy
    return MappingProxyType(dict(given))  # a copy: a caller's later change to its dict changes nothing here


MIN_HASH_KEY_BYTES: Final = 16
"""The shortest `hash_key` accepted: a shorter key can be found by trying keys against known logins."""
HASH_KEY_HOWTO: Final = (
    "set SECEVENTS_HASH_KEY (or configure(hash_key=...); in Django, settings.SECEVENTS['hash_key']) to a "
    'secret of at least 16 bytes kept in your secret store, e.g. python -c "import secrets; '
    'print(secrets.token_urlsafe(32))"'
)


def _hash_key(label: str, value: object) -> str | bytes | None:
    if value is None:
        return None
    if not isinstance(value, str | bytes):
        raise ConfigurationError(f"{label}: expected a str or bytes key, got {type(value).__name__}")
    size = len(value.encode() if isinstance(value, str) else value)
    if 0 < size < MIN_HASH_KEY_BYTES:  # an empty key: `Privacy` says why it is refused
        raise ConfigurationError(
            f"{label}: the key is {size} bytes; at least {MIN_HASH_KEY_BYTES} are needed, because a short "
            f"key can be found by trying keys against a login anyone knows, which reverses every pseudonym; "
            f"{HASH_KEY_HOWTO}"
        )
    return value


def _integrity_key(label: str, value: object) -> str | bytes | None:
    if value is None:
        return None
    if not isinstance(value, str | bytes):
        raise ConfigurationError(f"{label}: expected a str or bytes key, got {type(value).__name__}")
    size = len(value.encode() if isinstance(value, str) else value)
    if 0 < size < MIN_HASH_KEY_BYTES:
        raise ConfigurationError(
            f"{label}: the key is {size} bytes; at least {MIN_HASH_KEY_BYTES} are needed, because whoever "
            "guesses a short key can forge the records' chain; set SECEVENTS_INTEGRITY_KEY (or "
            "configure(integrity_key=...)) to a secret kept in your secret store, not the hash_key"
        )
    return value


def _proxies(label: str, value: object) -> object:
    # Kept as given but frozen (a generator would be spent by the first build); `TrustedProxies` validates.
    # A string is one CIDR or several, comma-separated (the environment variable's form).
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",")) if value.strip() else None
    if value is None or not isinstance(value, Iterable):
        return value
    entries: Iterable[object] = value  # pyright: ignore[reportUnknownVariableType] - each entry is checked
    return tuple(entries)


def _hops(label: str, value: object) -> object:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise ConfigurationError(f"{label}: expected a whole number >= 1, got {value!r}") from None
    return value  # `TrustedProxies` validates the number


def _metrics_name(label: str, value: object) -> str:
    if not isinstance(value, str) or value not in METRIC_BACKENDS:
        raise ConfigurationError(f"{label}: unknown backend {value!r}; allowed: {', '.join(METRIC_BACKENDS)}")
    return value


def _choice(allowed: tuple[str, ...]) -> Callable[[str, object], str]:
    def parse(label: str, value: object) -> str:
        if isinstance(value, str) and value.strip().lower() in allowed:
            return value.strip().lower()
        raise ConfigurationError(f"{label}: unknown value {value!r}; allowed: {', '.join(allowed)}")

    return parse


def _positive(kind: type[int] | type[float]) -> Callable[[str, object], Any]:
    """A positive int or float, from an argument or an environment string."""

    def parse(label: str, given: object) -> Any:
        value: object = given
        if isinstance(value, str):
            try:
                value = kind(value.strip())
            except ValueError:
                value = None
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        ok = number is not None and number > 0 and number == number  # noqa: PLR0124 - not NaN
        if number is None or not ok or (kind is int and not isinstance(number, int)):
            expected = "a whole number >= 1" if kind is int else "a number of seconds > 0"
            raise ConfigurationError(f"{label}: expected {expected}, got {given!r}")
        return kind(number)

    return parse


@dataclass(frozen=True, slots=True)
class Option:
    """One `configure()` option: where its value comes from and how it is checked.

    Args:
        name: the `configure()` keyword (and the `SECEVENTS` key in Django settings).
        env: the environment variable read when the configuration is first built or reset, if any.
        parse: `(label, value) -> value`: validates a `configure()` argument or an environment string and
            raises `ConfigurationError` naming `label`.
        default: the value when neither an argument nor the variable gives one.
        doc: one line for the reference table in docs/configuration.md.
        example: an example environment value for that table (none for a secret).
    """

    name: str
    env: str | None
    parse: Callable[[str, Any], Any]
    default: Any
    doc: str
    example: str = ""


OPTIONS: Final[tuple[Option, ...]] = (
    Option("service", "DD_SERVICE", _opt_str, None, "Datadog's unified service tag", "auth-api"),
    Option("env", "DD_ENV", _opt_str, None, "Datadog's unified environment tag", "prod"),
    Option("version", "DD_VERSION", _opt_str, None, "Datadog's unified version tag", "1.4.2"),
    Option("output", "SECEVENTS_OUTPUT", _output, "stdout", "where records go", "stderr"),
    Option("strict", "SECEVENTS_STRICT", _bool, False, "raise for invalid event input (tests)", "1"),
    Option(
        "privacy",
        "SECEVENTS_PRIVACY",
        _privacy_modes,
        None,
        "per-field privacy modes",
        "usr.email=drop,network.client.ip=truncate",
    ),
    Option("hash_key", "SECEVENTS_HASH_KEY", _hash_key, None, "HMAC key of hashed fields"),
    Option(
        "trusted_proxies",
        "SECEVENTS_TRUSTED_PROXIES",
        _proxies,
        None,
        "proxies allowed to set forwarding headers",
        "10.0.0.0/8,172.16.0.0/12",
    ),
    Option("trusted_hops", "SECEVENTS_TRUSTED_HOPS", _hops, None, "trust this many proxy hops", "1"),
    Option("metrics", "SECEVENTS_METRICS", _metrics_name, "auto", "the metrics backend", "dogstatsd"),
    Option(
        "appsec_tracking",
        "SECEVENTS_APPSEC_TRACKING",
        _bool,
        True,
        "report user events to ddtrace's App and API Protection",
        "false",
    ),
    Option(
        "otel_span_events",
        "SECEVENTS_OTEL_SPAN_EVENTS",
        _bool,
        True,
        "add a span event per security event to the active OpenTelemetry span",
        "false",
    ),
    Option(
        "delivery",
        "SECEVENTS_DELIVERY",
        _choice(DELIVERY_MODES),
        "queue",
        "a writer thread behind a bounded queue, or written on the caller's thread",
        "sync",
    ),
    Option(
        "queue_size",
        "SECEVENTS_QUEUE_SIZE",
        _positive(int),
        DEFAULT_QUEUE_SIZE,
        "records the queue holds",
        "50000",
    ),
    Option(
        "overflow",
        "SECEVENTS_OVERFLOW",
        _choice(OVERFLOW_POLICIES),
        "drop",
        "when the queue is full: drop and count, or block",
        "block",
    ),
    Option(
        "block_timeout",
        "SECEVENTS_BLOCK_TIMEOUT",
        _positive(float),
        DEFAULT_BLOCK_TIMEOUT,
        "seconds overflow='block' waits for room",
        "0.5",
    ),
    Option(
        "queue_bytes",
        "SECEVENTS_QUEUE_BYTES",
        _positive(int),
        DEFAULT_QUEUE_BYTES,
        "bytes the queue holds",
        "8388608",
    ),
    Option(
        "integrity_key", "SECEVENTS_INTEGRITY_KEY", _integrity_key, None, "HMAC key of the records' chain"
    ),
)
"""Every `configure()` option, in the signature's order."""

_BY_NAME: Final[Mapping[str, Option]] = {opt.name: opt for opt in OPTIONS}
_DEFAULTS: Final[Mapping[str, Any]] = MappingProxyType({opt.name: opt.default for opt in OPTIONS})


def check_names(names: Iterable[str], allowed: Iterable[str], where: str) -> None:
    """Raise `ConfigurationError` for the first name not in `allowed`, suggesting the nearest valid one.

    Args:
        names: the keys the user wrote.
        allowed: the valid keys.
        where: what the keys belong to, for the message (`"configure()"`, `"settings.SECEVENTS"`).

    Raises:
        ConfigurationError: a key is unknown; the message names it and the nearest valid key, if any.
    """
    valid = list(allowed)
    for name in names:
        if name not in valid:
            import difflib  # only on this error path: not part of `import graffer_secevents`

            near = difflib.get_close_matches(name, valid, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigurationError(
                f"{where}: unknown option {name!r}{hint} (valid: {', '.join(sorted(valid))})"
            )


class Writable(Protocol):
    """What `configure(output=...)` accepts besides a name or a logger: anything with `write`."""

    def write(self, data: Any, /) -> object:
        """Write one record (text or bytes)."""
        ...


Bridge = Callable[[Any, dict[str, Any]], None]
"""Called after a record is written with its catalog row and the record (see `_pipeline`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The configuration in force. Build it with `configure`; read it with `get_config`.

    `options` holds every option's value (one key per row of the options table, the names `configure()`
    takes); the other fields are what the per-event path uses, prepared from them.
    """

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
    queue_bytes: int = DEFAULT_QUEUE_BYTES
    integrity_key: bytes | None = field(default=None, repr=False)
    """The HMAC key of `secevents.chain` (docs/delivery.md), as bytes; `None`: no chain."""
    static: Mapping[str, Any] = field(default_factory=dict[str, Any])
    """The keys every record starts with (service, env, version), built once. A plain `dict` behind a
    read-only type: spreading a `MappingProxyType` into each record costs three times as much (0.9 µs)."""
    # Not in the repr: it holds the hash key.
    options: Mapping[str, Any] = field(default_factory=lambda: _DEFAULTS, repr=False)
    """Every option's value, as `configure()` names them."""
    sources: Mapping[str, str] = field(default_factory=dict[str, str], repr=False)
    """Where each option's value came from: `argument`, a setting (`settings.SECEVENTS`), `environment
    (VAR)` or `default` (what `secevents doctor` shows)."""


_lock = threading.RLock()


def _new_lock_after_fork() -> None:
    # A fork taken while another thread ran configure() copies this lock held by a thread the child does
    # not have: the child's own configure() would wait for it forever.
    global _lock  # noqa: PLW0603 - replaced in the child only
    _lock = threading.RLock()


def _hold_lock_for_fork() -> None:
    # configure() builds under this lock and imports what it needs on first use (hashlib, ...). A fork
    # taken while another thread is inside such an import copies that module's import lock, held by a
    # thread the child does not have: the child's own first import of it waits forever. So no fork happens
    # while a configuration is being built: the forking thread waits for it (the child gets a new lock).
    _lock.acquire()


def _release_lock_after_fork() -> None:
    _lock.release()


os.register_at_fork(
    before=_hold_lock_for_fork, after_in_parent=_release_lock_after_fork, after_in_child=_new_lock_after_fork
)
_current: Config | None = None
"""The configuration the per-event path reads (with the testing overlay applied, when one is set)."""
_base: Config | None = None
"""The configuration as built, before the overlay: what the next `configure()` merges into. `None` until
the configuration is first built, after `set_config(None)` and under the environment fallback, so that the
next build reads the environment."""
_overlay: Callable[[Config], Config] | None = None
"""Applied to every configuration installed while set (`testing.capture_events` keeps its in-memory output
and strict mode through `configure()` calls made by the code under test)."""


def set_overlay(overlay: Callable[[Config], Config] | None) -> None:
    """Install (or with `None` remove) the overlay applied to every configuration installed from now on."""
    global _overlay  # noqa: PLW0603 - one process-wide hook, for the testing helpers
    _overlay = overlay


def get_config() -> Config:
    """Return the configuration in force, building the default (from the environment) on first use.

    Returns:
        The `Config` every event is written under.
    """
    cfg = _current
    if cfg is None:
        with _lock:
            cfg = _current if _current is not None else _install(_build(*_resolve({}, None), None))
    return cfg


def get_config_for_event() -> Config:
    """`get_config` for the per-event path, which must not raise into product code.

    If the default configuration cannot be built from the environment (a bad `SECEVENTS_*` variable, say),
    a safe fallback is installed instead (stdout, no metrics, the hash key if it is usable) and a
    `SecEventsWarning` names the problem once. Strict mode (`SECEVENTS_STRICT=1`) raises instead.
    `configure()` itself always raises for bad settings.
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
        privacy = Privacy(None, _fallback_key())
        fallback = Config(privacy=privacy, writer=make_writer(None))
        with _lock:
            # Not a base: the next configure() reads the environment again rather than merging into this.
            return _current if _current is not None else _install(fallback, base=False)


def _fallback_key() -> str | bytes:
    """The key of the fallback configuration: the environment's if usable, else a random one.

    A random key is never dictionary-reversible; its pseudonyms change with each process, which is the price
    of a configuration that could not be read (the warning says so).
    """
    try:
        key = _hash_key("SECEVENTS_HASH_KEY", os.environ.get("SECEVENTS_HASH_KEY"))
    except ConfigurationError:
        key = None
    if key:
        return key
    import secrets

    return secrets.token_bytes(32)


def set_config(cfg: Config | None) -> Config | None:
    """Swap in `cfg` (`None`: rebuild from the environment on next use); return the previous one."""
    global _current, _base  # noqa: PLW0603 - swapped under the lock
    with _lock:
        previous, _base = _current, cfg
        _current = cfg if cfg is None or _overlay is None else _overlay(cfg)
    return previous


def _install(cfg: Config, *, base: bool = True) -> Config:
    global _current, _base  # noqa: PLW0603 - installed once, under the lock
    if base:
        _base = cfg
    _current = cfg if _overlay is None else _overlay(cfg)
    return _current


def configure(
    *,
    service: str | None = _UNSET,
    env: str | None = _UNSET,
    version: str | None = _UNSET,
    output: Literal["stdout", "stderr", "logging", "structlog", "console"]
    | str
    | logging.Logger
    | Writable = _UNSET,
    strict: bool = _UNSET,
    privacy: Mapping[str, str] | None = _UNSET,
    hash_key: str | bytes | None = _UNSET,
    trusted_proxies: Iterable[str] | str | None = _UNSET,
    trusted_hops: int | None = _UNSET,
    metrics: Literal["auto", "dogstatsd", "otel", "memory", "none"] = _UNSET,
    appsec_tracking: bool = _UNSET,
    otel_span_events: bool = _UNSET,
    delivery: Literal["queue", "sync"] = _UNSET,
    queue_size: int = _UNSET,
    overflow: Literal["drop", "block"] = _UNSET,
    block_timeout: float = _UNSET,
    queue_bytes: int = _UNSET,
    integrity_key: str | bytes | None = _UNSET,
    reset: bool = False,
    **unknown: Never,
) -> Config:
    """Configure the library for this process: change the options named, keep the others.

    A later call changes only what it names: `configure(hash_key=k, trusted_proxies=[...])` then
    `configure(env="prod")` keeps the key and the proxies. `reset=True` starts again from the
    environment and the defaults before applying the options named. Options never set come from their
    environment variable, read when the configuration is first built and on reset, else the default.

    Args:
        service: Datadog's unified service tag (default `DD_SERVICE`; unset omits the key).
        env: Datadog's unified environment tag (default `DD_ENV`).
        version: Datadog's unified version tag (default `DD_VERSION`).
        output: `"stdout"` (default), `"stderr"`, a file path (appended to, created if missing),
            `"console"` (one readable, coloured line per record on stdout, for local development),
            `"logging"` (the stdlib logger `graffer_secevents`),
            `"structlog"` (the application's structlog chain), a `logging.Logger`, or any file-like object
            with `write` (text or binary).
        strict: raise `EventValidationError` for invalid event input instead of coercing it (default
            `SECEVENTS_STRICT`, else off). Meant for tests.
        privacy: per-field modes overriding the defaults, e.g. ``{"usr.email": "drop",
            "network.client.ip": "truncate"}` (default `SECEVENTS_PRIVACY` as `field=mode,...``).
        hash_key: HMAC key for hashed fields (default `SECEVENTS_HASH_KEY`). Without one, hashing falls back
            to plain SHA-256 and a `SecEventsWarning` is given once.
        trusted_proxies: CIDRs of the proxies allowed to set forwarding headers, and `"unix"` for a proxy on
            a unix socket (default `SECEVENTS_TRUSTED_PROXIES`, comma-separated). Without them the peer
            address is the client.
        trusted_hops: trust exactly this many proxy hops instead (default `SECEVENTS_TRUSTED_HOPS`).
        metrics: `"auto"` (default: DogStatsD when the `datadog` package is installed, else none),
            `"dogstatsd"`, `"otel"`, `"memory"` or `"none"` (default `SECEVENTS_METRICS`).
        appsec_tracking: report user events to ddtrace's App & API Protection when the application has
            imported ddtrace (default `SECEVENTS_APPSEC_TRACKING`, else on).
        otel_span_events: add a span event per security event to the active OpenTelemetry span, when there is
            one and no ddtrace span (default `SECEVENTS_OTEL_SPAN_EVENTS`, else on).
        delivery: `"queue"` (default: a bounded queue and a writer thread, so a stuck output never blocks
            the caller) or `"sync"` (written on the caller's thread) (default `SECEVENTS_DELIVERY`).
        queue_size: the most records the queue holds (default `SECEVENTS_QUEUE_SIZE`, else 10,000).
        overflow: when the queue is full, `"drop"` the record at once and count it (default) or
            `"block"` for up to `block_timeout` seconds first (default `SECEVENTS_OVERFLOW`).
        block_timeout: seconds `overflow="block"` waits for room (default `SECEVENTS_BLOCK_TIMEOUT`,
            else 1.0).
        queue_bytes: the most bytes of records the queue holds (default `SECEVENTS_QUEUE_BYTES`, else
            16 MiB); a record that does not fit is handled like one over `queue_size`.
        integrity_key: HMAC key of the records' chain: each record then carries `secevents.chain`, so
            `secevents verify --key` detects altered, deleted, reordered or inserted records (default
            `SECEVENTS_INTEGRITY_KEY`, else no chain). See docs/delivery.md.
        reset: forget earlier `configure()` calls: every option not named here goes back to its
            environment variable (read now) or default.
        **unknown: nothing: an unknown keyword is a `ConfigurationError` that names the nearest option (type
            checkers reject it already).

    Returns:
        The new `Config`, now in force.

    Raises:
        ConfigurationError: an argument or variable is invalid, or a keyword is unknown; the message lists the
            allowed values. The configuration in force is then unchanged.

    Example:
        ```python
        import graffer_secevents as secevents

        secevents.configure(service="auth-api", trusted_proxies=["10.0.0.0/8"], hash_key=os.environ["KEY"])
        secevents.configure(env="prod")  # the key and the proxies stay
        ```
    """
    named = {name: value for name, value in locals().items() if value is not _UNSET}
    del named["reset"], named["unknown"]
    check_names(unknown, _BY_NAME, "configure()")
    with _lock:  # one configure() at a time: each merges into the one before it
        base = None if reset else _base
        cfg = _build(
            *_resolve(named, None if base is None else base.options, None if base is None else base.sources),
            _base,
        )
        # Under a testing overlay the configuration before the capture comes back afterwards, with its
        # backend: that one must stay open.
        previous_backend = None if _base is None or _overlay is not None else _base.metrics
        set_config(cfg)
    if previous_backend is not None and previous_backend is not cfg.metrics:
        _close_quietly(previous_backend)
    return cfg


DEVELOPMENT_ENVS: Final = frozenset({"dev", "development", "local", "test", "testing", "ci", "demo"})
"""The `env` values (`DD_ENV`) that mean development; an unset `env` is development too."""


def is_development(env: str | None) -> bool:
    """Whether `env` names development, where a missing `hash_key` is allowed (with a warning)."""
    return env is None or env.strip().lower() in DEVELOPMENT_ENVS


def unkeyed_message(env: str | None) -> str:
    """What the library says about a missing `hash_key` (warning, refusal, Django check, doctor)."""
    where = "in development" if is_development(env) else f"env={env!r} is not development"
    return (
        "graffer_secevents: no hash_key is set, so logins and e-mails would be hashed with plain SHA-256, "
        f"which a dictionary attack reverses ({where}); {HASH_KEY_HOWTO}"
    )


def _refuse_unkeyed_outside_development(env: str | None) -> None:
    """No key: a `ConfigurationError` outside development, else one warning at the application's call."""
    if not is_development(env):
        raise ConfigurationError(
            unkeyed_message(env) + ". Outside development (env unset or one of "
            f"{', '.join(sorted(DEVELOPMENT_ENVS))}) a key is required; see the privacy documentation"
        )
    warn_once("unkeyed-hash", unkeyed_message(env), stacklevel=caller_stacklevel() + 1)


_NOT_THE_APPLICATION: Final = frozenset(
    {
        "graffer_secevents",
        "importlib",
        "runpy",
        "asyncio",
        "concurrent",
        "threading",
        "contextlib",
        "django",
        "flask",
        "werkzeug",
        "click",
        "starlette",
        "fastapi",
        "anyio",
        "uvicorn",
        "gunicorn",
        "waitress",
        "hypercorn",
        "daphne",
    }
)
"""Top-level modules whose frames a warning skips to reach the application (this package, Python's import
and run machinery, the frameworks and servers that call into it)."""


def caller_stacklevel() -> int:
    """The `stacklevel` that makes a warning given by this function's caller point at the application.

    Frames of this package, of Python's import machinery and of the frameworks and servers that call it
    (`_NOT_THE_APPLICATION`) are skipped, so the warning names the application's own `configure()` call,
    its `SecurityEvents(app)`, its `manage.py` or its server's entry point, never `_config.py`.
    """
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None:
        module = str(frame.f_globals.get("__name__") or "")
        if module.split(".", 1)[0] not in _NOT_THE_APPLICATION and not frame.f_code.co_filename.startswith(
            "<frozen "
        ):
            break
        frame = frame.f_back
        level += 1
    return level


def _key_bytes(key: str | bytes | None) -> bytes | None:
    return key.encode("utf-8") if isinstance(key, str) else key


def _close_quietly(backend: MetricsBackend) -> None:
    try:
        backend.close()
    except Exception:  # noqa: BLE001, S110 - closing the old client must not fail a reconfiguration
        pass


_argument_source = "argument"
"""What a `configure()` argument counts as in `Config.sources`; the Django app says `settings.SECEVENTS`."""


@contextmanager
def arguments_from(source: str) -> Generator[None]:
    """Label the `configure()` arguments given inside the block as coming from `source` (a setting)."""
    global _argument_source  # noqa: PLW0603 - start-up only, under the configuration lock
    with _lock:
        previous, _argument_source = _argument_source, source
        try:
            yield
        finally:
            _argument_source = previous


def _resolve(
    named: Mapping[str, Any], base: Mapping[str, Any] | None, base_sources: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Each option's value and its source: as named, else as in `base`, else (no base) from the environment,
    else the default."""
    environ = os.environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for opt in OPTIONS:
        if opt.name in named:
            values[opt.name] = opt.parse(opt.name, named[opt.name])
            sources[opt.name] = _argument_source
        elif base is not None:
            values[opt.name] = base[opt.name]
            sources[opt.name] = (base_sources or {}).get(opt.name, "default")
        elif opt.env is not None and opt.env in environ:
            values[opt.name] = opt.parse(opt.env, environ[opt.env])
            sources[opt.name] = f"environment ({opt.env})"
        else:
            values[opt.name] = opt.default
            sources[opt.name] = "default"
    return values, sources


_BACKEND_INPUTS: Final = ("metrics", "service", "env", "version")
"""The options a metrics backend is built from: while they are unchanged, the backend is kept."""


def _build(values: Mapping[str, Any], sources: Mapping[str, str], previous: Config | None) -> Config:
    """The `Config` for these option values; `previous`'s metrics backend is kept if its inputs are equal."""
    privacy = Privacy(values["privacy"], values["hash_key"])
    if not privacy.keyed and "hash" in privacy.modes.values():
        _refuse_unkeyed_outside_development(values["env"])
    trusted = TrustedProxies.from_config(values["trusted_proxies"], values["trusted_hops"])

    service, env, version = values["service"], values["env"], values["version"]
    backend: MetricsBackend | None
    if previous is not None and all(previous.options[k] == values[k] for k in _BACKEND_INPUTS):
        backend = previous.metrics
    else:
        backend = create_backend(values["metrics"], service=service, env=env, version=version)
        if isinstance(backend, NoMetrics):
            backend = None  # nothing to count: the per-event path skips metrics entirely

    writer = make_writer(open_output(values["output"]))
    tags = (("service", service), ("env", env), ("version", version))
    static = {key: value for key, value in tags if value}
    appsec_tracking: bool = values["appsec_tracking"]
    otel_span_events: bool = values["otel_span_events"]
    return Config(
        service=service,
        env=env,
        version=version,
        strict=values["strict"],
        output=values["output"],
        privacy=privacy,
        trusted_proxies=trusted,
        metrics=backend,
        metrics_name=values["metrics"],
        appsec_tracking=appsec_tracking,
        otel_span_events=otel_span_events,
        bridges=build_bridges(privacy, appsec_tracking=appsec_tracking, otel_span_events=otel_span_events),
        writer=writer,
        delivery=values["delivery"],
        queue_size=values["queue_size"],
        overflow=values["overflow"],
        block_timeout=values["block_timeout"],
        queue_bytes=values["queue_bytes"],
        integrity_key=_key_bytes(values["integrity_key"]),
        static=static,
        options=MappingProxyType(values),
        sources=MappingProxyType(dict(sources)),
    )
