"""Accounts as the Django auth adapters name them: found by what was typed, named by their pk.

Used by the app's signal receivers (`apps.py`) and the auth-stack adapters (`drf.py`, `allauth.py`), so
a failed login reads the same whichever stack saw it: `usr.login` (hashed), `usr.exists`, a bounded
`evt.reason` and, for an existing account, the pk its successful logins carry.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Final, cast

from graffer_secevents.integrations._auth import mark_denied, record_auth

__all__ = ["UNKNOWN", "find_account", "login_from", "pk_of", "record_login_failure", "record_login_refused"]

UNKNOWN: Final[Any] = object()
"""The lookup could not be made (no database, no table, an event loop): existence is unknown."""

# The credential keys a backend may be called with, in the order they are read (allauth calls
# ``authenticate(email=..., password=...)``; `RemoteUserMiddleware` calls ``authenticate(remote_user=...)``
# with the name the web server vouched for); the password is never among them.
_LOGIN_KEYS: Final = ("username", "email", "phone", "remote_user")
# Keys that name the account by the user model's USERNAME_FIELD, whatever that field is called.
_USERNAME_KEYS: Final = frozenset({"username", "remote_user"})


def login_from(credentials: object) -> tuple[str | None, tuple[str, ...]]:
    """What was typed as the login, and every credential key it was passed under: `username`, the user
    model's `USERNAME_FIELD`, `email`, `phone`, `remote_user` (allauth passes an e-mail as both `email`
    and `username` when both login methods are on). Only these keys are read; never the password."""
    if not isinstance(credentials, Mapping):
        return None, ()
    from django.contrib.auth import get_user_model

    field = getattr(get_user_model(), "USERNAME_FIELD", "username")
    login: str | None = None
    keys: list[str] = []
    for key in dict.fromkeys((_LOGIN_KEYS[0], field, *_LOGIN_KEYS[1:])):
        value = credentials.get(key)
        if value is None or value == "":
            continue
        text = value if isinstance(value, str) else str(value)
        if login is None:
            login = text
        if text == login:
            keys.append(key)
    return login, tuple(keys)


def find_account(login: str, keys: tuple[str, ...] = ()) -> Any:
    """`(pk, is_active)` of the account reached by `login` through the first of the credential `keys`
    that finds one (the username field by default; an e-mail case-insensitively), `None` if there is none,
    `UNKNOWN` if the lookup fails."""
    try:
        from django.contrib.auth import get_user_model
        from django.core.exceptions import FieldDoesNotExist

        model = get_user_model()
        try:
            model._meta.get_field("is_active")
            columns: tuple[str, ...] = ("pk", "is_active")
        except FieldDoesNotExist:
            columns = ("pk",)
        row = None
        for key in keys or (model.USERNAME_FIELD,):
            field = model.USERNAME_FIELD if key in _USERNAME_KEYS else key
            try:
                model._meta.get_field(field)
            except FieldDoesNotExist:
                continue
            lookup = {"email__iexact" if field == "email" else field: login}
            row = _first(model, model._default_manager.filter(**lookup).order_by("pk").values_list(*columns))
            if row is not None:
                break
    except Exception:  # noqa: BLE001 - no database, no table, or an event loop: unknown, never an error
        return UNKNOWN
    if row is None:
        return None
    return row[0], (bool(row[1]) if len(row) > 1 else True)


def pk_of(model_field: str, value: object) -> Any:
    """The pk of the account whose `model_field` is `value` (a token's user-id claim), or `None`."""
    if value is None:
        return None
    try:
        from django.contrib.auth import get_user_model

        model = get_user_model()
        if model_field in ("pk", model._meta.pk.name):
            return value
        query = model._default_manager.filter(**{model_field: value}).values_list("pk", flat=True)
        return _first(model, query)
    except Exception:  # noqa: BLE001 - as find_account
        return None


def _first(model: Any, query: Any) -> Any:
    from django.db import connections, router, transaction

    alias = router.db_for_read(model)
    if connections[alias].in_atomic_block:
        # A savepoint, so a failing lookup cannot break the application's transaction.
        # atomic() is a context manager here; pyright infers its decorator form (`atomic(func)`) too.
        with cast("AbstractContextManager[object]", transaction.atomic(using=alias)):
            return query.first()
    return query.first()


def record_login_failure(login: str | None, *, where: str, keys: tuple[str, ...] = ()) -> bool:
    """One `authn_login_fail` for this request (none if one was recorded already): `usr.login`,
    `usr.exists`, `evt.reason` (`invalid_credentials`, `unknown_user`, `account_disabled`) and,
    for an existing account, its pk as `usr.id`."""
    found = find_account(login, keys) if login is not None else UNKNOWN
    if found is UNKNOWN:
        exists, user, reason = None, None, None
    elif found is None:
        exists, user, reason = False, None, "unknown_user"
    else:
        # An existing account is named by its pk, as its successful logins are: rules that follow one
        # @usr.id through failures to a success (brute force) see one account, not two.
        pk, active = found
        exists, user, reason = True, pk, ("invalid_credentials" if active else "account_disabled")
    return record_auth(
        "authn_login_fail",
        where=where,
        user=user,
        outcome="failure",
        login=login,
        exists=exists,
        params={"reason": reason},
    )


def record_login_refused(
    login: str | None, *, where: str, keys: tuple[str, ...] = (), max_limit: int | None = None
) -> None:
    """One `authn_login_fail_max` for a login the stack refused before checking the password (a rate limit
    or throttle), with `usr.login`, `usr.exists` and a known account's pk; no status rule adds a second
    event for the request."""
    found = find_account(login, keys) if login is not None else UNKNOWN
    exists = None if found is UNKNOWN else found is not None
    user = found[0] if exists else None
    params = {"max_limit": max_limit}
    record_auth("authn_login_fail_max", where=where, user=user, login=login, exists=exists, params=params)
    mark_denied()
