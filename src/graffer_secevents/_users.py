"""Who an event is about: the id, login, email and name read from whatever the caller passed as a user,
privacy-processed into the record's `usr` (or `target.usr`) object.

The pipeline and the trace bridges both read users through this module.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from ._limits import _SAFE_CHARS, MAX_STRING, _coerce_str, _exact, _int_text, _limit_str
from ._privacy import Privacy, is_email, secret_kinds
from ._types import User

__all__: list[str] = []


class EmailIdentity(str):
    """An identity that is an e-mail address (a Flask-Login `get_id()`, a Starlette `SimpleUser`): written
    as `usr.id` under the e-mail privacy rule (hashed by default), never raw."""

    __slots__ = ()


def _user_parts(field: str, user: object, errors: list[str]) -> tuple[object, object, object, object]:
    """(id, login, email, name) from whatever the caller passed as a user."""
    if user is None:
        return None, None, None, None
    kind = type(user)
    if kind is User:
        return user.id, user.login, user.email, user.name  # type: ignore[attr-defined]
    # Classes, not isinstance(): an object whose attribute access raises fails isinstance() too.
    if kind is str or kind is int or (issubclass(kind, str | int | uuid.UUID) and kind is not bool):
        return _exact(user), None, None, None
    if issubclass(kind, User):
        return user.id, user.login, user.email, user.name  # type: ignore[attr-defined]
    if issubclass(kind, Mapping):
        return _mapping_parts(field, user, errors)  # type: ignore[arg-type]
    if issubclass(kind, bytes | bytearray | bool | float | list | tuple | set):
        errors.append(f"{field}: expected an id, a User or a user object, got {type(user).__name__}")
        return (_coerce_str(user) if isinstance(user, bytes | bytearray) else None), None, None, None
    try:
        # Django (pk, get_username) and Flask-Login (get_id) user objects; anonymous users are no user.
        if getattr(user, "is_authenticated", True) is False:
            return None, None, None, None
        uid: object = getattr(user, "pk", None)
        if uid is None:
            uid = getattr(user, "id", None)
        get_id = getattr(user, "get_id", None) if uid is None else None
        if callable(get_id):
            uid = get_id()
            if type(uid) is str and "@" in uid:
                uid = EmailIdentity(uid)
        get_username = getattr(user, "get_username", None)
        login: object = get_username() if callable(get_username) else None
        if uid is None:
            # A user with only a `username` (a pydantic model, FastAPI's tutorial `User`): the name is the
            # account key (docs/api.md, "The user protocol").
            username = getattr(user, "username", None)
            if type(username) is str and username:
                uid = EmailIdentity(username) if "@" in username else username
                if login is None:
                    login = username
        email = getattr(user, "email", None)
        if uid is None and login is None:
            errors.append(
                f"{field}: a {type(user).__name__} has no pk, id, get_id(), username or get_username()"
            )
        return uid, login, (email if isinstance(email, str) else None), None
    except Exception as exc:  # noqa: BLE001 - a user object whose attributes fail (lazy DB access, ...)
        errors.append(f"{field}: reading the {type(user).__name__} failed ({type(exc).__name__})")
        return None, None, None, None


def _mapping_parts(
    field: str, user: Mapping[Any, Any], errors: list[str]
) -> tuple[object, object, object, object]:
    """A user record as a mapping (a dict from a user store, as fastapi-login's `user_loader` returns, or a
    database row mapping): its `pk`, `id`, `username` and `email` keys, read as a user object's attributes.
    No other key is read, so a `password` or `hashed_password` beside them never is."""
    try:
        if user.get("is_authenticated", True) is False:
            return None, None, None, None
        uid: object = user.get("pk")
        if uid is None:
            uid = user.get("id")
        username = user.get("username")
        login = username if type(username) is str and username else None
        if uid is None and login is not None:
            uid = EmailIdentity(login) if "@" in login else login
        email = user.get("email")
        if uid is None and login is None:
            errors.append(f"{field}: a {type(user).__name__} user record has no pk, id or username key")
        return uid, login, (email if isinstance(email, str) else None), None
    except Exception as exc:  # noqa: BLE001 - a mapping whose lookups fail
        errors.append(f"{field}: reading the {type(user).__name__} failed ({type(exc).__name__})")
        return None, None, None, None


_MIN_SECRET = 16  # no secret shape is shorter (docs/privacy.md)
_UUID_LENGTH = 36
_HEX_DASH = "0123456789abcdefABCDEF-"


def _usr(
    privacy: Privacy,
    target: bool,
    parts: tuple[object, object, object, object],
    errors: list[str],
    notes: list[str] | None = None,
    prefix: str | None = None,
) -> dict[str, Any]:
    """The privacy-processed `usr` (or `target.usr`) object; what privacy changed beyond a field's mode (an
    e-mail or a secret as the id) is noted in `notes` (`errors` when not given)."""
    uid, login, email, name = parts
    if prefix is None:
        prefix = "target.usr" if target else "usr"
    out: dict[str, Any] = {}
    # Plain short strings (the common case) skip _text's coercions.
    # Privacy applies to the whole text and only its result is cut to the limit: two long logins that differ
    # after character 1,024 keep different pseudonyms.
    if uid is not None:
        text = _int_text(uid) if type(uid) is int else _plain(uid) or _full_text(prefix, "id", uid, errors)
        if text is None:
            (errors if notes is None else notes).append(f"{prefix}.id: an empty id, dropped")
        elif (
            value := (privacy.apply_target_id if target else privacy.apply_id)(text)
            if len(text) < _MIN_SECRET and "@" not in text  # the common case: too short for a secret
            else _identity(privacy, target, prefix, text, errors if notes is None else notes)
        ) is not None:
            out["id"] = value if len(value) <= MAX_STRING else _cut(prefix, "id", value, errors)
    if login is not None:
        text = _plain(login) or _full_text(prefix, "login", login, errors)
        if text is None:
            # an empty login form is what a client sent, not the caller's mistake: noted, not a strict error
            (errors if notes is None else notes).append(f"{prefix}.login: an empty login, dropped")
        elif (value := privacy.apply_login(text)) is not None:
            out["login"] = value if len(value) <= MAX_STRING else _cut(prefix, "login", value, errors)
    if email is not None:
        text = _plain(email) or _full_text(prefix, "email", email, errors)
        if text and (value := privacy.apply_email(text)) is not None:
            out["email"] = value if len(value) <= MAX_STRING else _cut(prefix, "email", value, errors)
    if name is not None:
        text = _plain(name) or _full_text(prefix, "name", name, errors)
        if text and (value := privacy.apply_name(text)) is not None:
            out["name"] = value if len(value) <= MAX_STRING else _cut(prefix, "name", value, errors)
    return out


def _identity(privacy: Privacy, target: bool, prefix: str, text: str, notes: list[str]) -> str | None:
    """An id under its privacy mode, unless it is an e-mail address (then under `usr.email`'s, wherever it
    came from: an `id`, `get_id()`, a username) or shaped like a secret (then hashed: a pseudonym keeps the
    account's events together, the token is not written)."""
    if "@" in text and is_email(text):
        shown = privacy.apply_email(text)
        if shown != text:
            what = "hashed" if shown is not None else "dropped"
            notes.append(f"{prefix}.id: an e-mail address, written under the usr.email rule ({what})")
        return shown
    if (
        len(text) >= _MIN_SECRET
        and (len(text) > _UUID_LENGTH or text.strip(_HEX_DASH))  # UUIDs and hex ids are not checked further
        and (kinds := tuple(k for k in secret_kinds(text) if k != "a long random token"))
    ):
        notes.append(f"{prefix}.id: {', '.join(kinds)}, hashed")
        return privacy.hash(text)
    return (privacy.apply_target_id if target else privacy.apply_id)(text)


def _login_as_id(privacy: Privacy, shown: str, notes: list[str]) -> str | None:
    """The processed login written as the `usr.id` of a failed login to an unknown account: under the
    `usr.email` rule when it is still an address (`usr.login` in `keep` mode)."""
    if "@" in shown and is_email(shown):
        value = privacy.apply_email(shown)
        if value != shown:
            what = "hashed" if value is not None else "dropped"
            notes.append(f"usr.id: the login, an e-mail address, written under the usr.email rule ({what})")
        return value
    return shown


def _cut(prefix: str, key: str, value: str, errors: list[str]) -> str:
    return value if len(value) <= MAX_STRING else _limit_str(f"{prefix}.{key}", value, errors)


def _plain(value: object) -> str | None:
    return value if type(value) is str and 0 < len(value) <= MAX_STRING else None


def _full_text(prefix: str, key: str, value: object, errors: list[str]) -> str | None:
    """A user or request field as uncut text (ints and UUIDs pass, others are noted); `None` if empty."""
    kind = type(value)
    text = _coerce_str(value)
    if not issubclass(kind, str | int | uuid.UUID) or kind is bool:
        errors.append(f"{prefix}.{key}: expected a string, got {kind.__name__}; written as text")
    return text or None


def _text(prefix: str, key: str, value: object, errors: list[str]) -> str | None:
    """A request field as text of at most `MAX_STRING` characters; `None` if empty."""
    text = _full_text(prefix, key, value, errors)
    return _cut(prefix, key, text, errors) if text else None


def _show(value: object) -> str:
    """How a rejected value is quoted in an error: only short, plain values; never free text (PII)."""
    value = _exact(value)
    if type(value) is str:
        if 0 < len(value) <= 32 and all(c in _SAFE_CHARS for c in value):
            return repr(value)
        return f"a string of {len(value)} characters"
    return f"a {type(value).__name__}"
