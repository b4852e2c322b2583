"""The small value types of the public API, and the types its helpers accept for a user and an outcome."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Protocol, TypeAlias
from uuid import UUID

__all__ = [
    "DjangoStyleUser",
    "FlaskLoginStyleUser",
    "IdentifiedUser",
    "Outcome",
    "OutcomeLike",
    "User",
    "UserLike",
]


class Outcome(StrEnum):
    """An event's result, written as `evt.outcome`."""

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

    Example:
        ```python
        secevents.log_login(secevents.User(id=42, login="ada@example.com"), "success")
        ```
    """

    id: str | int | UUID | None = None
    login: str | None = None
    email: str | None = None
    name: str | None = None


class DjangoStyleUser(Protocol):
    """A user object with a primary key and a login, as Django's `AbstractBaseUser` (and `AnonymousUser`).

    Written as `usr.id` (from `pk`) and `usr.login` (from `get_username()`); `email` is read when
    present.
    """

    # An attribute of type Any, not a read-only property: Django defines `pk` as `property(getter, setter)`,
    # which pyright does not read as a getter, and a mutable attribute of any narrower type would be
    # invariant (an `int` pk would not match `object`).
    pk: Any
    """The account's primary key."""

    def get_username(self) -> str:
        """What the user logs in with."""
        ...


class FlaskLoginStyleUser(Protocol):
    """A user object as Flask-Login's `UserMixin` (and `AnonymousUserMixin`) defines it.

    Written as `usr.id` (from `get_id()`); an object whose `is_authenticated` is false is no user.
    """

    @property
    def is_authenticated(self) -> bool:
        """Whether this is a logged-in user (Flask-Login's anonymous user says no)."""
        ...

    def get_id(self) -> object:
        """The account's identifier (Flask-Login returns it as text)."""
        ...


class IdentifiedUser(Protocol):
    """Any other user object with an `id` (an ORM model, a dataclass, a Pydantic model).

    Written as `usr.id`; `get_username()` and `email` are read too when present.
    """

    @property
    def id(self) -> object:
        """The account's identifier."""
        ...


UserLike: TypeAlias = (
    str
    | int
    | UUID
    | User
    | DjangoStyleUser
    | FlaskLoginStyleUser
    | IdentifiedUser
    | Mapping[str, Any]
    | None
)
"""Who an event is about: an id (`str`, `int`, `UUID`), a `User`, a Django or Flask-Login user object,
any object with an `id`, a user record as a mapping (`pk`, `id`, `username`, `email` keys), or `None`
(the request's user, or nobody). Anything else is still written at
run time, with a note in `secevents.errors`, but does not type-check."""

OutcomeLike: TypeAlias = Outcome | Literal["success", "failure"]
"""An outcome: `"success"`, `"failure"` or an `Outcome`. `log_login(user, "succes")` does not
type-check; at run time an unknown value is written as a failure with a note in `secevents.errors`."""
