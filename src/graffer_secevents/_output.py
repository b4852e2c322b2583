"""Where rendered records go: a stream (stdout by default, any file-like object) or a stdlib logger.

Records reach the writer through a private structlog logger (``structlog.wrap_logger``), never through the
application's structlog or logging configuration, which this library does not touch.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from typing import IO, Any, Protocol

import structlog

__all__ = ["LoggingWriter", "StreamWriter", "Writer", "make_logger", "make_writer"]


class Writer(Protocol):
    """What the private structlog logger writes to: one method per level, each taking one rendered line."""

    def info(self, line: bytes) -> None: ...
    def warning(self, line: bytes) -> None: ...
    def critical(self, line: bytes) -> None: ...


_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}


class StreamWriter:
    """Writes each record as one line with one ``write`` call and a flush, under a lock.

    ``stream=None`` means ``sys.stdout`` as it is at write time, so test runners that swap stdout see the
    records.
    """

    __slots__ = ("_binary", "_lock", "_stream")

    def __init__(self, stream: IO[Any] | None) -> None:
        self._stream = stream
        self._binary = stream is not None and _is_binary(stream)
        self._lock = threading.Lock()

    def write(self, line: bytes) -> None:
        stream: IO[Any] = self._stream if self._stream is not None else sys.stdout
        if self._binary:
            # A buffered binary stream locks around each call, and one call writes the whole line.
            stream.write(line)  # pyright: ignore[reportArgumentType] - binary: self._stream, not sys.stdout
            stream.flush()
            return
        with self._lock:  # text streams promise no thread safety
            stream.write(line.decode("utf-8"))
            stream.flush()

    # structlog calls the wrapped logger's method named like the level.
    info = warning = critical = write


class LoggingWriter:
    """Hands each record, as a JSON string, to a stdlib logger at the event's level."""

    __slots__ = ("logger",)

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def info(self, line: bytes) -> None:
        self.logger.info(line[:-1].decode("utf-8"))

    def warning(self, line: bytes) -> None:
        self.logger.warning(line[:-1].decode("utf-8"))

    def critical(self, line: bytes) -> None:
        self.logger.critical(line[:-1].decode("utf-8"))


def _is_binary(stream: IO[Any]) -> bool:
    if isinstance(stream, io.TextIOBase):
        return False
    if isinstance(stream, io.RawIOBase | io.BufferedIOBase):
        return True
    return "b" in str(getattr(stream, "mode", ""))


def make_writer(output: Any) -> Writer:
    """Build the writer for ``configure(output=...)``; the caller has validated ``output``."""
    if output is None or output == "stdout":
        return StreamWriter(None)
    if output == "stderr":
        return StreamWriter(sys.stderr)
    if output == "logging":
        return LoggingWriter(logging.getLogger("graffer_secevents"))
    if isinstance(output, logging.Logger):
        return LoggingWriter(output)
    return StreamWriter(output)


def _render_passthrough(_logger: Any, _method: str, event_dict: Any) -> Any:
    # The pipeline renders the record itself (it must catch serialisation errors per record);
    # structlog carries the finished line to the writer.
    return event_dict["event"]


def make_logger(writer: Writer) -> Any:
    """A private structlog bound logger over ``writer``: no global configuration is read or changed."""
    return structlog.wrap_logger(
        writer,
        processors=[_render_passthrough],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        context_class=dict,
        cache_logger_on_first_use=True,
    ).bind()
