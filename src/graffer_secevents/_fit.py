"""Records that fit in one atomic write: every written line is at most `MAX_LINE_BYTES` (4,096) bytes.

A write of up to `PIPE_BUF` bytes to a pipe never interleaves with another process's write to the same
pipe; a longer one may, and then two workers' records are spliced into two invalid lines (gunicorn and
uvicorn workers share the container's stdout). The size that matters is the *encoded* one: JSON escaping
turns a 1,024-character value of control characters into 6 KB, so the limits on characters cannot bound it.

The pipeline renders as usual and calls `fit_line` only when the line is over `LINE_BUDGET` (the limit less
the room the writer's stamp needs). The record is then shrunk in stages, re-rendered after each, until it
fits: first what the request and the caller supplied (the request's strings, then the caller's `context`,
then the notes), and only then the event's own values; `usr`, `network.client.ip` and `evt` are always
kept (their values may be shortened, never removed), and every change is noted in `secevents.errors`.
"""

# Parsed JSON is walked as Any-typed containers; each value is checked at run time where it is used.
# pyright: reportUnknownArgumentType=false, reportUnknownVariableType=false, reportUnknownMemberType=false

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import orjson

from ._delivery import MAX_LINE_BYTES, STAMP_BYTES

__all__ = ["LINE_BUDGET", "fit_line"]

LINE_BUDGET: Final = MAX_LINE_BYTES - STAMP_BYTES
"""The most bytes the pipeline's rendered line may take; the writer's stamp fills at most the rest."""
_WHY: Final = f"to keep the record within one {MAX_LINE_BYTES}-byte write"
_ELLIPSIS: Final = "..."
_MAX_NOTES: Final = 20  # as the pipeline shows them (MAX_ERRORS)


def _encoded(text: str) -> int:
    return len(orjson.dumps(text)) - 2


def _cut(text: str, limit: int) -> str:
    """The longest prefix of `text` whose JSON encoding, with `...` after it, is at most `limit` bytes."""
    if _encoded(text) <= limit:
        return text
    low, high = 0, min(len(text), limit)
    budget = limit - len(_ELLIPSIS)
    while low < high:  # the longest prefix that fits: binary search on its length
        mid = (low + high + 1) // 2
        if _encoded(text[:mid]) <= budget:
            low = mid
        else:
            high = mid - 1
    return text[:low] + _ELLIPSIS


def _cut_tree(value: Any, where: str, limit: int, items: int, cut: list[str]) -> Any:
    """`value` with every string cut to `limit` encoded bytes and every list to `items` items; the paths
    of what changed are appended to `cut`."""
    if isinstance(value, str):
        shorter = _cut(value, limit)
        if shorter is not value:
            cut.append(where)
        return shorter
    if isinstance(value, dict):
        return {key: _cut_tree(item, f"{where}.{key}", limit, items, cut) for key, item in value.items()}
    if isinstance(value, list):
        if len(value) > items:
            cut.append(f"{where}[]")
            value = value[:items]
        return [_cut_tree(item, where, limit, items, cut) for item in value]
    return value


def _shorten(part: str, limit: int, items: int = 32) -> Callable[[dict[str, Any], list[str]], None]:
    def stage(record: dict[str, Any], notes: list[str]) -> None:
        if part not in record:
            return
        cut: list[str] = []
        record[part] = _cut_tree(record[part], part, limit, items, cut)
        for where in dict.fromkeys(cut):
            notes.append(f"{where}: cut to {limit} bytes ({items} items) {_WHY}")

    return stage


def _drop(part: str) -> Callable[[dict[str, Any], list[str]], None]:
    def stage(record: dict[str, Any], notes: list[str]) -> None:
        value = record.pop(part, None)
        if value is not None:
            notes.append(f"{part}: dropped ({len(orjson.dumps(value))} bytes) {_WHY}")

    return stage


def _http_essentials(record: dict[str, Any], notes: list[str]) -> None:
    http = record.get("http")
    if isinstance(http, dict):
        kept = {key: http[key] for key in ("method", "status_code") if key in http}
        if len(kept) < len(http):
            notes.append(f"http: all but method and status_code dropped {_WHY}")
            record["http"] = kept


_STAGES: Final[tuple[Callable[[dict[str, Any], list[str]], None], ...]] = (
    _shorten("http", 512),
    _shorten("context", 256, 16),
    _drop("context"),
    _shorten("http", 128),
    _shorten("evt", 512, 16),
    _shorten("usr", 512),
    _shorten("target", 512),
    _http_essentials,
    _shorten("evt", 128, 4),
    _shorten("usr", 128),
    _shorten("target", 128),
    _drop("target"),
)


def _render(record: dict[str, Any], meta: dict[str, Any], errors: list[str], notes_max: int) -> bytes:
    shown = [_cut(note, 200) for note in errors[:notes_max]]
    if len(errors) > notes_max:
        shown.append(f"... and {len(errors) - notes_max} more")
    record["secevents"] = {**meta, "errors": shown}
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def fit_line(line: bytes) -> bytes:
    """`line` (a rendered record over `LINE_BUDGET` bytes) shrunk to fit, every change noted."""
    record: dict[str, Any] = orjson.loads(line)
    meta = record.pop("secevents", None)
    meta = dict(meta) if isinstance(meta, dict) else {"schema": 1}
    earlier = meta.pop("errors", None)
    errors: list[str] = [str(note) for note in earlier] if isinstance(earlier, list) else []
    size = len(line)
    notes: list[str] = []
    # The shrinking notes first: they say why the rest may be missing. Fewer notes only as a last resort.
    for stage in _STAGES:
        stage(record, notes)
        out = _render(record, meta, [f"the record was {size} bytes", *notes, *errors], _MAX_NOTES)
        if len(out) <= LINE_BUDGET:
            return out
    for shown in (8, 2):
        out = _render(record, meta, [f"the record was {size} bytes", *notes, *errors], shown)
        if len(out) <= LINE_BUDGET:
            return out
    return _minimal(record, meta, size)


def _minimal(record: dict[str, Any], meta: dict[str, Any], size: int) -> bytes:
    """The last resort (a service name of kilobytes, say): the event's identity and nothing else."""
    evt = record.get("evt") or {}
    keep = {key: _cut(str(evt[key]), 64) for key in ("type", "name", "category", "outcome") if key in evt}
    kept: dict[str, Any] = {
        "timestamp": record.get("timestamp"),
        "status": record.get("status"),
        "message": _cut(str(record.get("message", "")), 200),
        "logger": {"name": "graffer_secevents"},
        "evt": keep,
    }
    usr = record.get("usr")
    if isinstance(usr, dict):
        kept["usr"] = _cut_tree(usr, "usr", 64, 2, [])
    if "network" in record:
        kept["network"] = record["network"]
    note = f"the record was {size} bytes: everything but its event, user and client IP dropped {_WHY}"
    kept["secevents"] = {"schema": meta.get("schema", 1), "errors": [note]}
    return orjson.dumps(kept, option=orjson.OPT_APPEND_NEWLINE)
