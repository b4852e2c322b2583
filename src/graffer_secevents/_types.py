"""The small value types of the public API."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

__all__ = ["Outcome", "User"]


class Outcome(StrEnum):
    """An event's result, written as ``evt.outcome``."""

    SUCCESS = "success"
    FAILURE = "failure"


@dataclass(frozen=True, slots=True)
class User:
    """A user as the event should describe it. Privacy rules apply to every field when it is written.

    Args:
        id: the account's immutable identifier (ints and UUIDs are written as strings).
        login: what the user typed to log in (hashed by default).
        email: the account's email (hashed by default).
        name: a display name (dropped by default).

    Example::

        secevents.log_login(secevents.User(id=42, login="ada@example.com"), "success")
    """

    id: str | int | UUID | None = None
    login: str | None = None
    email: str | None = None
    name: str | None = None
