"""A wrong current password typed by the logged-in account, checked outside `authenticate()`.

API stacks confirm the current password with the user model's own `check_password()` before a change
(djoser's `set_password` and `set_username`, dj-rest-auth with `OLD_PASSWORD_FIELD_ENABLED`, account-deletion
confirmations, your own serializers), not with Django's `PasswordChangeForm`: a refusal there wrote nothing.

`AbstractBaseUser.check_password` / `acheck_password` are wrapped once, by the app (`apps.py`): a `False`
for the account the request is authenticated as, outside a backend's `authenticate()` (where a wrong
password is Django's `user_login_failed`: `_backends.checking_credentials`), is one
`authn_password_change_fail` with `evt.reason: invalid_credentials` for the request (Django's
`PasswordChangeForm` refusing, which checks the same way, is that same one event). A custom user model
that overrides `check_password` without calling `super()` is not seen. The password is never read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graffer_secevents._context import current_request
from graffer_secevents.integrations._auth import record_auth
from graffer_secevents.integrations._common import never_raise

from ._backends import checking_credentials
from ._wrap import wrap_method

__all__ = ["install"]

_WHERE = "the user model's check_password()"


def install() -> None:
    """Wrap `AbstractBaseUser.check_password` and `acheck_password`. Idempotent; called by the app."""
    from django.contrib.auth.base_user import AbstractBaseUser

    wrap_method(AbstractBaseUser, "check_password", _check)
    if "acheck_password" in AbstractBaseUser.__dict__:
        wrap_method(AbstractBaseUser, "acheck_password", _acheck)


def _refused(user: Any) -> None:
    if checking_credentials():
        return
    with never_raise(_WHERE):
        ctx = current_request()
        actor = ctx.user if ctx is not None else None
        if actor is None or getattr(actor, "is_authenticated", False) is not True:
            return  # no one logged in: not a confirmation of the current password
        if getattr(actor, "pk", None) is None or getattr(actor, "pk", None) != getattr(user, "pk", None):
            return  # someone else's password (an administrator's check): not the actor's confirmation
        record_auth(
            "authn_password_change_fail",
            where=_WHERE,
            user=user,
            outcome="failure",
            params={"reason": "invalid_credentials"},
        )


def _check(original: Callable[..., Any]) -> Callable[..., Any]:
    def check_password(self: Any, raw_password: Any) -> Any:
        result = original(self, raw_password)
        if result is False:
            _refused(self)
        return result

    return check_password


def _acheck(original: Callable[..., Any]) -> Callable[..., Any]:
    async def acheck_password(self: Any, raw_password: Any) -> Any:
        result = await original(self, raw_password)
        if result is False:
            _refused(self)  # reads request.user only if already loaded or cached (never the database)
        return result

    return acheck_password
