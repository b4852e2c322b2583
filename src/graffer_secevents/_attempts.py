"""Once-per-request attempts: the public API that gives a hand-wired auth stack what the built-in
integrations have.

* `record_login` and `record_bad_credential` write a request's login attempt (or refused credential) at
  most once: a second call, or an integration that sees the same attempt later (Django's
  `user_login_failed`, a FastAPI login route, the 401 status rule), writes nothing more.
* `suppress_request_events` stops the integrations from writing the named types (or any type) for the rest
  of the request, so the application can write what really happened instead (a lock-out library that
  refuses a login before the password is checked: `authn_login_lock`, not a wrong password).

The bookkeeping is two attributes of the request's context, shared with `integrations/_auth.py` (which
every stack adapter records through) and the status rules of `integrations/_common.py`. Outside a
request the functions write as the `log_*` helpers do (there is no request to be once in).
"""

from __future__ import annotations

from typing import Any, Final

from ._api import log_login
from ._context import current_request
from ._guard import guarded
from ._limits import _exact
from ._pipeline import emit_unguarded
from ._types import OutcomeLike, UserLike

__all__ = [
    "ATTEMPT_TYPES",
    "is_suppressed",
    "mark_recorded",
    "record_bad_credential",
    "record_login",
    "recorded",
    "suppress_request_events",
]

ATTEMPT_TYPES: Final = frozenset({"authn_login_success", "authn_login_successafterfail", "authn_login_fail"})
"""The event types of one login attempt: a request records at most one of them through `record_login`."""

_RECORDED: Final = "_secevents_auth_recorded"
_SUPPRESSED: Final = "_secevents_suppressed"
_ALL: Final = frozenset[str]()


def recorded(ctx: object, evt_type: str) -> bool:
    """Whether this request already recorded `evt_type` once (through `record_*` or an integration)."""
    seen: set[str] | None = getattr(ctx, _RECORDED, None)
    return seen is not None and evt_type in seen


def mark_recorded(ctx: object, evt_types: frozenset[str] | set[str] | tuple[str, ...]) -> None:
    """Note that this request recorded `evt_types`: later once-per-request writes of them are skipped."""
    seen: set[str] | None = getattr(ctx, _RECORDED, None)
    if seen is None:
        seen = set()
        try:
            setattr(ctx, _RECORDED, seen)
        except (AttributeError, TypeError):  # a context class that takes no attributes: nothing to remember
            return
    seen.update(evt_types)


def is_suppressed(ctx: object, evt_type: str) -> bool:
    """Whether the application asked the integrations to write no `evt_type` for this request."""
    suppressed: frozenset[str] | None = getattr(ctx, _SUPPRESSED, None)
    return suppressed is not None and (not suppressed or evt_type in suppressed)


def suppress_request_events(*evt_types: str) -> bool:
    """Stop the integrations from writing `evt_types` (no type given: any type) for the current request.

    What the application itself writes (any `log_*` or `record_*` call) is still written; what Django's or
    Flask-Login's signals and the auth-stack adapters would write of those types is not, and the
    middleware's 401/403 status rule writes nothing for this request (its refusal is the application's to
    record). Return whether there is a request to suppress for.

    Example:
        ```python
        # a lock-out library refused the login before the password was checked
        secevents.suppress_request_events("authn_login_fail")
        secevents.log_account_locked(account, reason="maxretries")
        ```
    """
    ctx = current_request()
    if ctx is None:
        return False
    wanted = frozenset(t for t in (_exact(e) for e in evt_types) if type(t) is str)
    previous: frozenset[str] | None = getattr(ctx, _SUPPRESSED, None)
    if previous is not None:
        wanted = _ALL if not previous or not wanted else previous | wanted
    try:
        setattr(ctx, _SUPPRESSED, wanted)
    except (AttributeError, TypeError):
        return False
    if hasattr(ctx, "denial_recorded"):  # the application records this request's refusal: no 401/403 event
        setattr(ctx, "denial_recorded", True)  # noqa: B010 - RequestContext itself has no such field
    return True


def record_login(
    user: UserLike,
    outcome: OutcomeLike,
    ip: str | None = None,
    *,
    login: str | None = None,
    exists: bool | None = None,
    reason: str | None = None,
    retries: int | None = None,
    **context: Any,
) -> bool:
    """Record this request's login attempt once: `log_login`, unless the request already recorded one.

    Takes `log_login`'s arguments. Return whether it was written by this call; `False` when the request's
    attempt was already recorded (an earlier call, or an integration), so an application and an integration
    that both see the attempt write one record. Integrations that see it later write nothing more.

    Example:
        ```python
        secevents.record_login(account, "failure", login=typed, exists=account is not None,
                               reason="invalid_credentials")
        ```
    """
    ctx = current_request()
    if ctx is not None and any(recorded(ctx, t) for t in ATTEMPT_TYPES):
        return False
    log_login(user, outcome, ip, login=login, exists=exists, reason=reason, retries=retries, **context)
    if ctx is not None:
        mark_recorded(ctx, ATTEMPT_TYPES)
    return True


def record_bad_credential(
    user: UserLike = None,
    ip: str | None = None,
    *,
    reason: str = "invalid_token",
    login: str | None = None,
    **context: Any,
) -> bool:
    """Record that this request presented a credential that failed (a forged, expired, revoked or unknown
    token or API key): one `authn_login_fail` per request with `evt.reason` (`invalid_token` by default),
    and no second event from the 401/403 status rule.

    Args:
        user: the account the credential named, when it is known (a token whose signature was checked);
            never an identity read from an unverified token.
        ip: the client IP; defaults to the request's.
        reason: a short, bounded reason: `invalid_token`, `account_disabled`...
        login: what the credential named as a login, if anything (hashed as by `log_login`).
        **context: caller metadata for `context.*`.

    Returns:
        Whether it was written by this call.
    """
    ctx = current_request()
    if ctx is not None and recorded(ctx, "authn_login_fail"):
        return False
    _bad_credential(user, ip, reason, login, context)
    if ctx is not None:
        mark_recorded(ctx, ("authn_login_fail",))
    return True


def _bad_credential_unguarded(user: object, ip: object, reason: object, login: object, context: Any) -> None:
    emit_unguarded(
        "authn_login_fail",
        user=user,
        outcome="failure",
        ip=ip,
        login=login,
        params={"reason": reason},
        context=context,
    )


_bad_credential: Final = guarded(_bad_credential_unguarded, "record_bad_credential")
