"""`secevents tail`: one readable, coloured line per security record, for a person watching logs.

`kubectl logs deploy/auth-api -f | secevents tail` or `secevents tail app.log`: each JSON line that is a
security record becomes the line `graffer_secevents._console.format_record` draws (time, level, event type,
outcome, user, IP, reason, request), fitted to the terminal's width without cutting a value; other lines
pass through unchanged (`--events-only` drops them). Colour on a terminal unless `NO_COLOR` is set.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import IO, Any, cast

import orjson

from graffer_secevents._console import colour_wanted, format_record

__all__ = ["run_tail"]


def run_tail(source: IO[bytes], out: IO[str], *, events_only: bool = False, width: int | None = None) -> int:
    """Copy `source` to `out`, a readable line per record; return the number of records shown."""
    colour = colour_wanted(out)
    if width is None and (os.environ.get("COLUMNS") or _isatty(out)):
        width = shutil.get_terminal_size().columns  # COLUMNS first, then the terminal's own size
    shown = 0
    for raw in iter(source.readline, b""):
        line = raw.rstrip(b"\r\n")
        record: object = None
        if line.lstrip().startswith(b"{"):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                record = None
        text = (
            format_record(cast("dict[str, Any]", record), colour=colour, width=width)
            if isinstance(record, dict)
            else None
        )
        if text is not None:
            shown += 1
            out.write(text + "\n")
        elif not events_only:
            out.write(line.decode("utf-8", "replace") + "\n")
        out.flush()
    return shown


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def main_tail(path: str, events_only: bool) -> int:
    """The command: read `path` (`-`: standard input)."""
    if path == "-":
        run_tail(sys.stdin.buffer, sys.stdout, events_only=events_only)
        return 0
    with open(path, "rb") as source:
        run_tail(source, sys.stdout, events_only=events_only)
    return 0
