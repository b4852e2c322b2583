"""One readable line per record, for a person watching events locally.

`format_record` turns a record into ``12:00:01 WARN  authn_login_fail  failure  usr=1001 ip=203.0.113.66
reason=invalid_credentials  POST /login 401``: the time, the level, the event type and outcome, then the
fields a reader looks for, in a fixed order. Fields that do not fit the width are left out whole (never cut
in the middle); colour (ANSI) only when asked for. `configure(output="console")` writes records this way
(`ConsoleStream`), and so do `secevents tail` and `secevents demo`. Machines read the JSON lines instead.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from typing import IO, Any, Final, cast

import orjson

__all__ = ["ConsoleStream", "colour_wanted", "format_record"]

_RESET: Final = "\x1b[0m"
_LEVEL: Final = {
    "info": ("INFO ", "\x1b[32m"),
    "warning": ("WARN ", "\x1b[33m"),
    "error": ("ERROR", "\x1b[31m"),
    "critical": ("CRIT ", "\x1b[1;31m"),
}
_OUTCOME: Final = {"success": "\x1b[32m", "failure": "\x1b[31m"}
_DIM: Final = "\x1b[2m"
_TYPE_WIDTH: Final = 24


def colour_wanted(stream: IO[Any]) -> bool:
    """Colour on a terminal, unless `NO_COLOR` is set (https://no-color.org) or `TERM` is `dumb`."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def _short_id(value: object) -> str:
    text = str(value)
    return text[:13] + "…" if text.startswith("anon_") else text  # a pseudonym: the start is enough to tell


def _get(record: Mapping[str, Any], *path: str) -> Any:
    node: Any = record
    for key in path:
        if not isinstance(node, dict):
            return None
        node = cast("dict[str, Any]", node).get(key)
    return node


def format_record(record: Mapping[str, Any], *, colour: bool = False, width: int | None = None) -> str | None:
    """The readable line of a security record, or `None` for anything else (another JSON log line).

    Args:
        record: a parsed record.
        colour: add ANSI colours (level, outcome).
        width: the most characters the line may take; trailing fields that do not fit are left out whole.
    """
    evt_type = _get(record, "evt", "type")
    if not isinstance(evt_type, str):
        if _get(record, "secevents", "end") is True:  # a writer's clean end (docs/delivery.md)
            timestamp = str(record.get("timestamp", ""))
            clock = timestamp[11:19] if len(timestamp) >= 19 else timestamp
            seq = _get(record, "secevents", "seq")
            line = f"{clock} END   writer {_short_id(_get(record, 'secevents', 'writer'))} stopped cleanly"
            return line + (f" after record {int(seq) - 1}" if isinstance(seq, int) else "")
        return None
    status = str(record.get("status", "info"))
    label, level_colour = _LEVEL.get(status, (status[:5].upper().ljust(5), ""))
    timestamp = str(record.get("timestamp", ""))
    clock = timestamp[11:19] if len(timestamp) >= 19 else timestamp
    outcome = _get(record, "evt", "outcome")

    # (plain text, coloured text) of each segment, in the order they are shown
    head: list[tuple[str, str]] = [
        (clock, _DIM + clock + _RESET),
        (label, level_colour + label + _RESET if level_colour else label),
        (evt_type.ljust(_TYPE_WIDTH), evt_type.ljust(_TYPE_WIDTH)),
    ]
    if isinstance(outcome, str):
        paint = _OUTCOME.get(outcome, "")
        head.append((outcome.ljust(7), paint + outcome.ljust(7) + _RESET if paint else outcome.ljust(7)))
    fields: list[str] = []
    user = _get(record, "usr", "id")
    if user is not None:
        fields.append(f"usr={_short_id(user)}")
    if _get(record, "usr", "exists") is False:
        fields.append("exists=false")
    ip = _get(record, "network", "client", "ip")
    if ip is not None:
        fields.append(f"ip={ip}")
    for key in ("reason", "resource"):
        value = _get(record, "evt", key)
        if value is not None:
            fields.append(f"{key}={value}")
    method, path = _get(record, "http", "method"), _get(record, "http", "url_details", "path")
    if method and path:
        code = _get(record, "http", "status_code")
        fields.append(f"{method} {path}" + (f" {code}" if code is not None else ""))
    errors = _get(record, "secevents", "errors")
    if isinstance(errors, list) and errors:
        fields.append(f"errors={len(errors)}")  # pyright: ignore[reportUnknownArgumentType] - JSON

    segments = [*head, *((text, text) for text in fields)]
    plain_length = 0
    shown: list[str] = []
    for number, (plain, painted) in enumerate(segments):
        added = len(plain) + (1 if number else 0)
        if width is not None and plain_length + added > width and number >= 3:
            break  # leave the rest out whole: never cut a value
        plain_length += added
        shown.append(painted if colour else plain)
    return " ".join(shown).rstrip()


class ConsoleStream:
    """A file-like output that writes each record as its readable line (`configure(output="console")`).

    Lines that are not records are written as they are. Colour when `stream` is a terminal (see
    `colour_wanted`).
    """

    def __init__(self, stream: IO[str] | None = None, *, colour: bool | None = None) -> None:
        self._stream = stream
        self._colour = colour
        self._lock = threading.Lock()

    @property
    def stream(self) -> IO[str]:
        """The stream written to (standard output when none was given: looked up at each write)."""
        return self._stream if self._stream is not None else sys.stdout

    def write(self, data: bytes | str) -> int:
        """Write the readable line of each record in `data` (whole JSON lines)."""
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        stream = self.stream
        colour = colour_wanted(stream) if self._colour is None else self._colour
        out: list[str] = []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                record = None
            shown = (
                format_record(cast("dict[str, Any]", record), colour=colour)
                if isinstance(record, dict)
                else None
            )
            out.append((shown if shown is not None else line) + "\n")
        with self._lock:
            stream.write("".join(out))
        return len(data)

    def flush(self) -> None:
        """Flush the underlying stream."""
        self.stream.flush()
