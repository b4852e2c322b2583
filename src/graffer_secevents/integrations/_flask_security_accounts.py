"""Flask-Security-Too: role, account and second-factor changes as events (called by `flask_security.connect`).

Flask-Security sends no signal for a role given or taken, an account (de)activated or deleted, so the app's
own datastore (`app.extensions["security"].datastore`, that instance only) is wrapped; its second-factor
changes come from its signals:

* `datastore.add_role_to_user` (a role added): `authz_change`, `evt.to_role` and `evt.granted` the role;
* `datastore.remove_role_from_user` (a role removed): `authz_change`, `evt.from_role` and `evt.revoked`;
* `datastore.activate_user` / `deactivate_user` / `toggle_active` (a change made): `user_enabled` /
  `user_disabled`; `datastore.delete_user`: `user_deleted` (each with `target.usr` the account);
* `tf_profile_changed` / `tf_disabled`: `authn_mfa_enabled` / `authn_mfa_disabled` (`evt.method`);
  `wan_registered` / `wan_deleted`: the same, `evt.method: webauthn`; `us_profile_changed`: the same, one per
  unified sign-in method.

The actor is the request's user (Flask-Login) or, outside a request, what the application bound. Events are
written when the datastore call returns: Flask-Security leaves the commit to the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, cast

from graffer_secevents._pipeline import emit_event

from ._auth import account, stable_id
from ._common import never_raise

__all__ = ["connect_account_changes"]

_WHERE: Final = "Flask-Security's account changes"
_MARK: Final = "_secevents_accounts_wrapped"


def connect_account_changes(app: Any, security: Any) -> None:
    """Wrap `security.datastore`'s account methods (once per datastore) and connect the 2FA signals."""
    import flask_security

    for signal, receiver in (
        (flask_security.tf_profile_changed, _on_tf_changed),
        (flask_security.tf_disabled, _on_tf_disabled),
        (flask_security.wan_registered, _on_wan_registered),
        (flask_security.wan_deleted, _on_wan_deleted),
        (flask_security.us_profile_changed, _on_us_changed),
    ):
        signal.connect(receiver, sender=app)
    datastore = getattr(security, "datastore", None)
    if datastore is None or getattr(datastore, _MARK, False):
        return
    for name, make in _WRAPPERS.items():
        original = getattr(datastore, name, None)
        if callable(original):
            setattr(datastore, name, make(original))
    setattr(datastore, _MARK, True)


def _target(user: Any) -> Any:
    email = getattr(user, "email", None)
    return account(stable_id(user), email=email if isinstance(email, str) else None)


def _role_name(role: Any) -> str | None:
    name = role if isinstance(role, str) else getattr(role, "name", None)
    return name if isinstance(name, str) else None


def _emit(evt_type: str, user: Any = None, target: Any = None, **params: Any) -> None:
    with never_raise(_WHERE):
        emit_event(evt_type, user=user, target_user=target, params=params or None)


# --- the datastore -----------------------------------------------------------------------------------------


def _role_added(original: Callable[..., Any]) -> Callable[..., Any]:
    def add_role_to_user(user: Any, role: Any) -> Any:
        changed = original(user, role)
        if changed is True:
            name = _role_name(role)
            _emit("authz_change", target=_target(user), to_role=name, granted=[name] if name else None)
        return changed

    return add_role_to_user


def _role_removed(original: Callable[..., Any]) -> Callable[..., Any]:
    def remove_role_from_user(user: Any, role: Any) -> Any:
        changed = original(user, role)
        if changed is True:
            name = _role_name(role)
            _emit("authz_change", target=_target(user), from_role=name, revoked=[name] if name else None)
        return changed

    return remove_role_from_user


def _status(original: Callable[..., Any]) -> Callable[..., Any]:
    def change_status(user: Any) -> Any:
        before = getattr(user, "active", None)
        result = original(user)
        after = getattr(user, "active", None)
        if before is not after and isinstance(after, bool):
            _emit("user_enabled" if after else "user_disabled", target=_target(user))
        return result

    return change_status


def _deleted(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete_user(user: Any) -> Any:
        target = _target(user)  # before the row goes
        result = original(user)
        _emit("user_deleted", target=target)
        return result

    return delete_user


_WRAPPERS: Final[dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]]] = {
    "add_role_to_user": _role_added,
    "remove_role_from_user": _role_removed,
    "activate_user": _status,
    "deactivate_user": _status,
    "toggle_active": _status,
    "delete_user": _deleted,
}


# --- second factors ----------------------------------------------------------------------------------------


def _mfa(evt_type: str, user: Any, method: Any) -> None:
    _emit(evt_type, user=_target(user), method=method if isinstance(method, str) else None)


def _on_tf_changed(_sender: Any, user: Any = None, method: Any = None, **_extra: Any) -> None:
    _mfa("authn_mfa_enabled", user, method)


def _on_tf_disabled(_sender: Any, user: Any = None, **_extra: Any) -> None:
    _mfa("authn_mfa_disabled", user, None)


def _on_wan_registered(_sender: Any, user: Any = None, **_extra: Any) -> None:
    _mfa("authn_mfa_enabled", user, "webauthn")


def _on_wan_deleted(_sender: Any, user: Any = None, **_extra: Any) -> None:
    _mfa("authn_mfa_disabled", user, "webauthn")


def _on_us_changed(
    _sender: Any, user: Any = None, methods: Any = None, delete: bool = False, **_extra: Any
) -> None:
    evt_type = "authn_mfa_disabled" if delete is True else "authn_mfa_enabled"
    given: list[object] = (
        list(cast("list[object]", methods)) if isinstance(methods, list | tuple) else [methods]
    )
    for method in given:
        _mfa(evt_type, user, method)
