"""`configure(output=...)` beyond the stream names: a path (appended to, created if missing) and `"console"`.

A path is opened once, when the configuration is built, with `O_APPEND | O_CREAT` (its directory is created
too), and every batch is one `os.write` of whole lines: the kernel appends each write at the end of the file
at that moment, so several processes (gunicorn workers, a forked child) appending to the same file never
overwrite one another, and nothing sits in a user-space buffer a fork could duplicate or an exit could lose.
The object behaves as any file-like output (`_output.StreamTarget` writes to it), so delivery, retries and
drop counting are the same as for a stream.
"""

from __future__ import annotations

import os
from typing import Final

from ._errors import ConfigurationError
from ._output import fd_write

__all__ = ["AppendFile", "is_path", "open_output"]

_SUFFIXES: Final = (".log", ".jsonl", ".json", ".ndjson", ".txt", ".out")


def is_path(value: str) -> bool:
    """Whether an `output` string names a file rather than an output name (`"stdout"`, a typo of one)."""
    return os.sep in value or "/" in value or value.lower().endswith(_SUFFIXES)


class AppendFile:
    """A file opened for appending, written with one `os.write` per batch (no user-space buffer)."""

    __slots__ = ("_fd", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(directory, exist_ok=True)
            self._fd = os.open(
                path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o640
            )
        except OSError as exc:
            raise ConfigurationError(
                f"output: cannot open {path!r} for appending ({exc.strerror or exc}); pass a path the "
                "process can write, or 'stdout'"
            ) from None

    def write(self, data: bytes | str) -> int:
        """Append `data` (whole lines); a short write is continued until all of it is written."""
        view = memoryview(data.encode("utf-8") if isinstance(data, str) else data)
        written = 0
        while written < len(view):
            written += fd_write(self._fd, view[written:])
        return written

    def flush(self) -> None:
        """Nothing to do: every write went to the kernel."""

    def fileno(self) -> int:
        """The file descriptor."""
        return self._fd

    def __repr__(self) -> str:
        return f"AppendFile({self.path!r})"


_opened: dict[str, AppendFile] = {}


def open_output(output: object) -> object:
    """What `make_writer` gets for a configured `output`: an `AppendFile` for a path, a `ConsoleStream` for
    `"console"`, else `output` itself.

    A path is opened once per process and reused by later configurations naming the same path.
    """
    if output == "console":
        from ._console import ConsoleStream

        return ConsoleStream()
    if not isinstance(output, str) or not is_path(output):
        return output
    key = os.path.abspath(output)
    opened = _opened.get(key)
    if opened is None:
        opened = _opened[key] = AppendFile(output)
    return opened
