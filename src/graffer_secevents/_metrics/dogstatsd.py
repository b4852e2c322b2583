"""The DogStatsD backend and its process management: address resolution, one client per process, the flush
thread, and the exit and fork hooks.

The `datadog` package is imported only when a backend is created.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from graffer_secevents import _fork
from graffer_secevents._errors import ConfigurationError, MissingDependencyError

from .names import sanitize_tag_value

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DEFAULT_DSD_SOCKET",
    "DogStatsdAddress",
    "DogStatsdMetrics",
    "dogstatsd_backend",
    "resolve_dogstatsd_address",
]


DEFAULT_DSD_SOCKET: Final = "/var/run/datadog/dsd.socket"
_DEFAULT_HOST: Final = "localhost"
_DEFAULT_PORT: Final = 8125
_UNIX_SCHEMES = ("unix", "unixgram", "unixstream")


@dataclass(frozen=True, slots=True)
class DogStatsdAddress:
    """Where DogStatsD listens: `host`/`port` for UDP, or `socket_path` (a `unix*://` URL) for UDS."""

    host: str | None = None
    port: int | None = None
    socket_path: str | None = None

    @property
    def url(self) -> str:
        """The address as `udp://host:port` or the `unix://` URL."""
        if self.socket_path is not None:
            return self.socket_path
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"udp://{host}:{self.port}"


def resolve_dogstatsd_address(
    environ: Mapping[str, str] | None = None, *, socket_exists: Callable[[str], bool] = os.path.exists
) -> DogStatsdAddress:
    """Find DogStatsD the way ddtrace does.

    Order: `DD_DOGSTATSD_URL` (`udp://host:port`, `unix:///path`, `unixgram://`, `unixstream://`);
    then `DD_DOGSTATSD_HOST` or `DD_AGENT_HOST` with `DD_DOGSTATSD_PORT` (defaults `localhost` and
    `8125`); then `/var/run/datadog/dsd.socket` if it exists; then `udp://localhost:8125`. (ddtrace
    also falls back to `DD_AGENT_PORT`, the *trace* port 8126; we do not: no DogStatsD listens there.)

    Raises:
        ConfigurationError: `DD_DOGSTATSD_URL` has another scheme or a bad port, or `DD_DOGSTATSD_PORT`
            is not a port number.

    Example:
        >>> resolve_dogstatsd_address({"DD_DOGSTATSD_URL": "udp://10.0.0.5:8125"}).url
        'udp://10.0.0.5:8125'
    """
    env = os.environ if environ is None else environ
    url = env.get("DD_DOGSTATSD_URL", "").strip()
    if url:
        from urllib.parse import urlsplit  # ~3 ms of import with ipaddress, for a setting few deployments use

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
    """The `dogstatsd` backend: one `datadog.dogstatsd.DogStatsd` client per process, aggregating.

    * **Cheap counts.** Counts are aggregated client-side: `count` adds to a dict under a lock (no
      syscall, no string building). A flush thread of ours hands the totals to the `DogStatsd` client every
      `flush_interval` seconds; the client (with buffering on) packs them into as few datagrams as fit and
      adds its constant tags, origin detection and telemetry. The client's own flush thread is not started
      (`flush_interval=0`), so every flush, the exit one included, is serialised by our lock: no count is
      half-flushed when the process ends.
    * **Exit.** An `atexit` hook flushes every live backend, so a short-lived process loses no counts. After
      it, counts (from `atexit` hooks that run later) are sent at once. `os._exit()` skips `atexit`:
      call `flush` before it.
    * **Fork.** The client is created with `track_instance=False` (datadogpy's fork hooks leave it alone)
      and our fork hook (`_fork`: at the fork, or at the first event of a child forked in C, uWSGI's workers)
      makes the child forget the parent's client, counts and locks: a lock held by a parent thread at fork
      time cannot deadlock the child, and the parent's unflushed counts are not sent twice. The client,
      socket and flush thread are created at a process's first count, not at start-up (gunicorn `--preload`
      workers, multiprocessing, and a uWSGI master that forks while its threads would hold the GIL).
    * **No Agent.** Sends are non-blocking UDP (or UDS) and failures are dropped by the client; its
      `datadog.dogstatsd` logger is set to `ERROR` unless the application configured that logger (or
      `datadog`) itself, so a missing Agent does not log a warning per flush. The root logger is never
      touched.
    * **Tags.** `service`/`env`/`version` are added by the client from `DD_SERVICE`/`DD_ENV`/
      `DD_VERSION`; `constant_tags` is only for values those variables do not already give.
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
        # The client and its flush thread start at the first count, in the process that counts: a thread
        # started here would run in a server's master while it forks its workers, and a worker forked in C
        # while that thread holds the GIL (uWSGI without --lazy-apps) waits for it forever.
        self._slow_path = True

    def count(self, name: str, value: int, tags: tuple[str, ...]) -> None:
        """Add `value` to the count of `name` with `tags`; sent at the next flush."""
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
            _debug("graffer_secevents: DogStatsD flush failed")

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
            _debug("graffer_secevents: DogStatsD close failed")
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
            _debug("graffer_secevents: could not create the DogStatsD client")

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
        _fork.in_child(_after_fork_in_child)
        _hooks_installed = True


def _live_backends() -> Iterator[DogStatsdMetrics]:
    return iter(list(_LIVE))


def _flush_all_at_exit() -> None:
    for backend in _live_backends():
        try:
            backend._at_exit()
        except Exception:  # noqa: BLE001 - one failing backend must not stop the others' flush
            _debug("graffer_secevents: DogStatsD exit flush failed")


def _after_fork_in_child() -> None:
    global _hooks_lock  # noqa: PLW0603 - a lock copied mid-acquire by fork is replaced in the child
    _hooks_lock = threading.Lock()
    for backend in _live_backends():
        backend._after_fork_in_child()


def _quiet_dogstatsd_logger() -> None:
    """`datadog.dogstatsd` at `ERROR`, unless the application already configured it or `datadog`.

    `import datadog` gives the logger a `NullHandler`; that alone does not count as configured. Without
    this, an application that configured root logging gets a "dropping the packet" warning per failed send.
    """
    import logging  # datadog imports it anyway

    for name in ("datadog", "datadog.dogstatsd"):
        logger = logging.getLogger(name)
        configured = [h for h in logger.handlers if not isinstance(h, logging.NullHandler)]
        if logger.level != logging.NOTSET or configured:
            return
    logging.getLogger("datadog.dogstatsd").setLevel(logging.ERROR)


def dogstatsd_backend(service: str | None, env: str | None, version: str | None) -> DogStatsdMetrics:
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


def _debug(message: str) -> None:
    """`message` and the exception being handled, at debug level; imports logging only when it is needed."""
    import logging

    logging.getLogger(__name__).debug(message, exc_info=True, stacklevel=2)
