"""django-loginas: impersonation as a first-class actor, with no code of the application's.

Installed by the app `graffer_secevents.integrations.django` when `"loginas"` is in `INSTALLED_APPS`;
nothing to call. django-loginas sends no signal: it logs the other account in with Django's `login()` and
keeps the real account only as a signed, timestamped session value. The adapter

* wraps its `login_as` (where its view reaches it): the switch's `authn_login_success` names the real
  account as `impersonator.usr`, then `authn_impersonation_start` (`usr` the real account, `target.usr`
  the other one, `evt.target_role` its privilege, `evt.reason` the reason typed in the admin when given);
* reads the session value with django-loginas's own signer and maximum age (`LOGINAS_FROM_USER_SESSION_FLAG`,
  `LOGINAS_USER_SESSION_DAYS_TIMESTAMP`): every event of the session names the real account as
  `impersonator.usr`; a value django-loginas would not accept (unsigned, altered, expired) names none;
* ends it when the session logs out (its `loginas-logout` view, which logs the real account back in, or
  any other logout): `authn_impersonation_end`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from graffer_secevents._impersonation import add_impersonator_provider
from graffer_secevents._types import User

from ._impersonation import account_pk, record_impersonation, switching_from
from ._wrap import wrap_method

__all__ = ["install"]

_CACHE: Final = "_secevents_loginas"


def install() -> None:
    """Wrap django-loginas's `login_as` and read its signed session value. Idempotent; called by the app."""
    import importlib

    # Its view imported the name: both modules hold the function it calls. (`from loginas import utils`
    # would name this module to a type checker: imported by full name.)
    for name in ("loginas.utils", "loginas.views"):
        wrap_method(importlib.import_module(name), "login_as", _login_as)
    add_impersonator_provider(_impersonator)


def _real_pk(request: Any) -> str | None:
    """The real account's pk in the session, if django-loginas's signer accepts it (cached per value)."""
    session = getattr(request, "session", None)
    if session is None:
        return None
    from loginas.settings import USER_SESSION_DAYS_TIMESTAMP, USER_SESSION_FLAG

    raw = session.get(USER_SESSION_FLAG)
    if not raw or not isinstance(raw, str):
        return None
    cached = getattr(request, _CACHE, None)
    if cached is not None and cached[0] == raw:
        return cached[1]  # type: ignore[no-any-return]
    from datetime import timedelta

    from django.core.signing import BadSignature
    from loginas.utils import signer

    max_age = timedelta(days=USER_SESSION_DAYS_TIMESTAMP).total_seconds()
    try:
        pk: str | None = str(signer.unsign(raw, max_age=max_age))
    except BadSignature:  # SignatureExpired too: django-loginas would not restore it either
        pk = None
    setattr(request, _CACHE, (raw, pk))
    return pk


def _impersonator(ctx: Any) -> Any:
    request = getattr(ctx, "request", None)
    pk = _real_pk(request)
    if pk is None:
        return None
    if account_pk(getattr(ctx, "user", None)) == pk:
        return None  # the real account itself (the value outlived a switch back)
    return User(id=pk)


def _login_as(original: Callable[..., Any]) -> Callable[..., Any]:
    def login_as(user: Any, request: Any, store_original_user: bool = True, reason: str = "") -> Any:
        real: Any = getattr(request, "user", None)
        if not store_original_user or getattr(real, "is_authenticated", False) is not True:
            return original(user, request, store_original_user, reason)  # the switch back: ended at logout
        with switching_from(real):
            result = original(user, request, store_original_user, reason)
        switched = getattr(request, "user", None)
        if getattr(switched, "pk", None) == user.pk and _real_pk(request) == str(real.pk):
            record_impersonation(
                "authn_impersonation_start",
                request,
                real,
                user,
                where="django-loginas's login_as",
                reason=reason or None,
            )
        return result

    return login_as
