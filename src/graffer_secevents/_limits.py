"""Datadog's limits on a record and the string coercion every field shares (`docs/record.md`)."""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_KEY", "MAX_LIST", "MAX_STRING"]

MAX_STRING: Final = 1024  # Datadog facets values under 1024 characters
MAX_KEY: Final = 49  # Datadog keys are under 50 characters
MAX_LIST: Final = 64
_SAFE_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _coerce_str(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a hostile __str__ must not break the event
        return f"<unrepresentable {type(value).__name__}>"


def _limit_str(field: str, value: str, errors: list[str]) -> str:
    if len(value) > MAX_STRING:
        errors.append(f"{field}: {len(value)} characters, truncated to {MAX_STRING}")
        return value[:MAX_STRING]
    return value
