"""django-su: impersonation as a first-class actor, with no code of the application's.

Installed by the app `graffer_secevents.integrations.django` when `"django_su"` is in `INSTALLED_APPS`
(with its `SuBackend` and URLs, as its own docs ask); nothing to call. django-su sends no signal: it logs
the other account in with Django's `login()` and keeps the accounts to return to in the (server-side)
session, `exit_users_pk`. The adapter

* wraps its `login_as_user` view function (which its `su_login` form view calls too): the switch's
  `authn_login_success` names the real account as `impersonator.usr`, then `authn_impersonation_start`
  (`usr` the real account, `target.usr` the other one, `evt.target_role` its privilege);
* reads `exit_users_pk` as django-su does (the last entry is the account `su_logout` returns to): every
  event of the session names it as `impersonator.usr`;
* wraps its `su_logout`: `authn_impersonation_end` once the real account is back; any other logout of the
  session ends it too (`_impersonation.end_at_logout`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Final

from graffer_secevents._impersonation import add_impersonator_provider
from graffer_secevents._types import User

from ._impersonation import account_pk, record_impersonation, switching_from
from ._wrap import wrap_method

__all__ = ["install"]

_KEY: Final = "exit_users_pk"
_WHERE: Final = "django-su's views"


def install() -> None:
    """Wrap django-su's switch and exit views and read its session state. Idempotent; called by the app."""
    # Before the URLconf imports the views by name (Django loads it at the first request, after ready()).
    views = importlib.import_module("django_su.views")
    wrap_method(views, "login_as_user", _login_as_user)
    wrap_method(views, "su_logout", _su_logout)
    add_impersonator_provider(_impersonator)


def _return_pk(request: Any) -> str | None:
    """The account `su_logout` would return to: the last of django-su's `exit_users_pk`, as it reads it."""
    session = getattr(request, "session", None)
    history = session.get(_KEY) if session is not None else None
    if not history or not isinstance(history, list):
        return None
    last = history[-1]
    if not isinstance(last, (list, tuple)) or not last or last[0] is None:
        return None
    return str(last[0])


def _impersonator(ctx: Any) -> Any:
    pk = _return_pk(getattr(ctx, "request", None))
    if pk is None or account_pk(getattr(ctx, "user", None)) == pk:
        return None
    return User(id=pk)


def _login_as_user(original: Callable[..., Any]) -> Callable[..., Any]:
    def login_as_user(request: Any, *args: Any, **kwargs: Any) -> Any:
        real: Any = getattr(request, "user", None)
        if getattr(real, "is_authenticated", False) is not True:
            return original(request, *args, **kwargs)
        with switching_from(real):
            response = original(request, *args, **kwargs)
        switched: Any = getattr(request, "user", None)
        if account_pk(switched) not in (None, str(real.pk)) and _return_pk(request) == str(real.pk):
            record_impersonation("authn_impersonation_start", request, real, switched, where=_WHERE)
        return response

    return login_as_user


def _su_logout(original: Callable[..., Any]) -> Callable[..., Any]:
    def su_logout(request: Any, *args: Any, **kwargs: Any) -> Any:
        target: Any = getattr(request, "user", None)
        target_pk = account_pk(target)  # now: the lazy user would read the session after the switch back
        real_pk = _return_pk(request)
        response = original(request, *args, **kwargs)
        back: Any = getattr(request, "user", None)
        if real_pk is not None and account_pk(back) == real_pk and target_pk not in (None, real_pk):
            record_impersonation("authn_impersonation_end", request, back, target, where=_WHERE)
        return response

    return su_logout
