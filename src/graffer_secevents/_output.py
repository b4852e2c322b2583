"""Where rendered records go: standard output or error, a file-like object, a stdlib logger, or structlog.

A target writes a batch of finished JSON lines (each ending in `\\n`) and either returns, meaning every
line reached it, or raises `TargetWriteError` saying how many of the leading lines did and why the rest did
not. That is all `_delivery` needs to keep `secevents.dropped` true. Targets never read or change the
application's logging or structlog configuration.
"""

from __future__ import annotations

import codecs
import errno
import importlib
import io
import json
import os
import select
import stat
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, Final, Protocol, TypeGuard

import orjson

from ._fork import in_child

if TYPE_CHECKING:
    import logging  # imported when a logger target is built: ~10 ms that the other outputs never need

__all__ = [
    "LoggerTarget",
    "StdTarget",
    "StreamTarget",
    "StructlogTarget",
    "Target",
    "TargetWriteError",
    "gevent_patched",
    "is_logger",
    "make_writer",
]

# logging.INFO, logging.WARNING and logging.CRITICAL, whose values are part of logging's documented API.
_INFO: Final = 20
_LEVELS: Final = {"info": _INFO, "warning": 30, "critical": 50}
# Errors a full disk or an interrupted call gives, which may clear: retried, and only then a drop.
_TRANSIENT: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EAGAIN, errno.EINTR})
_CLOSED: Final = frozenset({errno.EPIPE, errno.EBADF, errno.ECONNRESET})
RETRY_DELAYS: Final = (0.01, 0.05, 0.25, 1.0)
"""Pauses before each retry of a transient error on the writer thread (1.3 s in all); the synchronous path
retries as often without pausing, since it runs on the caller's thread."""
# Writes to a pipe up to PIPE_BUF bytes are atomic: chunks of whole lines up to that size never interleave
# with other processes writing the same pipe (gunicorn workers share the container's stdout).
_ATOMIC: Final = select.PIPE_BUF


class TargetWriteError(Exception):
    """Not every line of a batch reached the target: the first `delivered` did, the rest are lost."""

    def __init__(self, reason: str, delivered: int, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.reason = reason
        self.delivered = delivered
        self.cause = cause


class Target(Protocol):
    """Where `_delivery` hands batches of rendered lines."""

    def write_lines(self, lines: Sequence[bytes], levels: Sequence[str], patient: bool) -> None:
        """Write `lines` in order (`levels` are the records' statuses); raise `TargetWriteError` on loss.

        `patient` is true on the writer thread, which may pause before retrying; false on the caller's.
        """


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnicodeError):
        return "encoding"
    if isinstance(exc, ValueError) and "closed" in str(exc):  # io's "I/O operation on closed file"
        return "closed"
    if isinstance(exc, OSError) and exc.errno in _CLOSED:
        return "closed"
    return "write_error"


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _TRANSIENT


def _retrying(action: Callable[[], object], patient: bool, delivered: int = 0) -> None:
    """Run `action`, retrying transient errors a bounded number of times, else raise `TargetWriteError`."""
    try:
        action()
    except Exception as first:  # noqa: BLE001 - any failure of a caller-supplied file-like is a loss
        _retry(action, first, patient, delivered)


def _retry(action: Callable[[], object], exc: Exception, patient: bool, delivered: int) -> None:
    """`action` failed with `exc`: retry it while the error is transient (the slow path)."""
    for delay in RETRY_DELAYS:
        if not _transient(exc):
            break
        if patient:
            time.sleep(delay)
        try:
            action()
            return
        except Exception as again:  # noqa: BLE001 - judged like the first failure
            exc = again
    raise TargetWriteError(_reason(exc), delivered, exc) from exc


def _lines_within(lines: Sequence[bytes], nbytes: int) -> int:
    """How many leading lines the first `nbytes` bytes hold completely."""
    total = count = 0
    for line in lines:
        total += len(line)
        if total > nbytes:
            break
        count += 1
    return count


def _is_utf8(stream: Any) -> bool:
    encoding = getattr(stream, "encoding", None)
    if not isinstance(encoding, str):
        return True  # io.StringIO and most file-likes hold str and encode nothing
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def ascii_line(line: bytes) -> str:
    """The same JSON record with every non-ASCII character escaped (`\\u00e9`), for a non-UTF-8 stream."""
    return json.dumps(orjson.loads(line), ensure_ascii=True, separators=(",", ":")) + "\n"


