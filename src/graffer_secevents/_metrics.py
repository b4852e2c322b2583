"""Metrics: count security events and login attempts with bounded tags (SPEC §5).

Three counters, whatever the backend:

=============================  ===========================================================================
``secevents.events``           ``evt_type``, ``evt_category``, ``outcome`` (when the event has one)
``secevents.login.attempts``   ``outcome``, ``reason`` (failures that give one), ``usr_exists`` (when known)
``secevents.dropped``          ``reason`` — events the library could not write
=============================  ===========================================================================

Tags are built only from bounded values: :func:`record_event` takes no user id, login, email, IP, session or
request id, so none can reach a tag. Every value is sanitised to Datadog's tag rules and anything outside its
bounded set becomes ``other``. ``service``, ``env`` and ``version`` are *not* added by :func:`record_event`:
the DogStatsD client adds them from ``DD_SERVICE``/``DD_ENV``/``DD_VERSION`` (and the Agent from container
labels), and the OpenTelemetry SDK carries them in its ``Resource``; adding them here would send them twice.

Backends (:func:`create_backend`): ``dogstatsd`` (the ``datadog`` package, imported lazily), ``otel``
(``opentelemetry-api`` only: a no-op until the application installs an SDK ``MeterProvider``), ``memory``
(tests) and ``none``. ``auto`` picks ``dogstatsd`` when ``datadog`` is installed, else ``none``.
Importing this module imports neither ``datadog`` nor ``opentelemetry``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import threading
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable
from urllib.parse import urlsplit

from ._errors import ConfigurationError, MissingDependencyError

if TYPE_CHECKING:
    from collections.abc import Callable

    from opentelemetry.metrics import Counter, Meter

__all__ = [
    "DROPPED_METRIC",
    "DROP_REASONS",
    "EVENTS_METRIC",
    "LOGIN_ATTEMPTS_METRIC",
    "LOGIN_FAILURE_REASONS",
    "METRIC_BACKENDS",
    "METRIC_NAMES",
    "OTHER",
    "OUTCOMES",
    "OUTCOME_FAILURE",
    "OUTCOME_SUCCESS",
    "TAG_EVT_CATEGORY",
    "TAG_EVT_TYPE",
    "TAG_KEYS",
    "TAG_OUTCOME",
    "TAG_REASON",
    "TAG_USR_EXISTS",
    "UNIFIED_TAG_KEYS",
    "DogStatsdAddress",
    "DogStatsdMetrics",
    "MemoryMetrics",
    "MetricPoint",
    "MetricsBackend",
    "NoMetrics",
    "OTelMetrics",
    "create_backend",
    "record_dropped",
    "record_event",
    "resolve_dogstatsd_address",
    "sanitize_tag_value",
]

_log = logging.getLogger(__name__)

METRIC_BACKENDS: tuple[str, ...] = ("auto", "dogstatsd", "otel", "memory", "none")

EVENTS_METRIC: Final = "secevents.events"
LOGIN_ATTEMPTS_METRIC: Final = "secevents.login.attempts"
DROPPED_METRIC: Final = "secevents.dropped"
METRIC_NAMES: frozenset[str] = frozenset({EVENTS_METRIC, LOGIN_ATTEMPTS_METRIC, DROPPED_METRIC})

TAG_EVT_TYPE: Final = "evt_type"
TAG_EVT_CATEGORY: Final = "evt_category"
TAG_OUTCOME: Final = "outcome"
TAG_REASON: Final = "reason"
TAG_USR_EXISTS: Final = "usr_exists"
TAG_KEYS: frozenset[str] = frozenset(
    {TAG_EVT_TYPE, TAG_EVT_CATEGORY, TAG_OUTCOME, TAG_REASON, TAG_USR_EXISTS}
)
UNIFIED_TAG_KEYS: frozenset[str] = frozenset({"service", "env", "version"})
"""Added by the DogStatsD client (``DD_SERVICE``/``DD_ENV``/``DD_VERSION``) or the Agent, never by us;
monitors may scope on them."""

OTHER: Final = "other"
OUTCOME_SUCCESS: Final = "success"
OUTCOME_FAILURE: Final = "failure"
OUTCOMES: frozenset[str] = frozenset({OUTCOME_SUCCESS, OUTCOME_FAILURE})

LOGIN_FAILURE_REASONS: frozenset[str] = frozenset(
    {
        "invalid_credentials",
        "unknown_user",
        "account_locked",
        "account_disabled",
        "mfa_required",
        "mfa_failed",
        "password_expired",
        "rate_limited",
        OTHER,
    }
)
DROP_REASONS: frozenset[str] = frozenset(
    {"queue_full", "write_error", "closed", "encoding", "exit", "internal_error", OTHER}
)  # see _delivery

# The SPEC §1 categories; duplicated rather than imported so this module stays import-light.
_CATEGORIES: frozenset[str] = frozenset(
    {
        "authentication",
        "session",
        "iam",
        "authorization",
        "web",
        "file",
        "database",
        "intrusion_detection",
        "configuration",
        "process",
        "crypto",
    }
)

# Common spellings of the bounded reasons (after sanitising), so `reason="bad_password"` is not `other`.
_REASON_ALIASES: Mapping[str, str] = {
    "bad_credentials": "invalid_credentials",
    "bad_password": "invalid_credentials",
    "invalid_password": "invalid_credentials",
    "wrong_password": "invalid_credentials",
    "user_not_found": "unknown_user",
    "no_such_user": "unknown_user",
    "locked": "account_locked",
    "disabled": "account_disabled",
    "expired_password": "password_expired",
    "throttled": "rate_limited",
}

_TAG_MAX_LEN = 200
_NOT_TAG_CHAR = re.compile(r"[^a-z0-9_.:/-]")
# evt_type comes from the catalog (~75 types); this cap only matters if a caller bypasses it.
_MAX_EVT_TYPES = 256
_seen_evt_types: set[str] = set()
# (evt_type, category, outcome, login_attempt, reason, usr_exists) -> ((metric, tags), ...); see _cacheable.
_PLANS: dict[tuple[object, ...], tuple[tuple[str, tuple[str, ...]], ...]] = {}
_MAX_PLANS = 2048
_MAX_CACHED_ARG_LEN = 64
_DROP_TAGS: dict[str, tuple[str, ...]] = {}


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One count as a backend received it (what :class:`MemoryMetrics` stores)."""

    name: str
    value: int
    tags: tuple[str, ...]


