"""The user model's rows, whatever code wrote them: an account created or a password set during a request.

Connected by the app (`apps.py`) as a `post_save` receiver of `AUTH_USER_MODEL`, so every path is seen —
`create_user()` in a hand-written signup view, a `ModelForm`, allauth, the admin, a DRF serializer,
Django's password forms, `user.set_password(); user.save()` anywhere:

* a **new row** saved while a request is bound: `user_signup` with the new account when the request's
  actor is anonymous (or is the new account itself), else `user_created` with the actor as `usr` and the
  new account as `target.usr`; once per request (allauth's `user_signed_up` adds none);
* an **existing row saved with a new password** (Django's own marker: `AbstractBaseUser.set_password`
  keeps the new password in `_password` until the next `save()`, and a login's hash upgrade clears it
  first, so a rehash is no event; the value is never read): `authn_password_change` when the actor is the
  account (or another authenticated account: then `usr` is that actor and `target.usr` the account),
  `authn_password_reset` (success, `usr.exists`) for an anonymous actor (a reset link). Django's password
  forms say which it is when they are the path (`_forms.py`), whoever is logged in.

Rows saved outside a request (management commands, migrations, fixtures, the shell) are not events here:
no actor or request to attach them to.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Final

from graffer_secevents._context import current_request
from graffer_secevents.integrations._auth import already_recorded, record_auth, record_once
from graffer_secevents.integrations._common import never_raise

__all__ = ["PASSWORD_KIND", "install"]

PASSWORD_KIND: Final[ContextVar[str | None]] = ContextVar("secevents_password_kind", default=None)
"""`"change"` or `"reset"` while one of Django's password forms saves (set by `_forms.py`)."""

_WHERE: Final = "the user model's post_save"


def install() -> None:
    """Connect the `post_save` receiver of the user model. Idempotent; called by the app."""
    from django.contrib.auth import get_user_model
    from django.db.models.signals import post_save

    post_save.connect(_saved, sender=get_user_model(), dispatch_uid="graffer_secevents.user_rows")


def _saved(
    sender: Any, instance: Any = None, created: bool = False, raw: bool = False, **_kwargs: Any
) -> None:
    if raw or current_request() is None:  # a fixture being loaded, or no request: not ours to record
        return
    if created:
        _created(instance)
    elif getattr(instance, "_password", None) is not None:  # set_password() since the last save
        _password_set(instance)


def _actor(instance: Any) -> Any:
    """The request's authenticated user when it is another account than `instance`, else `None`."""
    ctx = current_request()
    actor = ctx.user if ctx is not None else None
    if actor is None or getattr(actor, "is_authenticated", False) is not True:
        return None
    return None if getattr(actor, "pk", None) == getattr(instance, "pk", None) else actor


def _actor_is_authenticated() -> bool:
    ctx = current_request()
    actor = ctx.user if ctx is not None else None
    return actor is not None and getattr(actor, "is_authenticated", False) is True


def _created(instance: Any) -> None:
    with never_raise(_WHERE):
        actor = _actor(instance)
        if actor is None:
            record_auth("user_signup", where=_WHERE, user=instance)
        else:
            record_once("user_created", where=_WHERE, user=actor, target_user=instance)


def _password_set(instance: Any) -> None:
    if already_recorded("user_signup") or already_recorded("user_created"):
        return  # an account created, then given its password, in the same request: the creation says it
    with never_raise(_WHERE):
        kind = PASSWORD_KIND.get()
        if kind is None:
            kind = "change" if _actor_is_authenticated() else "reset"
        if kind == "reset":
            record_auth("authn_password_reset", where=_WHERE, user=instance, outcome="success", exists=True)
            return
        actor = _actor(instance)
        if actor is None:
            record_auth("authn_password_change", where=_WHERE, user=instance, outcome="success")
        else:
            record_once("authn_password_change", where=_WHERE, user=actor, target_user=instance)
