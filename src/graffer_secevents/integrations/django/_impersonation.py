"""What Django's impersonation packages share: the start and end events, the switch, the logout that ends it.

django-hijack, django-impersonate and django-loginas each keep the real account somewhere of their own (a
session history, a request attribute their middleware sets after its checks, a signed session value), and
each adapter (`hijack.py`, `impersonate.py`, `loginas.py`) reads it the way its package does, with an
impersonator provider (`graffer_secevents._impersonation`). What they have in common lives here:

* `record_impersonation`: `authn_impersonation_start` / `_end`, `usr` the real account, `target.usr` the
  impersonated one, `evt.target_role` its privilege;
* `switching_from(real)`: while a package switches accounts (hijack and loginas log the impersonated
  account in with Django's `login()`), events of the request whose user is no longer `real` (the switch's
  `authn_login_success`) name `real` as `impersonator.usr`; events before the switch (loginas's admin log
  entry) still belong to `real` alone;
* `end_at_logout`: an impersonated session that logs out (Django's `user_logged_out`, whatever view sent
  it) has ended its impersonation: `authn_impersonation_end`, once per request.
"""

from __future__ import annotations

import contextvars
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any, Final

from graffer_secevents._impersonation import add_impersonator_provider, provided_impersonator
from graffer_secevents._pipeline import emit_event
from graffer_secevents._types import User
from graffer_secevents.integrations._common import never_raise

from ._privileges import privilege_level
from .middleware import request_bound

__all__ = ["account_pk", "end_at_logout", "record_impersonation", "switching_from"]

_ENDED: Final = "_secevents_impersonation_ended"
_switching: contextvars.ContextVar[Any] = contextvars.ContextVar("graffer_secevents_switching", default=None)


def record_impersonation(
    evt_type: str, request: Any, real: Any, target: Any, *, where: str, reason: str | None = None
) -> None:
    """Write the start or the end of an impersonation of `target` by `real` (the package's own accounts)."""
    with request_bound(request), never_raise(where):
        if evt_type == "authn_impersonation_end":
            if getattr(request, _ENDED, False):  # once per request (a release view that also logs out)
                return
            if request is not None:
                setattr(request, _ENDED, True)
        params: dict[str, Any] = {"target_role": privilege_level(target)}
        if reason:
            params["reason"] = reason
        emit_event(evt_type, user=real, target_user=target, params=params)


@contextmanager
def switching_from(real: Any) -> Generator[None, None, None]:
    """Name `real` as `impersonator.usr` on the events of the block whose request user is another account."""
    if real is None or getattr(real, "is_authenticated", False) is not True:
        yield
        return
    _install_switch_provider()
    token = _switching.set(real)
    try:
        yield
    finally:
        _switching.reset(token)


def _switch_provider(ctx: Any) -> Any:
    real = _switching.get()
    if real is None:
        return None
    pk = account_pk(getattr(ctx, "user", None))
    if pk is None or pk == str(real.pk):
        return None
    return User(id=str(real.pk))


def account_pk(user: Any) -> str | None:
    """The pk of the context's user (`ctx.user`: resolved as events resolve it, `request.auser()`'s in an
    async view, never a database query from the event loop), or `None` when nobody is logged in."""
    if user is None or getattr(user, "is_authenticated", True) is not True:
        return None
    pk = getattr(user, "pk", None)
    if pk is None:
        pk = getattr(user, "id", None)
    return None if pk is None else str(pk)


_installed: list[bool] = []


def _install_switch_provider() -> None:
    if not _installed:
        add_impersonator_provider(_switch_provider)
        _installed.append(True)


def end_at_logout(request: Any, user: Any) -> None:
    """`authn_impersonation_end` when the session logging out (`user`) is impersonated by another account.

    Called from Django's `user_logged_out` (apps.py): the real account is what the installed adapters'
    providers name for this request, read before the logout flushes the session.
    """
    if request is None or user is None:
        return
    from .middleware import DjangoRequestContext

    with never_raise("the end of an impersonation at logout"):
        real = provided_impersonator(DjangoRequestContext(request))
        if real is None or str(getattr(real, "id", real)) == str(user.pk):
            return
        from django.contrib.auth import get_user_model

        # The account itself, as the start named it (one query, at the end of an impersonation only).
        real = get_user_model()._default_manager.filter(pk=real.id).first() or real
        record_impersonation("authn_impersonation_end", request, real, user, where="Django's user_logged_out")
