"""The public emitting functions: `emit` for any catalog type, and typed helpers for the common ones.

Each helper is a thin, typed front for one or two catalog rows; all the work happens in `_pipeline`.
Every helper runs inside the one guard (`_guard`) and reads nothing of what the caller passed beyond
exact `str` comparisons: choosing the event type never runs a caller's `__eq__`, `__hash__` or
`__bool__`.
Keyword arguments a helper does not name are caller metadata, written under `context.*` with secrets
redacted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from ._guard import guarded
from ._limits import _exact
from ._pipeline import emit_unguarded
from ._types import Outcome, OutcomeLike, UserLike

__all__ = [
    "OutcomeLike",
    "UserLike",
    "emit",
    "log_access_denied",
    "log_account_locked",
    "log_account_status",
    "log_admin_action",
    "log_data_export",
    "log_group_membership",
    "log_impersonation",
    "log_input_validation_failed",
    "log_login",
    "log_logout",
    "log_mfa_challenge",
    "log_mfa_change",
    "log_password_change",
    "log_password_reset",
    "log_privilege_change",
    "log_rate_limited",
    "log_sensitive_access",
    "log_signup",
    "log_token_created",
    "log_token_revoked",
    "log_user_created",
    "log_user_deleted",
    "log_user_updated",
]


@guarded
def emit(
    evt_type: str,
    user: UserLike = None,
    outcome: OutcomeLike | None = None,
    *,
    ip: str | None = None,
    login: str | None = None,
    exists: bool | None = None,
    target_user: UserLike = None,
    context: Mapping[str, Any] | None = None,
    **fields: Any,
) -> None:
    """Emit any event of the catalog.

    Args:
        evt_type: a catalog identifier (`secevents catalog` lists them), e.g. `"authz_fail"`.
        user: who acted; defaults to the request's user (middleware or `set_user`).
        outcome: for events whose outcome the caller decides; fixed ones ignore a matching value.
        ip: the client IP; defaults to the request's resolved client IP.
        login: what the user typed to log in (hashed by default).
        exists: whether the account exists (login failures, password resets).
        target_user: the account acted upon (IAM and admin events).
        context: caller metadata for `context.*`.
        **fields: the event's own parameters (`evt.<name>`); other names join `context`.

    Raises:
        EventValidationError: only in strict mode, for invalid input.

    Example:
        ```python
        secevents.emit("authz_fail", user=request.user, resource="/admin/users")
        ```
    """
    emit_unguarded(
        evt_type,
        user=user,
        outcome=outcome,
        ip=ip,
        login=login,
        exists=exists,
        target_user=target_user,
        context=context,
        fields=fields,
    )


@guarded
def log_login(
    user: UserLike,
    outcome: OutcomeLike,
    ip: str | None = None,
    *,
    login: str | None = None,
    exists: bool | None = None,
    reason: str | None = None,
    retries: int | None = None,
    **context: Any,
) -> None:
    """Record a login attempt: `authn_login_success` (or `..._successafterfail` with `retries`) or
    `authn_login_fail`.

    A failure may name an account that does not exist: `user=None, login="typed", exists=False`. An
    outcome other than success or failure is recorded as a failure (and noted), never as a success.

    Example:
        ```python
        secevents.log_login(None, "failure", login=form["username"], exists=False, reason="unknown_user")
        ```
    """
    if _is_success(outcome):
        if _has_retries(retries):
            emit_unguarded(
                "authn_login_successafterfail",
                user=user,
                outcome=outcome,
                ip=ip,
                login=login,
                exists=exists,
                params={"retries": retries},
                context=context,
            )
        else:
            emit_unguarded(
                "authn_login_success",
                user=user,
                outcome=outcome,
                ip=ip,
                login=login,
                exists=exists,
                context=context,
            )
    else:
        if retries is not None:
            context = {**context, "retries": retries}
        emit_unguarded(
            "authn_login_fail",
            user=user,
            outcome=outcome,
            ip=ip,
            login=login,
            exists=exists,
            params={"reason": reason},
            context=context,
        )


@guarded
def log_logout(
    user: UserLike = None,
    ip: str | None = None,
    *,
    session_id: str | None = None,
    login: str | None = None,
    **context: Any,
) -> None:
    """Record an explicit logout (`session_logout`); the session id is always hashed."""
    emit_unguarded(
        "session_logout", login=login, user=user, ip=ip, params={"session_id": session_id}, context=context
    )


@guarded
def log_signup(user: UserLike, ip: str | None = None, *, login: str | None = None, **context: Any) -> None:
    """Record a self-service registration (`user_signup`)."""
    emit_unguarded("user_signup", user=user, ip=ip, login=login, context=context)


@guarded
def log_password_change(
    user: UserLike,
    outcome: OutcomeLike = Outcome.SUCCESS,
    ip: str | None = None,
    *,
    reason: str | None = None,
    login: str | None = None,
    **context: Any,
) -> None:
    """Record a password change: `authn_password_change` or `authn_password_change_fail`."""
    if _is_success(outcome):
        emit_unguarded(
            "authn_password_change", login=login, user=user, outcome=outcome, ip=ip, context=context
        )
    else:
        emit_unguarded(
            "authn_password_change_fail",
            login=login,
            user=user,
            outcome=outcome,
            ip=ip,
            params={"reason": reason},
            context=context,
        )


@guarded
def log_password_reset(
    user: UserLike,
    ip: str | None = None,
    *,
    stage: Literal["request", "complete"] = "request",
    login: str | None = None,
    exists: bool | None = None,
    outcome: OutcomeLike = Outcome.SUCCESS,
    reason: str | None = None,
    **context: Any,
) -> None:
    """Record a password reset: `authn_password_reset_request` (stage `request`, the default) or
    `authn_password_reset` (stage `complete`). `exists` says whether the requested account exists;
    a completion refused (a bad or expired reset token) is `outcome="failure"` with a `reason`."""
    given = _exact(stage)
    complete = type(given) is str and given == "complete"
    if not complete:
        if not (type(given) is str and given == "request"):
            context = {**context, "stage": stage}
        emit_unguarded(
            "authn_password_reset_request", user=user, ip=ip, login=login, exists=exists, context=context
        )
        return
    emit_unguarded(
        "authn_password_reset",
        user=user,
        outcome=outcome,
        ip=ip,
        login=login,
        exists=exists,
        params={"reason": reason},
        context=context,
    )


@guarded
def log_mfa_challenge(
    user: UserLike,
    outcome: OutcomeLike,
    ip: str | None = None,
    *,
    method: str | None = None,
    reason: str | None = None,
    login: str | None = None,
    **context: Any,
) -> None:
    """Record a second-factor challenge and its outcome (`authn_mfa_challenge`)."""
    emit_unguarded(
        "authn_mfa_challenge",
        login=login,
        user=user,
        outcome=outcome,
        ip=ip,
        params={"method": method, "reason": reason},
        context=context,
    )


@guarded
def log_account_locked(
    user: UserLike,
    ip: str | None = None,
    *,
    reason: str | None = None,
    login: str | None = None,
    **context: Any,
) -> None:
    """Record an account lock (`authn_login_lock`); OWASP's reasons are `maxretries`, `suspicious`,
    `customer`, `other`."""
    emit_unguarded(
        "authn_login_lock", login=login, user=user, ip=ip, params={"reason": reason}, context=context
    )


@guarded
def log_token_created(
    user: UserLike,
    ip: str | None = None,
    *,
    token_id: str | None = None,
    entitlements: Iterable[str] | None = None,
    login: str | None = None,
    **context: Any,
) -> None:
    """Record a service-access token creation (`authn_token_created`); the token id is always hashed and the
    token itself must never be passed."""
    emit_unguarded(
        "authn_token_created",
        login=login,
        user=user,
        ip=ip,
        params={"token_id": token_id, "entitlements": entitlements},
        context=context,
    )


@guarded
def log_token_revoked(
    user: UserLike,
    ip: str | None = None,
    *,
    token_id: str | None = None,
    login: str | None = None,
    **context: Any,
) -> None:
    """Record a token revocation (`authn_token_revoked`); the token id is always hashed."""
    emit_unguarded(
        "authn_token_revoked", login=login, user=user, ip=ip, params={"token_id": token_id}, context=context
    )


@guarded
def log_access_denied(
    user: UserLike,
    resource: str | None = None,
    ip: str | None = None,
    *,
    login: str | None = None,
    **context: Any,
) -> None:
    """Record an access attempt without entitlement (`authz_fail`)."""
    emit_unguarded(
        "authz_fail", login=login, user=user, ip=ip, params={"resource": resource}, context=context
    )


@guarded
def log_privilege_change(
    user: UserLike,
    target_user: UserLike,
    *,
    from_role: str | None = None,
    to_role: str | None = None,
    granted: Iterable[str] | None = None,
    revoked: Iterable[str] | None = None,
    ip: str | None = None,
    login: str | None = None,
    **context: Any,
) -> None:
    """Record a change of `target_user`'s entitlements made by `user` (`authz_change`).

    `from_role`/`to_role` name the entitlement before and after; `granted`/`revoked` list what was given
    and taken away (roles, permissions; `superuser`, `staff` and `admin` are what the privilege-escalation
    rule looks for).

    Example:
        ```python
        secevents.log_privilege_change(request.user, member, from_role="member", to_role="admin",
                                       granted=["admin"])
        ```
    """
    emit_unguarded(
        "authz_change",
        login=login,
        user=user,
        ip=ip,
        target_user=target_user,
        params={"from_role": from_role, "to_role": to_role, "granted": granted, "revoked": revoked},
        context=context,
    )


@guarded
def log_group_membership(
    user: UserLike,
    target_user: UserLike,
    group: str,
    *,
    action: Literal["add", "remove"] = "add",
    ip: str | None = None,
    login: str | None = None,
    **context: Any,
) -> None:
    """Record that `user` added `target_user` to `group` (`group_member_added`) or, with
    `action="remove"`, removed them from it (`group_member_removed`).

    Example:
        ```python
        secevents.log_group_membership(request.user, member, "billing", action="remove")
        ```
    """
    given = _exact(action)
    remove = type(given) is str and given == "remove"
    if not remove and not (type(given) is str and given == "add"):
        context = {**context, "action": action}  # not one of the two: recorded as an addition, value kept
    evt_type = "group_member_removed" if remove else "group_member_added"
    emit_unguarded(
        evt_type,
        login=login,
        user=user,
        ip=ip,
        target_user=target_user,
        params={"group": group},
        context=context,
    )


@guarded
def log_account_status(
    user: UserLike,
    target_user: UserLike,
    *,
    enabled: bool,
    reason: str | None = None,
    ip: str | None = None,
    login: str | None = None,
    **context: Any,
) -> None:
    """Record that `user` enabled (`user_enabled`) or disabled (`user_disabled`, with `reason`) the
    account `target_user`. Anything but `enabled=True` is recorded as a disable.

    Example:
        ```python
        secevents.log_account_status(request.user, member, enabled=False, reason="offboarding")
        ```
    """
    if enabled is True:
        if reason is not None:
            context = {**context, "reason": reason}
        emit_unguarded(
            "user_enabled", login=login, user=user, ip=ip, target_user=target_user, context=context
        )
        return
    emit_unguarded(
        "user_disabled",
        login=login,
        user=user,
        ip=ip,
        target_user=target_user,
        params={"reason": reason},
        context=context,
    )


@guarded
def log_user_updated(
    user: UserLike,
    target_user: UserLike,
    *,
    attributes: Iterable[str] | None = None,
    ip: str | None = None,
    login: str | None = None,
    **context: Any,
) -> None:
    """Record that `user` changed the account `target_user` (`user_updated`); `attributes` names what
    changed (never the values)."""
    emit_unguarded(
        "user_updated",
        login=login,
        user=user,
        ip=ip,
        target_user=target_user,
        params={"attributes": attributes},
        context=context,
    )


@guarded
def log_mfa_change(
    user: UserLike,
    *,
    enabled: bool,
    method: str | None = None,
    reason: str | None = None,
    ip: str | None = None,
    login: str | None = None,
    **context: Any,
) -> None:
    """Record a second factor added (`authn_mfa_enabled`, `enabled=True`) or removed
    (`authn_mfa_disabled`; anything but `True` is recorded as a removal, the safer reading) for `user`.

    Example:
        ```python
        secevents.log_mfa_change(request.user, enabled=False, method="totp")
        ```
    """
    evt_type = "authn_mfa_enabled" if enabled is True else "authn_mfa_disabled"
    emit_unguarded(
        evt_type, login=login, user=user, ip=ip, params={"method": method, "reason": reason}, context=context
    )


@guarded
def log_impersonation(
    user: UserLike,
    target_user: UserLike,
    *,
    stage: Literal["start", "end"] = "start",
    target_role: str | None = None,
    reason: str | None = None,
    ip: str | None = None,
    login: str | None = None,
    **context: Any,
) -> None:
    """Record that `user` (the real account) started (`authn_impersonation_start`) or, with
    `stage="end"`, ended (`authn_impersonation_end`) impersonating `target_user`.

    `target_role` names the impersonated account's privilege (`superuser`, `staff`, `admin`, `user`): the
    rule for impersonated administrators reads it. Between the two, bind `impersonating(user)` so every
    event also names the real account.

    Example:
        ```python
        secevents.log_impersonation(request.user, customer, target_role="user", reason="ticket-4711")
        ```
    """
    given = _exact(stage)
    end = type(given) is str and given == "end"
    if not end and not (type(given) is str and given == "start"):
        context = {**context, "stage": stage}  # not one of the two: recorded as a start, value kept
    evt_type = "authn_impersonation_end" if end else "authn_impersonation_start"
    emit_unguarded(
        evt_type,
        login=login,
        user=user,
        ip=ip,
        target_user=target_user,
        params={"target_role": target_role, "reason": reason},
        context=context,
    )


@guarded
def log_admin_action(
    user: UserLike,
    action: str,
    ip: str | None = None,
    *,
    resource: str | None = None,
    login: str | None = None,
    **context: Any,
) -> None:
    """Record an action by a privileged user (`authz_admin`)."""
    emit_unguarded(
        "authz_admin",
        login=login,
        user=user,
        ip=ip,
        params={"action": action, "resource": resource},
        context=context,
    )


@guarded
def log_user_created(
    user: UserLike,
    target_user: UserLike,
    *,
    attributes: Iterable[str] | None = None,
    ip: str | None = None,
    login: str | None = None,
    **context: Any,
) -> None:
    """Record that `user` created the account `target_user` (`user_created`). `attributes` names the
    attributes set (never their values)."""
    emit_unguarded(
        "user_created",
        login=login,
        user=user,
        ip=ip,
        target_user=target_user,
        params={"attributes": attributes},
        context=context,
    )


@guarded
def log_user_deleted(
    user: UserLike, target_user: UserLike, *, ip: str | None = None, login: str | None = None, **context: Any
) -> None:
    """Record that `user` deleted the account `target_user` (`user_deleted`)."""
    emit_unguarded("user_deleted", login=login, user=user, ip=ip, target_user=target_user, context=context)


@guarded
def log_rate_limited(
    user: UserLike = None,
    ip: str | None = None,
    *,
    max_limit: int | None = None,
    resource: str | None = None,
    login: str | None = None,
    **context: Any,
) -> None:
    """Record a rate limit being exceeded (`excess_rate_limit_exceeded`)."""
    emit_unguarded(
        "excess_rate_limit_exceeded",
        login=login,
        user=user,
        ip=ip,
        params={"max_limit": max_limit, "resource": resource},
        context=context,
    )


@guarded
def log_input_validation_failed(
    user: UserLike = None,
    ip: str | None = None,
    *,
    fields: Iterable[str] | None = None,
    login: str | None = None,
    **context: Any,
) -> None:
    """Record a server-side input validation failure (`input_validation_fail`); `fields` names the fields
    (never their values)."""
    emit_unguarded(
        "input_validation_fail", login=login, user=user, ip=ip, params={"fields": fields}, context=context
    )


_SENSITIVE = {
    "create": "sensitive_create",
    "read": "sensitive_read",
    "update": "sensitive_update",
    "delete": "sensitive_delete",
}


@guarded
def log_sensitive_access(
    user: UserLike,
    object: str | None = None,
    *,
    action: Literal["create", "read", "update", "delete"] = "read",
    ip: str | None = None,
    login: str | None = None,
    **context: Any,
) -> None:
    """Record access to sensitive data (`sensitive_read` by default; `sensitive_create` / `_update` /
    `_delete` with `action`)."""
    given = _exact(action)
    evt_type = _SENSITIVE.get(given) if type(given) is str else None
    if evt_type is None:  # not one of the four: recorded as a read, the value kept in context
        evt_type = "sensitive_read"
        context = {**context, "action": action}
    emit_unguarded(evt_type, login=login, user=user, ip=ip, params={"object": object}, context=context)


@guarded
def log_data_export(
    user: UserLike,
    object: str | None = None,
    *,
    record_count: int | None = None,
    export_format: str | None = None,
    ip: str | None = None,
    login: str | None = None,
    **context: Any,
) -> None:
    """Record a data export (`data_export`)."""
    emit_unguarded(
        "data_export",
        login=login,
        user=user,
        ip=ip,
        params={"object": object, "record_count": record_count, "export_format": export_format},
        context=context,
    )


def _is_success(outcome: object) -> bool:
    # str's own comparison: a caller's __eq__ never runs (Outcome.SUCCESS is a str subclass and passes).
    if type(outcome) is str:
        return outcome == "success"
    given = _exact(outcome)
    return type(given) is str and given == "success"


def _has_retries(retries: object) -> bool:
    """Whether `retries` names earlier failures: not `None` and not zero (`__bool__` never asked)."""
    given = _exact(retries)
    if given is None:
        return False
    return given != 0 if type(given) is int or type(given) is bool else True
