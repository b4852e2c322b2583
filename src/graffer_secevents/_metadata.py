"""Caller metadata (`**context`, `context=`): made JSON-safe with bounded work, whatever its shape.

Step 4 of the pipeline (`_pipeline.py`). Secrets under secret-looking keys are redacted; every other change
(a value cut, converted, flattened or dropped) is noted in `secevents.errors`. The walk is bounded
(`_limits`, docs/privacy.md "Bounded work per event"): at most `MAX_CONTEXT_NODES` values and containers are
visited — every reference counts, so a structure that shares sub-lists costs what it writes, not what it
would expand to — at most `MAX_CONTEXT_ATTRIBUTES` values are written, the rendered size stays under
`MAX_CONTEXT_BYTES`, containers are read only up to `MAX_LIST` items (a mapping up to the attribute budget)
and nesting is cut at `MAX_FLAT_DEPTH`. The budget is checked before every value, inside sequences as inside
mappings. Once a budget is spent, the rest is dropped with one note.
"""

# The sanitiser walks caller-supplied values of any type; each element is checked at run time where used.
# pyright: reportUnknownArgumentType=false, reportUnknownVariableType=false, reportUnknownMemberType=false

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import math
import uuid
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any, Final

import orjson

from ._limits import (
    MAX_CONTEXT_ATTRIBUTES,
    MAX_CONTEXT_BYTES,
    MAX_CONTEXT_DEPTH,
    MAX_CONTEXT_NODES,
    MAX_FLAT_DEPTH,
    MAX_KEY,
    MAX_KEY_SCANNED,
    MAX_LIST,
    MAX_STRING,
    _coerce_str,
    _exact,
    _in_int64,
    _int_text,
    _limit_str,
    _take,
)
from ._privacy import REDACTED, Privacy, is_secret_key

__all__ = ["ContextSanitiser"]

# Written as their str() without a note: values whose text is their canonical form and holds no attributes.
_SCALARS: Final = (uuid.UUID, datetime.date, datetime.time, datetime.timedelta, decimal.Decimal, enum.Enum)
_FULL: Final = object()  # what a value is when a budget is spent: not written


def _size(text: str) -> int:
    """The bytes `text` takes in the rendered line, quotes and JSON escapes included (an upper bound)."""
    if text.isascii() and text.isprintable():
        return len(text) + 3 + text.count('"') + text.count("\\")
    try:
        return len(orjson.dumps(text)) + 1
    except orjson.JSONEncodeError:  # lone surrogates: escaped later as \\udxxx, 6 characters each at most
        return 6 * len(text) + 3