def _is_binary(stream: Any) -> bool:
    if isinstance(stream, io.TextIOBase):
        return False
    if isinstance(stream, io.RawIOBase | io.BufferedIOBase):
        return True
    return "b" in str(getattr(stream, "mode", ""))


_LOCKED: weakref.WeakSet[StreamTarget | StdTarget] = weakref.WeakSet()


def _unlock_after_fork() -> None:
    # A fork taken while the parent's writer was inside a write copies its lock held: give each a new one.
    # The same goes for a buffered file's own lock (io's, which nothing renews), and its buffer holds the
    # parent's bytes: a child writes its records straight to the file's descriptor instead, so they are its
    # own and reach the file whatever state the parent's buffer was copied in.
    for target in list(_LOCKED):
        target._lock = threading.Lock()
        if isinstance(target, StreamTarget):
            target._fd = _descriptor(target.stream)


def _descriptor(stream: Any) -> int | None:
    if not isinstance(stream, io.BufferedIOBase | io.TextIOBase) and not hasattr(stream, "buffer"):
        return None  # a raw stream or a caller's own object: no buffer of its own to inherit
    try:
        fd = stream.fileno()
    except Exception:  # noqa: BLE001 - StringIO, BytesIO, a closed file: written as before
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


in_child(_unlock_after_fork)


_BINARY, _TEXT, _VIA_BUFFER, _ESCAPED = range(4)


def _kind(stream: Any) -> int:
    """How to write to `stream`: bytes, UTF-8 text, bytes through its `buffer`, or ASCII-escaped text."""
    if _is_binary(stream):
        return _BINARY
    if _is_utf8(stream):
        return _TEXT
    if callable(getattr(getattr(stream, "buffer", None), "write", None)):
        return _VIA_BUFFER
    return _ESCAPED


class StreamTarget:
    """A file-like object: one `write` per batch (text or bytes), then a `flush`.

    A failed `flush` after a successful `write` loses nothing yet (the stream holds the data and the next
    flush may succeed), so it is not a drop. A text stream whose encoding is not UTF-8 gets the UTF-8 bytes
    through its `buffer` when it has one, else each line with its non-ASCII characters escaped.
    """

    __slots__ = ("__weakref__", "_fd", "_kind", "_lock", "key", "stream")

    def __init__(self, stream: IO[Any]) -> None:
        self.stream = stream
        self._fd: int | None = None  # set in a forked child (see _unlock_after_fork)
        self._kind = _kind(stream)
        self._lock = threading.Lock()  # text streams promise no thread safety (synchronous delivery)
        self.key: object = _key_of(stream)  # the same output across configure() calls
        _LOCKED.add(self)

    def write_lines(self, lines: Sequence[bytes], levels: Sequence[str], patient: bool) -> None:
        if self._fd is not None:
            with self._lock:
                write_fd(self._fd, lines, patient)
            return
        write_stream(self.stream, self._kind, lines, patient, self._lock)


def _key_of(stream: object) -> object:
    """The stream itself (kept alive, so its numbers are never another stream's), else its id."""
    try:
        hash(stream)
    except TypeError:
        return ("stream", id(stream))
    return stream


def write_stream(stream: Any, kind: int, lines: Sequence[bytes], patient: bool, lock: threading.Lock) -> None:
    """Write `lines` to the file-like `stream` as `StreamTarget` describes.

    A raw binary stream may take part of the data (`write` returns how much): the rest is written after
    it. If a record was left half-written when the write failed for good, the next write to the stream
    starts with a newline, so the torn part stands alone as one unparseable line and the next record is
    whole.
    """
    if stream is None:
        raise TargetWriteError("closed", 0, ValueError("the stream is None (closed)"))
    data: Any = lines[0] if len(lines) == 1 else b"".join(lines)
    sink = stream
    with lock:
        if kind == _TEXT:
            data = data.decode("utf-8")
        elif kind == _VIA_BUFFER:
            _flush_quietly(stream)  # what the application wrote through the text layer goes first
            sink = stream.buffer
        elif kind == _ESCAPED:
            data = "".join(ascii_line(line) for line in lines)
        if kind == _BINARY and isinstance(sink, io.RawIOBase):
            if id(sink) in _TORN_STREAMS:  # only a raw binary stream reports a partial write
                _TORN_STREAMS.discard(id(sink))
                data = b"\n" + data
            _write_binary(sink, data, lines, patient)
        else:
            try:
                sink.write(data)
            except Exception as exc:  # noqa: BLE001 - judged (and perhaps retried) by _retry
                _retry(lambda: sink.write(data), exc, patient, 0)
        flush = getattr(sink, "flush", None)
        if flush is not None:
            try:
                flush()
            except Exception as exc:  # noqa: BLE001 - see _flush_failed
                _flush_failed(flush, exc, patient)


