"""What every auth-stack integration shares: "this credential was checked, with this result" becomes exactly
one event for the request, with the account's stable id.

The stack adapters (`integrations/django/drf.py`, `integrations/django/allauth.py`,
`integrations/flask_security.py`, `integrations/fastapi_users.py`, `integrations/starlette_auth.py`)
hook the stack's own signals, views or managers and call `record_auth` (or the helpers below); they
never build records themselves.

Rules every adapter gets from here, not from its own code:

* **Once per attempt.** An attempt is recorded at most once per request and event type: a stack that
  reports the same failure twice (a signal and a view, a serializer calling `authenticate()`) writes one
  record; an attempt the application recorded with `secevents.record_login` / `record_bad_credential`
  is not written again, and a type the application suppressed (`secevents.suppress_request_events`) is not
  written at all. A recorded authentication or authorization failure also marks the request, so the
  401/403 status rule of the middleware writes no second event for it (`LazyRequestContext.denial_recorded`).
* **Stable ids.** `usr.id` is the account's immutable id (`pk` / `id` / UUID); adapters pass the
  account object or `account` of it, never an e-mail or a uniquifier token as the id.
* **Never raises** (but strict mode, as for a direct call): every call runs inside `never_raise`.

Nothing here imports a framework or an auth stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graffer_secevents._attempts import is_suppressed, mark_recorded, recorded
from graffer_secevents._catalog import CATALOG
from graffer_secevents._context import current_request
from graffer_secevents._pipeline import emit_event
from graffer_secevents._types import User

from ._common import LazyRequestContext, never_raise

__all__ = [
    "account",
    "already_recorded",
    "mark_denied",
    "record_auth",
    "record_bad_credential",
    "record_reset_refused",
    "stable_id",
]


def already_recorded(evt_type: str) -> bool:
    """Whether an event of `evt_type` was already recorded by `record_auth` (or the public `record_*`
    functions) for this request."""
    ctx = current_request()
    return ctx is not None and recorded(ctx, evt_type)


def record_auth(
    evt_type: str,
    *,
    where: str,
    user: object = None,
    outcome: str | None = None,
    login: object = None,
    exists: bool | None = None,
    params: Mapping[str, Any] | None = None,
    once: bool = True,
) -> bool:
    """Emit one auth event for the current request; return whether it was written by this call.

    Args:
        evt_type: the catalog type, e.g. `"authn_login_fail"`.
        where: what is recording, for the one-time warning if recording fails (`"simplejwt's token view"`).
        user: the account (a model instance, a `graffer_secevents.User`, an id), or `None`.
        outcome: `"success"`/`"failure"` where the type takes one.
        login: what was typed to log in (privacy rules apply); the password is never passed here.
        exists: whether the account exists (login failures, password resets).
        params: the event's catalog parameters (`{"reason": "invalid_credentials"}`).
        once: skip the call if this request already recorded `evt_type` (the default).
    """
    return _record(
        evt_type,
        where=where,
        once=once,
        emit={"user": user, "outcome": outcome, "login": login, "exists": exists, "params": params or None},
    )


def _record(evt_type: str, *, where: str, once: bool, emit: Mapping[str, Any]) -> bool:
    """`record_auth` and `record_once`: emit unless this request already recorded `evt_type` (or the
    application suppressed it), then mark the request."""
    user, outcome = emit.get("user"), emit.get("outcome")
    with never_raise(where):
        ctx = current_request()
        if ctx is not None and ((once and recorded(ctx, evt_type)) or is_suppressed(ctx, evt_type)):
            return False
        emit_event(evt_type, **emit)
        if ctx is not None:
            mark_recorded(ctx, (evt_type,))
            # Who just logged in is the request's user: a 403 after it names them.
            if (
                user is not None
                and outcome == "success"
                and isinstance(ctx, LazyRequestContext)
                and ctx._user is None
            ):
                ctx.user = user
            if isinstance(ctx, LazyRequestContext) and _is_failure(evt_type, outcome):
                ctx.denial_recorded = True  # the 401/403 status rule writes no second event
        return True
    return False


def _is_failure(evt_type: str, outcome: str | None) -> bool:
    spec = CATALOG.get(evt_type)
    return outcome == "failure" or (spec is not None and spec.fixed_outcome == "failure")


def account(id: object, *, login: str | None = None, email: str | None = None) -> User:
    """A `graffer_secevents.User` for an account known by its immutable `id` (and optionally the
    login or e-mail it was reached by, both privacy-processed)."""
    return User(id=id, login=login, email=email)  # type: ignore[arg-type]


def record_bad_credential(where: str, *, reason: str = "invalid_token", user: object = None) -> bool:
    """Record that this request presented a credential that failed (a forged, expired, revoked or unknown
    token or API key): one `authn_login_fail` with `evt.reason` (`invalid_token` unless the credential
    named an account that may not log in, `account_disabled`), and no second event from the 401/403 status
    rule. Return whether it was written by this call.

    Args:
        where: what is recording (`"simplejwt's JWTAuthentication"`).
        reason: a short, bounded reason.
        user: the account the credential named, when it is known, else `None`.
    """
    return record_auth(
        "authn_login_fail", where=where, user=user, outcome="failure", params={"reason": reason}
    )


def mark_denied() -> None:
    """Mark the current request as denied and recorded, so no status rule (401/403/429) writes a second event
    for it: for refusals that are not failure events themselves, e.g. `authn_login_fail_max`."""
    ctx = current_request()
    if isinstance(ctx, LazyRequestContext):
        ctx.denial_recorded = True


def stable_id(user: object) -> object:
    """The account's immutable id (`pk`, then `id`), or `None`: never `get_id()`, which Flask-Security
    and other Flask-Login users answer with a session token (`fs_uniquifier`) or an e-mail."""
    for attribute in ("pk", "id"):
        value = getattr(user, attribute, None)
        if value is not None:
            return value
    return None


def record_reset_refused(where: str, *, reason: str, user: object = None) -> bool:
    """Record a password-reset completion the stack refused (a bad or expired reset token, a new password its
    policy rejects): one failed `authn_password_reset`, `usr.exists` saying whether the token named an
    account (`user`, when it is known)."""
    return record_auth(
        "authn_password_reset",
        where=where,
        user=user,
        outcome="failure",
        exists=user is not None,
        params={"reason": reason},
    )


def record_once(evt_type: str, *, where: str, **emit: Any) -> bool:
    """`record_auth` for events that carry more than an actor (`target_user=`, `context=`): written at most
    once per request and event type, a failure marking the request; return whether this call wrote it.
    `emit` are `emit_event`'s keyword arguments (`user`, `outcome`, `login`, `exists`, `target_user`,
    `params`, `context`)."""
    return _record(evt_type, where=where, once=True, emit=emit)
