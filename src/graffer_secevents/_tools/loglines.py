"""Reading logs as `secevents validate`, `detect` and `report` do: size-bounded lines, each classified as one
of our records, another JSON line, or text (a prefix before the JSON is allowed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any, Final, cast

import orjson

__all__ = ["DEFAULT_MAX_LINE_BYTES"]

DEFAULT_MAX_LINE_BYTES: Final = 4 * 1024 * 1024
"""A record is bounded (fewer than 256 attributes, strings cut at 1024 characters), so a longer line is not
one of ours; reading stops buffering at this size, so a huge line costs no more memory than this."""
_LOGGER_NAME: Final = "graffer_secevents"
_CONTROL: Final = {i: f"\\x{i:02x}" for i in [*range(0x20), *range(0x7F, 0xA0)]}
"""Control characters as escapes, for text from a log shown in a terminal."""


def _read_lines(stream: IO[bytes], limit: int) -> Iterator[tuple[int, bytes, int | None]]:
    """(line number, bytes, total size if the line was longer than `limit` else None), memory bounded."""
    number = 0
    while True:
        chunk = stream.readline(limit + 1)
        if not chunk:
            return
        number += 1
        if len(chunk) <= limit or chunk.endswith(b"\n"):
            yield number, chunk, None
            continue
        total = len(chunk)
        while True:  # skip the rest of the oversized line; ends at its newline or at EOF
            more = stream.readline(limit + 1)
            total += len(more)
            if not more or more.endswith(b"\n"):
                break
        yield number, chunk, total


def _is_security_record(obj: dict[str, Any]) -> bool:
    logger: object = obj.get("logger")
    if isinstance(logger, dict) and cast("dict[str, Any]", logger).get("name") == _LOGGER_NAME:
        return True
    evt = obj.get("evt")
    if isinstance(evt, dict) and "type" in evt:
        return True
    # Flat dotted keys are not our format, but a record re-serialised that way is one of ours gone wrong.
    return obj.get("logger.name") == _LOGGER_NAME or "evt.type" in obj


def _looks_like_record(line: bytes) -> bool:
    return b'"graffer_secevents"' in line or b'"evt"' in line or b'"evt.type"' in line


def _parse(line: bytes) -> tuple[str, Any]:
    """Classify one line: `blank`, `not_json`, `not_security`, `record` (with the object) or
    `broken` (with the reason: it looks like a security record but is not valid JSON)."""
    stripped = line.strip()
    if not stripped:
        return "blank", None
    if stripped.startswith(b"{"):
        try:
            obj = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            if _looks_like_record(stripped):
                return "broken", _json_error(stripped, exc)
            return "not_json", None
        return ("record", obj) if _is_security_record(obj) else ("not_security", None)
    try:
        orjson.loads(stripped)
    except orjson.JSONDecodeError:
        pass
    else:
        return "not_security", None  # a JSON array, string, number...
    # A prefix before the JSON: `kubectl logs --timestamps`, `docker compose logs`, a logging formatter.
    start = stripped.find(b"{")
    if start > 0:
        try:
            obj = orjson.loads(stripped[start:])
        except orjson.JSONDecodeError:
            return "not_json", None
        if _is_security_record(obj):
            return "record", obj
        return "not_security", None
    return "not_json", None


def _json_error(line: bytes, exc: orjson.JSONDecodeError) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"not valid UTF-8 (byte {bad.start} of the line)"
    return f"not valid JSON ({exc})"