_TORN_STREAMS: set[int] = set()
"""Streams (by id) left with a record half-written: the next write starts with a newline."""


def _write_binary(sink: Any, data: bytes, lines: Sequence[bytes], patient: bool) -> None:
    view = memoryview(data)
    offset = [0]
    raw = isinstance(sink, io.RawIOBase)

    def rest() -> None:
        while offset[0] < len(view):
            wrote = sink.write(data if offset[0] == 0 else view[offset[0] :])
            # A raw stream says how much it took (None: nothing yet, non-blocking); others take it all.
            if wrote is None and raw:
                raise BlockingIOError(errno.EAGAIN, "the stream took nothing")
            rest = len(view) - offset[0]
            offset[0] += wrote if raw and isinstance(wrote, int) and 0 <= wrote <= rest else rest

    try:
        _retrying(rest, patient)
    except TargetWriteError as failure:
        extra = len(data) - sum(len(line) for line in lines)  # a leading newline after an earlier tear
        done = max(0, offset[0] - extra)
        failure.delivered = _lines_within(lines, done)
        if done > sum(len(line) for line in lines[: failure.delivered]):
            _TORN_STREAMS.add(id(sink))
        raise


def _flush_failed(flush: Callable[[], object], exc: Exception, patient: bool) -> None:
    """A flush after a successful write failed. The stream holds the data, so this is a loss only when the
    output is gone for good (closed, a pipe whose reader left); otherwise a later flush may still deliver."""
    try:
        _retry(flush, exc, patient, 0)
    except TargetWriteError as failure:
        if failure.reason == "closed":
            raise


def _flush_quietly(stream: Any) -> None:
    flush = getattr(stream, "flush", None)
    if flush is None:
        return
    try:
        flush()
    except Exception:  # noqa: BLE001, S110 - only ordering is at stake: the application's own buffered text
        pass