class ContextSanitiser:
    """One event's walk of caller metadata, with its budgets. Build one per event; call `mapping`."""

    __slots__ = ("attributes", "bytes", "errors", "full", "max_depth", "nodes", "notes", "path", "privacy")

    def __init__(
        self, errors: list[str], notes: list[str] | None = None, privacy: Privacy | None = None
    ) -> None:
        self.errors = errors
        self.privacy = privacy  # when given, string values are checked for secret shapes and e-mails
        self.notes = errors if notes is None else notes  # redactions: noted, but not errors in strict mode
        self.attributes = 0  # values written (a flattened subtree is one)
        self.nodes = 0  # values and containers visited, at any depth
        self.bytes = 2  # rendered size so far: the braces of `context` itself
        self.full = False  # a budget is spent: everything after is dropped (noted once)
        self.max_depth = MAX_CONTEXT_DEPTH
        self.path: set[int] = set()  # the containers being walked: a reference back to one is a cycle

    def room(self, cap: int) -> int:
        """`cap`, or fewer when the budgets leave room for fewer values: caller containers are read no further
        than the walk can write (plus one, which meets the budget and is noted)."""
        left = min(MAX_CONTEXT_ATTRIBUTES - self.attributes, MAX_CONTEXT_NODES - self.nodes) + 1
        return max(1, min(cap, left))

    def spend(self, where: str, cost: int) -> bool:
        """Count one value of `cost` bytes; `False` (noted once) when a budget is spent."""
        if self.full:
            return False
        self.nodes += 1
        self.bytes += cost
        if self.nodes > MAX_CONTEXT_NODES:
            what = f"{MAX_CONTEXT_NODES} values and containers"
        elif self.bytes > MAX_CONTEXT_BYTES:
            what = f"{MAX_CONTEXT_BYTES} bytes"
        elif self.attributes >= MAX_CONTEXT_ATTRIBUTES:
            what = f"{MAX_CONTEXT_ATTRIBUTES} attributes"
        else:
            return True
        self.full = True
        self.errors.append(f"{where}: caller metadata over its limit of {what}; this and the rest dropped")
        return False

    def fit(self, text: str, size: int, where: str) -> tuple[str, int]:
        """`text` cut (noted) to what is left of the byte budget, when enough is left to be worth it."""
        room = MAX_CONTEXT_BYTES - self.bytes - 3
        keep = len(text) * room // size
        while keep > 0 and (cut_size := _size(text[:keep])) > room + 3:
            keep = keep * (room + 3) // cut_size - 1  # denser at the start than on average: cut again
        if keep <= 0:
            return text, size  # nothing fits: spend() drops it, noted
        self.errors.append(
            f"{where}: cut to {keep} characters, the rest of caller metadata's {MAX_CONTEXT_BYTES} bytes"
        )
        return text[:keep], _size(text[:keep])

    def mapping(
        self, data: Mapping[Any, Any], where: str, depth: int, out: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        out = {} if out is None else out
        items = _items(data, self.room(MAX_CONTEXT_ATTRIBUTES), where, self.errors)
        self.path.add(id(data))
        for pair in items:
            if self.full:
                break
            if (type(pair) is tuple or type(pair) is list) and len(pair) == 2:
                key, value = pair
            else:  # a hostile items() yielding something else than (key, value): that item only is lost
                kind = type(data).__name__
                self.errors.append(f"{where}: an item of the {kind} is not a (key, value) pair; dropped")
                continue
            name = key if type(key) is str else self.key(key, where)
            if len(name) > MAX_KEY_SCANNED:
                secret = True  # not read for secret words (bounded work): redacted rather than risked
                self.errors.append(f"{where}: a key of {len(name)} characters, its value redacted unread")
            else:
                secret = is_secret_key(name)  # on the whole name: a long key is checked before it is cut
            if len(name) > MAX_KEY:
                self.errors.append(f"{where}: a key of {len(name)} characters truncated to {MAX_KEY}")
                name = name[:MAX_KEY]
            if name in out:
                self.errors.append(f"{where}.{name}: two keys are the same once written; the later kept")
            if secret:
                if not self.spend(where, _size(name) + 13):  # "name":"[REDACTED]",
                    break
                self.attributes += 1
                out[name] = REDACTED
                self.notes.append(f"{where}.{name}: a secret-named key, its value redacted")
                continue
            self.bytes += _size(name)  # "name":
            written = self.value(value, f"{where}.{name}", depth + 1)
            if written is _FULL:
                break
            out[name] = written
        self.path.discard(id(data))
        return out

    def key(self, key: object, where: str) -> str:
        exact = _exact(key)
        kind = type(exact)
        if kind is not str:
            self.errors.append(f"{where}: a {kind.__name__} key written as text")
        return _coerce_str(exact)

    def value(self, value: Any, where: str, depth: int) -> Any:
        kind = type(value)
        if kind is str:
            text = _limit_str(where, value, self.errors) if len(value) > MAX_STRING else value
            if self.privacy is not None:
                text = self.privacy.scrub_metadata(where, text, self.notes)
            size = _size(text)
            if self.bytes + size > MAX_CONTEXT_BYTES and not self.full:
                text, size = self.fit(text, size, where)
            if not self.spend(where, size):
                return _FULL
            self.attributes += 1
            return text
        if value is None or kind is bool:
            if not self.spend(where, 6):
                return _FULL
            self.attributes += 1
            return value
        if kind is int:  # its size from its bits, an upper bound (no str() made); past 64 bits, text
            if not self.spend(where, min(value.bit_length() * 3 // 10 + 4, MAX_STRING + 3)):
                return _FULL
            self.attributes += 1
            if _in_int64(value):
                return value
            self.errors.append(f"{where}: integer out of the 64-bit range, written as text")
            return _limit_str(where, _int_text(value), self.errors)
        if kind is float:
            if not self.spend(where, 25):
                return _FULL
            self.attributes += 1
            if math.isfinite(value):
                return value
            self.errors.append(f"{where}: {value!r} is not a JSON number, written as null")
            return None
        if kind is dict or kind is list or kind is tuple:
            return self.container(value, where, depth)
        if issubclass(kind, str | int | float):  # subclasses as their plain value, no caller code run
            plain = float.__float__(value) if issubclass(kind, float) else _exact(value)
            return self.value(plain, where, depth)
        if issubclass(kind, Mapping | list | tuple | set | frozenset):
            return self.container(value, where, depth)
        fields = _record_fields(value, kind, self.room(MAX_CONTEXT_ATTRIBUTES))
        if fields is not None:
            self.errors.append(f"{where}: a {kind.__name__} written as its fields")
            return self.container(fields, where, depth)
        if issubclass(kind, Iterable) and not issubclass(kind, bytes | bytearray | memoryview):
            # generators, deques, arrays: read up to the cap (an endless iterator included), then a list
            self.errors.append(f"{where}: a {kind.__name__} written as a list")
            return self.container(_take(value, self.room(MAX_LIST), where, self.errors), where, depth)
        if issubclass(kind, bytes | bytearray | memoryview):
            self.errors.append(f"{where}: bytes decoded as UTF-8")
        elif not issubclass(kind, _SCALARS):
            self.errors.append(f"{where}: a {kind.__name__} written as text")
        text = _limit_str(where, _coerce_str(value), self.errors)
        if not self.spend(where, _size(text)):
            return _FULL
        self.attributes += 1
        return text

    def container(self, value: Any, where: str, depth: int) -> Any:
        if id(value) in self.path:
            self.errors.append(f"{where}: a reference cycle, cut")
            if not self.spend(where, 10):
                return _FULL
            self.attributes += 1
            return "[cycle]"
        if not self.spend(where, 2):
            return _FULL
        if depth > self.max_depth:
            return self.flattened(value, where)
        kind = type(value)
        if kind is dict or (kind is not list and kind is not tuple and isinstance(value, Mapping)):
            return self.mapping(value, where, depth)
        self.path.add(id(value))
        if kind is list or kind is tuple:
            items = value[: MAX_LIST + 1]  # a slice of the built-in type: no caller code runs
            if len(items) > MAX_LIST:
                self.errors.append(f"{where}: more than {MAX_LIST} items, kept the first {MAX_LIST}")
                items = items[:MAX_LIST]
        else:
            items = _take(value, self.room(MAX_LIST), where, self.errors)
        out: list[Any] = []
        for item in items:
            written = self.value(item, where, depth + 1)
            if written is _FULL:
                break
            out.append(written)
        self.path.discard(id(value))
        return out

    def flattened(self, value: Any, where: str) -> Any:
        """A subtree deeper than `MAX_CONTEXT_DEPTH`, walked the same way (secrets redacted, the same budgets)
        and written as JSON text: one attribute."""
        if self.max_depth >= MAX_FLAT_DEPTH:
            self.errors.append(f"{where}: nested deeper than {MAX_FLAT_DEPTH} levels, cut")
            self.attributes += 1
            return "[too deep]"
        self.errors.append(f"{where}: nested deeper than {MAX_CONTEXT_DEPTH} levels, flattened to text")
        attributes = self.attributes
        before = self.bytes
        self.max_depth = MAX_FLAT_DEPTH
        self.nodes -= 1  # container() counts the subtree's root again
        try:
            walked = self.container(value, where, 0)
        finally:
            self.max_depth = MAX_CONTEXT_DEPTH
            self.attributes = attributes + 1
        if walked is _FULL:
            return _FULL
        try:
            text = orjson.dumps(walked).decode()
        except orjson.JSONEncodeError:  # lone surrogates: escaped as \udxxx text, as the render step does
            import json  # the rare path only

            self.errors.append(f"{where}: invalid Unicode (lone surrogates) escaped")
            text = json.dumps(walked, separators=(",", ":"))
        text = _limit_str(where, text, self.errors)
        # The subtree's values were counted as written; as one JSON string its quotes are escaped: recount.
        self.bytes = before
        size = _size(text)
        if self.bytes + size > MAX_CONTEXT_BYTES:
            text, size = self.fit(text, size, where)
        if not self.spend(where, size):
            return _FULL
        self.nodes -= 1  # the text is the subtree's root, counted once already
        return text


def _items(data: Mapping[Any, Any], cap: int, where: str, errors: list[str]) -> list[Any]:
    """At most `cap + 1` items of `data` (a million-key dict is not copied whole)."""
    if type(data) is dict:
        if len(data) <= cap:
            return list(data.items())
        return list(islice(data.items(), cap + 1))
    try:
        view = data.items()
    except Exception as exc:  # noqa: BLE001 - a hostile mapping's items()
        errors.append(f"{where}: reading the {type(data).__name__} failed ({type(exc).__name__}); dropped")
        return []
    return _take(view, cap + 1, where, errors)


def _record_fields(value: object, kind: type[Any], cap: int) -> Mapping[str, Any] | None:
    """The fields of a dataclass or pydantic model, read one by one (no `str()`, which would show secret
    fields raw, and no `model_dump()`, which would copy the whole model whatever its size)."""
    try:
        names: Iterable[str]
        model_fields = getattr(kind, "__pydantic_fields__", None)
        if isinstance(model_fields, dict) and hasattr(kind, "model_dump"):
            names = model_fields
        elif dataclasses.is_dataclass(kind):
            names = (f.name for f in dataclasses.fields(kind))
        else:
            return None
        return {name: getattr(value, name) for name in islice(names, cap + 1)}
    except Exception:  # noqa: BLE001 - a failing field: the object is shown by its type
        return {"[unreadable]": f"[a {kind.__name__}]"}
