"""Datadog's limits on a record, and the safe readers every field shares (docs/record.md, docs/privacy.md).

The pipeline reads caller objects only through these: none of them calls a caller's `__eq__`,
`__hash__`, `__len__` or `__getitem__` on a `str` subclass, none reads an iterator past its cap,
and the ones that must run caller code (`__str__`, `__iter__`) turn its failure into a placeholder.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import Any, Final, cast

__all__ = [
    "MAX_CONTEXT_ATTRIBUTES",
    "MAX_CONTEXT_BYTES",
    "MAX_CONTEXT_DEPTH",
    "MAX_CONTEXT_NODES",
    "MAX_FLAT_DEPTH",
    "MAX_KEY",
    "MAX_KEY_SCANNED",
    "MAX_LIST",
    "MAX_STRING",
]

MAX_STRING: Final = 1024  # Datadog facets values under 1024 characters
MAX_KEY: Final = 49  # Datadog keys are under 50 characters
MAX_LIST: Final = 64

# The walk of caller metadata (`**context`) is bounded whatever its shape (docs/privacy.md, "Bounded work"):
MAX_CONTEXT_DEPTH: Final = 6  # deeper, a subtree is walked the same way, then written as JSON text
MAX_FLAT_DEPTH: Final = 32  # past this a subtree is cut
MAX_CONTEXT_ATTRIBUTES: Final = 128  # values written: keeps the whole record under Datadog's 256 attributes
MAX_CONTEXT_NODES: Final = 256  # values and containers visited: flattened subtrees, shared references too
MAX_CONTEXT_BYTES: Final = 2048  # the rendered size of caller metadata: keys, values, JSON escapes included
MAX_KEY_SCANNED: Final = 4096  # a longer key is not read for secret words: its value is redacted outright
_SAFE_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_INT64: Final = 2**63


def _exact(value: object) -> object:
    """`value` with `str`/`int` subclasses turned into plain `str`/`int` (no caller code runs)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool:
        return value
    if issubclass(kind, str):
        return str.__str__(cast("str", value))
    if issubclass(kind, int):
        return int.__int__(value)  # type: ignore[arg-type]
    return value


def _int_text(value: int) -> str:
    """An integer as text; past Python's digit limit its size instead (`str()` would raise)."""
    try:
        return int.__repr__(value)
    except ValueError:
        return f"[an integer of {value.bit_length()} bits]"


def _in_int64(value: int) -> bool:
    return -_INT64 <= value < _INT64


def _coerce_str(value: object) -> str:
    """Any caller value as text: bytes decoded, `str()` otherwise, a placeholder when `str()` fails."""
    kind = type(value)
    if issubclass(kind, str):
        return str.__str__(cast("str", value))
    if issubclass(kind, int) and kind is not bool:
        return _int_text(int.__int__(value))  # type: ignore[arg-type]
    if issubclass(kind, bytes | bytearray | memoryview):
        try:
            data: bytes = bytes(value)  # type: ignore[call-overload]
            return data.decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - a released memoryview
            return f"[a {kind.__name__}]"
    if kind.__str__ is object.__str__ or hasattr(kind, "__pydantic_fields__"):
        # str() would be repr(): a dataclass's or a model's repr shows every field, secret ones too
        return f"[a {kind.__name__}]"
    try:
        text = str(value)
        return str.__str__(text) if type(text) is not str else text
    except Exception:  # noqa: BLE001 - a hostile __str__ must not break the event
        return f"[a {kind.__name__} that cannot be shown]"


def _limit_str(field: str, value: str, errors: list[str]) -> str:
    if len(value) > MAX_STRING:
        errors.append(f"{field}: {len(value)} characters, truncated to {MAX_STRING}")
        return value[:MAX_STRING]
    return value


def _take(values: Iterable[Any], cap: int, where: str, errors: list[str]) -> list[Any]:
    """At most `cap` items of `values` (an iterator is never read further), noting what was left out.

    An iterator that raises part-way keeps the items read before it failed.
    """
    items: list[Any] = []
    append = items.append
    try:
        for item in islice(values, cap + 1):
            append(item)
    except Exception as exc:  # noqa: BLE001 - a hostile __iter__ / __next__
        if items:
            errors.append(
                f"{where}: reading the {type(values).__name__} failed after {len(items)} items "
                f"({type(exc).__name__}); the rest dropped"
            )
        else:
            kind = type(values).__name__
            errors.append(f"{where}: reading the {kind} failed ({type(exc).__name__}); dropped")
        return items[:cap]
    if len(items) > cap:
        errors.append(f"{where}: more than {cap} items, kept the first {cap}")
        del items[cap:]
    return items