class StdTarget:
    """`sys.stdout` or `sys.stderr` as they are at write time.

    The process's own standard stream (`sys.__stdout__`) is written with `os.write` on its descriptor,
    in chunks of whole lines of at most `PIPE_BUF` bytes: a stuck pipe then blocks only the writer thread
    in a system call and never holds the `sys.stdout` buffer's lock, which the interpreter needs at exit.
    A replaced stream (a test runner's capture, `io.StringIO`) is written like any file-like object.
    """

    __slots__ = ("__weakref__", "_last", "_last_kind", "_lock", "key", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.key = name  # the same output across configure() calls
        self._lock = threading.Lock()
        self._last: Any = None  # the replaced stream last written, and how to write to it
        self._last_kind = _TEXT
        _LOCKED.add(self)

    @property
    def chunk_bytes(self) -> int:
        """The most bytes `_delivery` hands over in one call: `PIPE_BUF` for a pipe, a socket or a terminal
        (one atomic write each, so a batch stuck in a write is exactly one chunk), else 1 MiB."""
        stream = self._current()
        if stream is None or stream is not getattr(sys, f"__{self.name}__"):
            return 1 << 20
        try:
            return 1 << 20 if not _shared_fd(stream.fileno()) else _ATOMIC
        except Exception:  # noqa: BLE001 - closed: the write says so
            return _ATOMIC

    def _current(self) -> Any:
        """`sys.stdout` (or `sys.stderr`) now; the process's own when it was replaced by a logging proxy."""
        stream = getattr(sys, self.name)
        if _LOGGING_PROXIES.get(type(stream).__module__) == type(stream).__qualname__:
            return getattr(sys, f"__{self.name}__")
        return stream

    def write_lines(self, lines: Sequence[bytes], levels: Sequence[str], patient: bool) -> None:
        stream = self._current()
        original = getattr(sys, f"__{self.name}__")
        if stream is None or stream is not original:
            if stream is not self._last:
                self._last, self._last_kind = stream, _kind(stream)
            write_stream(stream, self._last_kind, lines, patient, self._lock)
            return
        try:
            fd = stream.fileno()
        except Exception as exc:  # closed, or no descriptor at all
            if isinstance(exc, ValueError):
                raise TargetWriteError("closed", 0, exc) from exc
            write_stream(stream, _kind(stream), lines, patient, self._lock)
            return
        write_fd(fd, lines, patient)  # UTF-8 bytes whatever the text layer's encoding (JSON is UTF-8)


_LOGGING_PROXIES: Final = {"celery.utils.log": "LoggingProxy", "twisted.logger._io": "LoggingFile"}
"""Replacements of `sys.stdout`/`sys.stderr` that turn each write into a log record of the application's
logging (a Celery worker installs Celery's by default, `worker_redirect_stdouts`): a record written through
one would reach the output as a log line around the JSON (`[... WARNING/MainProcess] {...}`), which no log
pipeline parses as the record. `"stdout"` means the process's own standard output, so records go there."""


def _shared_fd(fd: int) -> bool:
    """Whether writes to `fd` can interleave with other processes' (a pipe, a socket, a terminal) unless
    each is at most `PIPE_BUF` bytes; a regular file takes a large write at once."""
    try:
        return not stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        return True


def fd_write(fd: int, data: Any) -> int:
    """`os.write`, except in a process monkey-patched by gevent (gunicorn's `gevent` worker): there the
    writer thread is a greenlet, and a write that blocks (a full pipe, a stalled log shipper) would stop
    every greenlet of the process, requests included. The write then runs on gevent's pool of real threads
    while the greenlet waits cooperatively. (eventlet's patched `os.write` already waits cooperatively.)"""
    if gevent_patched():
        return int(importlib.import_module("gevent.os").tp_write(fd, data))  # gevent is imported already
    return os.write(fd, data)


def gevent_patched() -> bool:
    """gevent's monkey-patching is on: threads are greenlets of the main thread. Never imports gevent."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


_TORN_FDS: set[int] = set()
"""Descriptors left with a record half-written (a disk that filled mid-record): the next write to it
starts with a newline, so the torn part stands alone as one unparseable line and the next record is whole."""


def write_fd(fd: int, lines: Sequence[bytes], patient: bool) -> None:
    """Write `lines` to a descriptor in atomic chunks (whole lines of at most `PIPE_BUF` bytes on a pipe,
    socket or terminal; one write on a regular file), resuming after partial writes; retry transient
    errors; raise `TargetWriteError` with the number of lines fully written."""
    done = 0  # lines fully written
    limit = _ATOMIC if _shared_fd(fd) else 1 << 30
    while done < len(lines):
        end, size = done, 0
        while end < len(lines) and (end == done or size + len(lines[end]) <= limit):
            size += len(lines[end])
            end += 1
        lead = b""
        if fd in _TORN_FDS:
            lead = b"\n"
            _TORN_FDS.discard(fd)
        chunk = memoryview(lead + b"".join(lines[done:end]) if lead or end - done > 1 else lines[done])
        offset = [0]

        def rest(chunk: memoryview = chunk, offset: list[int] = offset) -> None:
            while offset[0] < len(chunk):
                offset[0] += fd_write(fd, chunk[offset[0] :])

        try:
            _retrying(rest, patient, done)
        except TargetWriteError as failure:
            written = max(0, offset[0] - len(lead))
            whole = _lines_within(lines[done:end], written)
            failure.delivered = done + whole
            if written > sum(len(line) for line in lines[done : done + whole]):
                _TORN_FDS.add(fd)  # a record was cut: the next write ends it first
            elif offset[0] < len(lead):
                _TORN_FDS.add(fd)  # the newline that ends an earlier torn record is still owed
            raise
        done = end


class LoggerTarget:
    """A stdlib logger: one record per line at the event's level, the JSON (without `\\n`) as message.

    The handlers are called here as `logging.Logger.callHandlers` would (levels, filters, `propagate`,
    `lastResort`), each watched for a failure: a handler's `emit` reports errors only to its own
    `handleError` and never raises, so for the length of one call (under the handler's own lock, so no other
    thread's record can pass through it) that handler's `handleError` is wrapped to note the failure
    before running as usual. A record that no handler could take counts as dropped; one the application's
    levels or filters turn away does not.
    """

    __slots__ = ("key", "logger")

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.key: object = ("logger", logger.name)

    def write_lines(self, lines: Sequence[bytes], levels: Sequence[str], patient: bool) -> None:
        logger = self.logger
        for index, (line, level) in enumerate(zip(lines, levels, strict=True)):
            levelno = _LEVELS.get(level, _INFO)
            if logger.disabled or not logger.isEnabledFor(levelno):
                continue
            try:
                text = line[:-1].decode("utf-8")
                record = logger.makeRecord(logger.name, levelno, "graffer_secevents", 0, text, (), None)
                if logger.filter(record) and not _call_handlers(logger, record):
                    raise RuntimeError("a logging handler failed (see its handleError output)")
            except Exception as exc:  # the remaining records are not delivered either
                raise TargetWriteError(_reason(exc), index, exc) from exc


def _call_handlers(logger: logging.Logger, record: logging.LogRecord) -> bool:
    """Pass `record` to the handlers `logging.Logger.callHandlers` would; return whether all succeeded."""
    import logging  # already imported (a Logger exists): this only binds the name

    ok = True
    found = 0
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            found += 1
            if record.levelno >= handler.level:
                ok = _handle_watched(handler, record) and ok
        current = current.parent if current.propagate else None
    last = logging.lastResort
    if found == 0 and last is not None and record.levelno >= last.level:
        ok = _handle_watched(last, record)
    return ok


def _handle_watched(handler: logging.Handler, record: logging.LogRecord) -> bool:
    failed: list[bool] = []
    handler.acquire()  # an RLock: handle() takes it again around emit()
    try:
        own = handler.__dict__.get("handleError")
        original = handler.handleError

        def note_failure(failed_record: logging.LogRecord) -> None:
            failed.append(True)
            original(failed_record)

        handler.handleError = note_failure  # type: ignore[method-assign,assignment]
        try:
            handler.handle(record)
        finally:
            if own is None:
                del handler.handleError
            else:
                handler.handleError = own  # type: ignore[method-assign]
    finally:
        handler.release()
    return not failed


class StructlogTarget:
    """The application's own structlog chain: `structlog.get_logger("graffer_secevents")`.

    Each record's keys become the event dict (`message` is the event), so the application's processors
    decide how it is rendered and where it goes. Imported only when this output is configured.
    """

    __slots__ = ("logger",)
    key: Final = "structlog"

    def __init__(self) -> None:
        import structlog

        self.logger = structlog.get_logger("graffer_secevents")

    def write_lines(self, lines: Sequence[bytes], levels: Sequence[str], patient: bool) -> None:
        for index, (line, level) in enumerate(zip(lines, levels, strict=True)):
            try:
                event_dict = orjson.loads(line)
                message = event_dict.pop("message", "")
                getattr(self.logger, level if level in _LEVELS else "info")(message, **event_dict)
            except Exception as exc:  # a failing processor chain loses this record
                raise TargetWriteError(_reason(exc), index, exc) from exc


OUTPUT_NAMES: Final = ("stdout", "stderr", "logging", "structlog")


def is_logger(value: object) -> TypeGuard[logging.Logger]:
    """Whether `value` is a `logging.Logger`, without importing logging: a logger exists only once it is."""
    logging = sys.modules.get("logging")
    return logging is not None and isinstance(value, logging.Logger)


def make_writer(output: Any) -> Target:
    """Build the target for `configure(output=...)`; the caller has validated `output`."""
    if output is None or output == "stdout":
        return StdTarget("stdout")
    if output == "stderr":
        return StdTarget("stderr")
    if output == "logging":
        import logging

        return LoggerTarget(logging.getLogger("graffer_secevents"))
    if output == "structlog":
        return StructlogTarget()
    if is_logger(output):
        return LoggerTarget(output)
    return StreamTarget(output)