@runtime_checkable
class MetricsBackend(Protocol):
    """Where counts go. ``count`` is on the hot path; ``flush``/``close`` never raise."""

    def count(self, name: str, value: int, tags: tuple[str, ...]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


# ----------------------------------------------------------------------------------------------------------
# Recording
# ----------------------------------------------------------------------------------------------------------


def record_event(
    backend: MetricsBackend,
    *,
    evt_type: str,
    category: str,
    outcome: str | None,
    login_attempt: bool,
    reason: str | None,
    usr_exists: bool | None,
) -> None:
    """Count one emitted event, and one login attempt when ``login_attempt`` is true. Never raises.

    Args:
        backend: from :func:`create_backend`.
        evt_type: the catalog type, e.g. ``"authn_login_fail"`` (tag ``evt_type``).
        category: the catalog category (tag ``evt_category``; outside SPEC §1's list it becomes ``other``).
        outcome: ``"success"``, ``"failure"`` or ``None`` (no ``outcome`` tag); anything else is ``other``.
        login_attempt: also count ``secevents.login.attempts``.
        reason: why a login failed, mapped onto :data:`LOGIN_FAILURE_REASONS` (anything else is ``other``).
            Only failures carry it; a failure with ``reason=None`` gets **no** ``reason`` tag, so ``other``
            keeps meaning "a reason we could not classify" rather than "the caller gave none".
        usr_exists: whether the account exists; ``None`` means unknown and adds no ``usr_exists`` tag.

    Raises:
        Nothing: a metrics failure must never break the caller (``BaseException`` still propagates).

    Example:
        >>> m = MemoryMetrics()
        >>> record_event(m, evt_type="authn_login_fail", category="authentication", outcome="failure",
        ...              login_attempt=True, reason="unknown_user", usr_exists=False)
        >>> m.points[1].tags
        ('outcome:failure', 'reason:unknown_user', 'usr_exists:false')
    """
    try:
        key = (evt_type, category, outcome, login_attempt, reason, usr_exists)
        plan = _PLANS.get(key)
        if plan is None:
            plan = _plan(
                evt_type=evt_type,
                category=category,
                outcome=outcome,
                login_attempt=login_attempt,
                reason=reason,
                usr_exists=usr_exists,
            )
            if _cacheable(key):
                _PLANS[key] = plan
        for name, tags in plan:
            backend.count(name, 1, tags)
    except Exception:  # noqa: BLE001 - metrics never break the caller
        _log.debug("graffer_secevents: could not record event metrics", exc_info=True)


def record_dropped(backend: MetricsBackend, reason: str) -> None:
    """Count one event that could not be written (``secevents.dropped``). Never raises.

    Args:
        backend: from :func:`create_backend`.
        reason: one of :data:`DROP_REASONS`; anything else is counted as ``other``.

    Example:
        >>> m = MemoryMetrics()
        >>> record_dropped(m, "write_error")
        >>> m.points[0]
        MetricPoint(name='secevents.dropped', value=1, tags=('reason:write_error',))
    """
    try:
        tags = _DROP_TAGS.get(reason)
        if tags is None:
            value = _bounded(reason, TAG_REASON, DROP_REASONS)
            tags = (f"{TAG_REASON}:{value}",)
            if value != OTHER or reason == OTHER:
                _DROP_TAGS[reason] = tags
        backend.count(DROPPED_METRIC, 1, tags)
    except Exception:  # noqa: BLE001 - metrics never break the caller
        _log.debug("graffer_secevents: could not record a dropped event", exc_info=True)


def sanitize_tag_value(value: object, key: str) -> str:
    """Make ``value`` a Datadog tag value for ``key``: lowercase, ``[a-z0-9_.:/-]``, the whole tag ≤ 200.

    Other characters become ``_``; an empty result (or one that is only ``:``) becomes ``other``.

    Example:
        >>> sanitize_tag_value("Invalid Credentials", "reason")
        'invalid_credentials'
    """
    if isinstance(value, Enum):
        value = value.value
    text = value if isinstance(value, str) else str(value)
    # Cut before lowering so a huge hostile value costs no more than a long one.
    cleaned = _NOT_TAG_CHAR.sub("_", text[: 2 * _TAG_MAX_LEN].lower())[: _TAG_MAX_LEN - len(key) - 1].rstrip(
        ":"
    )
    return cleaned or OTHER


def _bounded(
    value: object, key: str, allowed: frozenset[str], aliases: Mapping[str, str] | None = None
) -> str:
    cleaned = sanitize_tag_value(value, key)
    if aliases is not None:
        cleaned = aliases.get(cleaned, cleaned)
    return cleaned if cleaned in allowed else OTHER


def _evt_type_value(evt_type: object) -> str:
    cleaned = sanitize_tag_value(evt_type, TAG_EVT_TYPE)
    if cleaned in _seen_evt_types:
        return cleaned
    if len(_seen_evt_types) >= _MAX_EVT_TYPES:
        return OTHER
    _seen_evt_types.add(cleaned)
    return cleaned


def _plan(
    *,
    evt_type: object,
    category: object,
    outcome: object,
    login_attempt: object,
    reason: object,
    usr_exists: object,
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    outcome_value = None if outcome is None else _bounded(outcome, TAG_OUTCOME, OUTCOMES)
    event_tags = [
        f"{TAG_EVT_TYPE}:{_evt_type_value(evt_type)}",
        f"{TAG_EVT_CATEGORY}:{_bounded(category, TAG_EVT_CATEGORY, _CATEGORIES)}",
    ]
    if outcome_value is not None:
        event_tags.append(f"{TAG_OUTCOME}:{outcome_value}")
    plan: list[tuple[str, tuple[str, ...]]] = [(EVENTS_METRIC, tuple(event_tags))]
    if login_attempt:
        login_tags: list[str] = []
        if outcome_value is not None:
            login_tags.append(f"{TAG_OUTCOME}:{outcome_value}")
        if outcome_value == OUTCOME_FAILURE and reason is not None:
            login_tags.append(
                f"{TAG_REASON}:{_bounded(reason, TAG_REASON, LOGIN_FAILURE_REASONS, _REASON_ALIASES)}"
            )
        if usr_exists is not None and usr_exists in (True, False):  # by equality, as the plan cache is keyed
            login_tags.append(f"{TAG_USR_EXISTS}:{'true' if usr_exists else 'false'}")
        plan.append((LOGIN_ATTEMPTS_METRIC, tuple(login_tags)))
    return tuple(plan)


def _cacheable(key: tuple[object, ...]) -> bool:
    # Only short inputs are kept, and only so many: hostile `reason` strings cost CPU, never memory.
    if len(_PLANS) >= _MAX_PLANS:
        return False
    return all(not isinstance(part, str) or len(part) <= _MAX_CACHED_ARG_LEN for part in key)


# ----------------------------------------------------------------------------------------------------------
# Backends
# ----------------------------------------------------------------------------------------------------------


class NoMetrics:
    """The ``none`` backend: every call does nothing."""

    __slots__ = ()

    def count(self, name: str, value: int, tags: tuple[str, ...]) -> None:
        """Do nothing."""

    def flush(self) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


class MemoryMetrics:
    """The ``memory`` backend: keeps every count in :attr:`points`, in order (tests, the demo).

    Example:
        >>> m = MemoryMetrics()
        >>> m.count("secevents.dropped", 1, ("reason:write_error",))
        >>> m.total("secevents.dropped", "reason:write_error")
        1
    """

    __slots__ = ("_lock", "points")

    def __init__(self) -> None:
        self.points: list[MetricPoint] = []
        self._lock = threading.Lock()

    def count(self, name: str, value: int, tags: tuple[str, ...]) -> None:
        """Append one :class:`MetricPoint` (thread-safe)."""
        point = MetricPoint(name, value, tuple(tags))
        with self._lock:
            self.points.append(point)

    def total(self, name: str, *tags: str) -> int:
        """Sum of the values counted for ``name`` whose tags include every one of ``tags``."""
        wanted = set(tags)
        with self._lock:
            return sum(p.value for p in self.points if p.name == name and wanted.issubset(p.tags))

    def clear(self) -> None:
        """Forget every point."""
        with self._lock:
            self.points.clear()

    def flush(self) -> None:
        """Nothing to flush."""

    def close(self) -> None:
        """Nothing to close; the points stay readable."""


_OTEL_DESCRIPTIONS: Mapping[str, tuple[str, str]] = {
    EVENTS_METRIC: ("{event}", "Security events emitted by graffer_secevents"),
    LOGIN_ATTEMPTS_METRIC: (
        "{attempt}",
        "Login attempts by outcome, bounded failure reason and account existence",
    ),
    DROPPED_METRIC: ("{event}", "Security events graffer_secevents could not write"),
}
_MAX_OTEL_ATTRIBUTE_SETS = 4096


class OTelMetrics:
    """The ``otel`` backend: OpenTelemetry counters with the same names; a tag ``key:value`` is an attribute.

    It uses only ``opentelemetry-api``. Until the application installs an SDK ``MeterProvider`` the API's
    proxy meter drops every count; once one is installed (even after this backend was created) the proxies
    forward to it. ``service``/``env``/``version`` belong in the SDK's ``Resource``, not in attributes.

    Args:
        meter: the meter to use; default ``opentelemetry.metrics.get_meter("graffer_secevents")``.
    """

    __slots__ = ("_attributes", "_counters", "_lock", "_meter")

    def __init__(self, meter: Meter | None = None) -> None:
        if meter is None:
            from opentelemetry import metrics

            meter = metrics.get_meter("graffer_secevents")
        self._meter = meter
        self._counters: dict[str, Counter] = {}
        self._attributes: dict[tuple[str, ...], dict[str, str]] = {}
        self._lock = threading.Lock()

    def count(self, name: str, value: int, tags: tuple[str, ...]) -> None:
        """Add ``value`` to the counter ``name`` with ``tags`` as attributes."""
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counter(name)
        attributes = self._attributes.get(tags)
        if attributes is None:
            attributes = {key: value for key, _, value in (tag.partition(":") for tag in tags)}
            if len(self._attributes) < _MAX_OTEL_ATTRIBUTE_SETS:
                self._attributes[tags] = attributes
        counter.add(value, attributes)

    def _counter(self, name: str) -> Counter:
        with self._lock:
            counter = self._counters.get(name)
            if counter is None:
                unit, description = _OTEL_DESCRIPTIONS.get(name, ("1", ""))
                counter = self._meter.create_counter(name, unit=unit, description=description)
                self._counters[name] = counter
            return counter

    def flush(self) -> None:
        """Nothing to do: exporting is the SDK reader's job."""

    def close(self) -> None:
        """Nothing to do: the application owns the ``MeterProvider``."""


# ----------------------------------------------------------------------------------------------------------
# DogStatsD
# ----------------------------------------------------------------------------------------------------------

DEFAULT_DSD_SOCKET: Final = "/var/run/datadog/dsd.socket"
_DEFAULT_HOST: Final = "localhost"
_DEFAULT_PORT: Final = 8125
_UNIX_SCHEMES = ("unix", "unixgram", "unixstream")


@dataclass(frozen=True, slots=True)
class DogStatsdAddress:
    """Where DogStatsD listens: ``host``/``port`` for UDP, or ``socket_path`` (a ``unix*://`` URL) for UDS."""

    host: str | None = None
    port: int | None = None
    socket_path: str | None = None

    @property
    def url(self) -> str:
        """The address as ``udp://host:port`` or the ``unix://`` URL."""
        if self.socket_path is not None:
            return self.socket_path
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"udp://{host}:{self.port}"


def resolve_dogstatsd_address(
    environ: Mapping[str, str] | None = None, *, socket_exists: Callable[[str], bool] = os.path.exists
) -> DogStatsdAddress:
    """Find DogStatsD the way ddtrace does.

    Order: ``DD_DOGSTATSD_URL`` (``udp://host:port``, ``unix:///path``, ``unixgram://``, ``unixstream://``);
    then ``DD_DOGSTATSD_HOST`` or ``DD_AGENT_HOST`` with ``DD_DOGSTATSD_PORT`` (defaults ``localhost`` and
    ``8125``); then ``/var/run/datadog/dsd.socket`` if it exists; then ``udp://localhost:8125``. (ddtrace
    also falls back to ``DD_AGENT_PORT``, the *trace* port 8126; we do not: no DogStatsD listens there.)

    Raises:
        ConfigurationError: ``DD_DOGSTATSD_URL`` has another scheme or a bad port, or ``DD_DOGSTATSD_PORT``
            is not a port number.

    Example:
        >>> resolve_dogstatsd_address({"DD_DOGSTATSD_URL": "udp://10.0.0.5:8125"}).url
        'udp://10.0.0.5:8125'
    """
    env = os.environ if environ is None else environ
    url = env.get("DD_DOGSTATSD_URL", "").strip()
    if url:
        parts = urlsplit(url)
        if parts.scheme in _UNIX_SCHEMES:
            if not parts.path:
                raise ConfigurationError(
                    f"DD_DOGSTATSD_URL: {url!r} has no socket path, e.g. unix:///path/dsd.sock"
                )
            return DogStatsdAddress(socket_path=url)
        if parts.scheme != "udp":
            raise ConfigurationError(
                f"DD_DOGSTATSD_URL: unsupported scheme in {url!r}; allowed: udp://host:port, unix:///path, "
                "unixgram:///path, unixstream:///path"
            )
        try:
            port = parts.port
        except ValueError:
            raise ConfigurationError(f"DD_DOGSTATSD_URL: invalid port in {url!r}") from None
        return DogStatsdAddress(host=parts.hostname or _DEFAULT_HOST, port=port or _DEFAULT_PORT)

    host = env.get("DD_DOGSTATSD_HOST") or env.get("DD_AGENT_HOST")
    port_text = env.get("DD_DOGSTATSD_PORT")
    if host or port_text:
        port = _DEFAULT_PORT
        if port_text:
            try:
                port = int(port_text)
            except ValueError:
                port = -1
            if not 0 < port < 65536:
                raise ConfigurationError(f"DD_DOGSTATSD_PORT: expected a port number, got {port_text!r}")
        return DogStatsdAddress(host=host or _DEFAULT_HOST, port=port)
    if socket_exists(DEFAULT_DSD_SOCKET):
        return DogStatsdAddress(socket_path=f"unix://{DEFAULT_DSD_SOCKET}")
    return DogStatsdAddress(host=_DEFAULT_HOST, port=_DEFAULT_PORT)


class DogStatsdMetrics:
    """The ``dogstatsd`` backend: one ``datadog.dogstatsd.DogStatsd`` client per process, aggregating.

    * **Cheap counts.** Counts are aggregated client-side: :meth:`count` adds to a dict under a lock (no
      syscall, no string building). A flush thread of ours hands the totals to the ``DogStatsd`` client every
      ``flush_interval`` seconds; the client (with buffering on) packs them into as few datagrams as fit and
      adds its constant tags, origin detection and telemetry. The client's own flush thread is not started
      (``flush_interval=0``), so every flush, the exit one included, is serialised by our lock: no count is
      half-flushed when the process ends.
    * **Exit.** An ``atexit`` hook flushes every live backend, so a short-lived process loses no counts. After
      it, counts (from ``atexit`` hooks that run later) are sent at once. ``os._exit()`` skips ``atexit``:
      call :meth:`flush` before it.
    * **Fork.** The client is created with ``track_instance=False`` (datadogpy's fork hooks leave it alone)
      and our ``os.register_at_fork`` hook makes the child forget the parent's client, counts and locks: a
      lock held by a parent thread at fork time cannot deadlock the child, and the parent's unflushed counts
      are not sent twice. The child's first count creates its own client, socket and flush thread (gunicorn
      ``--preload`` workers, multiprocessing).
    * **No Agent.** Sends are non-blocking UDP (or UDS) and failures are dropped by the client; its
      ``datadog.dogstatsd`` logger is set to ``ERROR`` unless the application configured that logger (or
      ``datadog``) itself, so a missing Agent does not log a warning per flush. The root logger is never
      touched.
    * **Tags.** ``service``/``env``/``version`` are added by the client from ``DD_SERVICE``/``DD_ENV``/
      ``DD_VERSION``; ``constant_tags`` is only for values those variables do not already give.
    """

    __slots__ = (
        "__weakref__",
        "_client",
        "_closed",
        "_counts",
        "_counts_lock",
        "_exited",
        "_lock",
        "_slow_path",
        "_stop",
        "address",
        "constant_tags",
        "flush_interval",
    )

    def __init__(
        self, address: DogStatsdAddress, *, constant_tags: tuple[str, ...] = (), flush_interval: float = 1.0
    ) -> None:
        self.address = address
        self.constant_tags = constant_tags
        self.flush_interval = flush_interval
        self._counts: dict[tuple[str, tuple[str, ...]], int] = {}
        self._counts_lock = threading.Lock()  # guards _counts only: held for a dict update, never for I/O
        self._lock = threading.Lock()  # serialises flush, close and client creation
        self._stop = threading.Event()
        self._client: Any = None
        self._closed = False
        self._exited = False
        self._slow_path = False  # set when count() must do more than add: a new process, after exit, closed
        _install_process_hooks()
        _LIVE.add(self)
        self._connect()

    def count(self, name: str, value: int, tags: tuple[str, ...]) -> None:
        """Add ``value`` to the count of ``name`` with ``tags``; sent at the next flush."""
        key = (name, tags)
        with self._counts_lock:
            counts = self._counts
            counts[key] = counts.get(key, 0) + value
        if self._slow_path:
            self._after_count()

    def flush(self) -> None:
        """Send every count now. Never raises."""
        try:
            with self._lock:
                self._send_counts()
        except Exception:  # noqa: BLE001 - metrics never break the caller
            _log.debug("graffer_secevents: DogStatsD flush failed", exc_info=True)

    def close(self) -> None:
        """Flush, stop the flush thread and close the socket; later counts are dropped. Never raises."""
        try:
            with self._lock:
                if self._closed:
                    return
                self._closed = True
                self._slow_path = True
                self._stop.set()
                self._send_counts()
                if self._client is not None:
                    self._client.close_socket()
                    self._client = None
        except Exception:  # noqa: BLE001 - metrics never break the caller
            _log.debug("graffer_secevents: DogStatsD close failed", exc_info=True)
        finally:
            _LIVE.discard(self)
            with _hooks_lock:
                for key, backend in list(_SHARED.items()):
                    if backend is self:
                        del _SHARED[key]

    def _send_counts(self) -> None:
        # Caller holds self._lock.
        with self._counts_lock:
            counts, self._counts = self._counts, {}
        client = self._client
        if client is None or not counts:
            return
        for (name, tags), value in counts.items():
            client.count(name, value, tags)
        client.flush_buffered_metrics()

    def _after_count(self) -> None:
        if self._closed:
            with self._counts_lock:
                self._counts.clear()
        elif self._exited:
            self.flush()
        elif self._client is None:
            self._connect()

    def _connect(self) -> None:
        """Create this process's client and flush thread (in __init__, or at a forked child's first count)."""
        try:
            with self._lock:
                if self._closed or self._client is not None:
                    return
                self._client = _new_dogstatsd_client(self.address, self.constant_tags)
                self._stop = threading.Event()
                threading.Thread(
                    target=_flush_loop,
                    args=(weakref.ref(self), self._stop, self.flush_interval),
                    name="graffer_secevents-dogstatsd-flush",
                    daemon=True,
                ).start()
                self._slow_path = False
        except Exception:  # noqa: BLE001 - metrics never break the caller
            _log.debug("graffer_secevents: could not create the DogStatsD client", exc_info=True)

    def _at_exit(self) -> None:
        with self._lock:
            self._stop.set()
            self._exited = True
            self._slow_path = True
            self._send_counts()

    def _after_fork_in_child(self) -> None:
        # Runs in the child right after fork, with one thread: no logging, no I/O but closing inherited fds.
        # The parent's locks may have been held by its threads, so they are replaced, not acquired.
        self._lock = threading.Lock()
        self._counts_lock = threading.Lock()
        self._counts = {}
        self._stop = threading.Event()
        inherited, self._client = self._client, None
        self._slow_path = True
        for attribute in ("socket", "telemetry_socket"):
            sock = getattr(inherited, attribute, None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()


def _flush_loop(ref: weakref.ref[DogStatsdMetrics], stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        backend = ref()
        if backend is None:
            return
        backend.flush()
        del backend


def _new_dogstatsd_client(address: DogStatsdAddress, constant_tags: tuple[str, ...]) -> Any:
    from datadog.dogstatsd.base import DogStatsd

    return DogStatsd(
        host=address.host,
        port=address.port,
        socket_path=address.socket_path,
        disable_aggregation=True,  # DogStatsdMetrics aggregates, more cheaply and fork-safely
        disable_buffering=False,  # pack the flushed totals into as few datagrams as fit
        flush_interval=0,  # no client flush thread: ours flushes (see DogStatsdMetrics)
        constant_tags=list(constant_tags) or None,
        track_instance=False,  # our fork hook handles this client
    )


_LIVE: weakref.WeakSet[DogStatsdMetrics] = weakref.WeakSet()
_SHARED: dict[tuple[DogStatsdAddress, tuple[str, ...]], DogStatsdMetrics] = {}
_hooks_installed = False
_hooks_lock = threading.Lock()


def _install_process_hooks() -> None:
    global _hooks_installed  # noqa: PLW0603 - process-wide hooks are installed once
    with _hooks_lock:
        if _hooks_installed:
            return
        atexit.register(_flush_all_at_exit)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)
        _hooks_installed = True


def _live_backends() -> Iterator[DogStatsdMetrics]:
    return iter(list(_LIVE))


def _flush_all_at_exit() -> None:
    for backend in _live_backends():
        try:
            backend._at_exit()
        except Exception:  # noqa: BLE001 - one failing backend must not stop the others' flush
            _log.debug("graffer_secevents: DogStatsD exit flush failed", exc_info=True)


def _after_fork_in_child() -> None:
    global _hooks_lock  # noqa: PLW0603 - a lock copied mid-acquire by fork is replaced in the child
    _hooks_lock = threading.Lock()
    for backend in _live_backends():
        backend._after_fork_in_child()


def _quiet_dogstatsd_logger() -> None:
    """``datadog.dogstatsd`` at ``ERROR``, unless the application already configured it or ``datadog``.

    ``import datadog`` gives the logger a ``NullHandler``; that alone does not count as configured. Without
    this, an application that configured root logging gets a "dropping the packet" warning per failed send.
    """
    for name in ("datadog", "datadog.dogstatsd"):
        logger = logging.getLogger(name)
        configured = [h for h in logger.handlers if not isinstance(h, logging.NullHandler)]
        if logger.level != logging.NOTSET or configured:
            return
    logging.getLogger("datadog.dogstatsd").setLevel(logging.ERROR)


def _dogstatsd_backend(service: str | None, env: str | None, version: str | None) -> DogStatsdMetrics:
    try:
        import datadog.dogstatsd  # noqa: F401  # pyright: ignore[reportUnusedImport] - presence check
    except ImportError:
        raise MissingDependencyError("datadog", "datadog") from None
    address = resolve_dogstatsd_address()
    # The client adds DD_SERVICE/DD_ENV/DD_VERSION itself; ours only fill in what those do not give.
    constant_tags = tuple(
        f"{key}:{sanitize_tag_value(value, key)}"
        for key, value, variable in (
            ("service", service, "DD_SERVICE"),
            ("env", env, "DD_ENV"),
            ("version", version, "DD_VERSION"),
        )
        if value and not os.environ.get(variable)
    )
    key = (address, constant_tags)
    with _hooks_lock:
        backend = _SHARED.get(key)
    if backend is not None:
        return backend
    _quiet_dogstatsd_logger()
    backend = DogStatsdMetrics(address, constant_tags=constant_tags)
    with _hooks_lock:
        shared = _SHARED.setdefault(key, backend)
    if shared is not backend:  # another thread won the race: one client per process
        backend.close()
    return shared


def create_backend(
    name: str, *, service: str | None = None, env: str | None = None, version: str | None = None
) -> MetricsBackend:
    """Build the metrics backend called ``name`` (one of :data:`METRIC_BACKENDS`).

    ``dogstatsd`` returns the process's shared client for the resolved address
    (:func:`resolve_dogstatsd_address`), so calling this again does not open a second socket or thread.

    Args:
        name: ``"auto"`` (``dogstatsd`` if the ``datadog`` package is importable, else ``none``),
            ``"dogstatsd"``, ``"otel"``, ``"memory"`` or ``"none"``.
        service, env, version: from ``configure()``; sent as DogStatsD constant tags only when the matching
            ``DD_SERVICE``/``DD_ENV``/``DD_VERSION`` is unset (the client adds those itself, so nothing is
            sent twice). Ignored by the other backends (OpenTelemetry puts them in its ``Resource``).

    Raises:
        ConfigurationError: an unknown ``name`` (the message lists the allowed values), or a malformed
            ``DD_DOGSTATSD_URL``/``DD_DOGSTATSD_PORT``.
        MissingDependencyError: ``"dogstatsd"`` without the ``datadog`` package.

    Example:
        >>> create_backend("memory")  # doctest: +ELLIPSIS
        <graffer_secevents._metrics.MemoryMetrics object at ...>
    """
    if name == "none":
        return NoMetrics()
    if name == "memory":
        return MemoryMetrics()
    if name == "otel":
        return OTelMetrics()
    if name == "dogstatsd":
        return _dogstatsd_backend(service, env, version)
    if name == "auto":
        try:
            return _dogstatsd_backend(service, env, version)
        except MissingDependencyError:
            return NoMetrics()
    raise ConfigurationError(f"metrics: unknown backend {name!r}; allowed: {', '.join(METRIC_BACKENDS)}")
