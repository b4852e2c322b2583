"""Flask-Security-Too: its logins, failures, signups, resets, password changes and two-factor codes as events.

Turned on by the Flask extension: `SecurityEvents(app)` finds Flask-Security's `Security` on the app
when it was initialised first (`flask_security=True` insists, and says so when it is missing;
`flask_security=False` turns it off)::

    from flask_security import Security, SQLAlchemyUserDatastore
    from graffer_secevents.integrations.flask import SecurityEvents

    security = Security(app, SQLAlchemyUserDatastore(db, User, Role))
    SecurityEvents(app)                                  # after Security(app)

What is recorded, each exactly once per request, with `usr.id` the account's `id` (never its
`fs_uniquifier`, which Flask-Security hands to Flask-Login as the session id):

* a login (`/login` form or JSON, e-mail or username, and the auto-login after a signup or a reset) →
  `authn_login_success`, from Flask-Security's `user_authenticated` signal; the re-login a password change
  performs is not a login and is not recorded;
* a failed login → `authn_login_fail` with `usr.exists` and `evt.reason`: `invalid_credentials`
  (`user_failed_authn`), `unknown_user`, `account_disabled`, `unconfirmed`; a login the application's
  `is_locked()` refuses → `authn_login_lock`. The login form is observed through Flask-Security's own
  form-instantiation hook (`Security.set_form_info`): the password field is never read;
* unified sign-in (`SECURITY_UNIFIED_SIGNIN`): `/us-signin` with the password or a code sent by e-mail or
  SMS → `authn_login_success` / `authn_login_fail` (the same signals); an unknown identity, an inactive or
  unconfirmed account on `/us-signin` or `/us-signin/send-code` → `authn_login_fail`, an `is_locked()`
  refusal → `authn_login_lock` (its form, observed like the login form; a code sent is no event);
* a request refused with 401 by `auth_required` (`user_unauthenticated`): a wrong Basic password or an
  unknown account → `authn_login_fail`; an invalid or expired auth token → `authn_login_fail` with
  `evt.reason: invalid_token`; no credential at all → `authz_fail`. Never a second event from the
  status rule;
* `user_registered` → `user_signup`, written once the view has committed the new account (so its `id`
  exists);
* `/reset`: `authn_password_reset_request` with `usr.exists` true (`reset_password_instructions_sent`)
  or false (an unknown e-mail, answered by the form whether or not `RETURN_GENERIC_RESPONSES` hides it);
  `/reset/<token>`: `authn_password_reset` (`password_reset`), or its failure with `evt.reason`
  `invalid_token` / `expired_token`;
* `/change`: `authn_password_change` (`password_changed`) or `authn_password_change_fail` with
  `evt.reason` `invalid_credentials` (wrong current password) or `password_policy`;
* two-factor: `tf_code_confirmed` → `authn_mfa_challenge` success, a wrong code → its failure
  (`evt.method` the user's primary method);
* `/refresh-token` (`SECURITY_REFRESH_TOKEN`): a refresh token of a generation already rotated away, or
  of a revoked family → `authn_token_reuse` (`evt.token_id` the hashed family); an invalid, unknown or
  expired one → `authn_login_fail` (`invalid_token` / `expired_token`);
* logout: Flask-Login's `user_logged_out` → `session_logout` (the Flask integration);
* roles given or taken, accounts (de)activated or deleted through the datastore, second factors added or
  removed: `_flask_security_accounts.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, cast

from graffer_secevents._errors import ConfigurationError, MissingDependencyError

try:
    import flask_security
except ImportError:
    raise MissingDependencyError("Flask-Security-Too", "flask-security") from None

import flask
from flask_security.recoverable import reset_password_token_status  # pyright: ignore[reportUnknownVariableType] - its `token` is unannotated

from ._auth import (
    account,
    already_recorded,
    record_auth,
    record_bad_credential,
    record_reset_refused,
    stable_id,
)
from ._common import never_raise
from ._flask_security_accounts import connect_account_changes

__all__ = ["connect"]

_WHERE: Final = "Flask-Security's event"
_WRAPPED: Final = "_secevents_wrapped"
_VALIDATED: Final = "_secevents_validated"
"""Set on a form by `_note_validation`: `(what validate() returned, the names of the fields that failed)`."""
_TYPED_FIELDS: Final = ("email", "username", "identity")
"""Request fields that may hold what was typed to log in (never the password)."""


def connect(app: flask.Flask) -> None:
    """Connect Flask-Security's signals and form hooks for `app` (`SecurityEvents` calls this).

    Raises:
        ConfigurationError: Flask-Security's `Security` was not initialised on `app` first.
    """
    security = app.extensions.get("security")
    if security is None or not hasattr(security, "forms"):
        raise ConfigurationError(
            "SecurityEvents(app, flask_security=True): initialise Flask-Security first, "
            "Security(app, datastore), then SecurityEvents(app)"
        )
    signals: list[tuple[Any, Callable[..., None]]] = [
        (flask_security.user_authenticated, _on_authenticated),
        (flask_security.user_failed_authn, _on_failed_authn),
        (flask_security.user_unauthenticated, _on_unauthenticated),
        (flask_security.user_registered, _on_registered),
        (flask_security.reset_password_instructions_sent, _on_reset_requested),
        (flask_security.password_reset, _on_password_reset),
        (flask_security.password_changed, _on_password_changed),
        (flask_security.tf_code_confirmed, _on_tf_confirmed),
    ]
    for signal, receiver in signals:
        signal.connect(receiver, sender=app)
    for name, inspect in _FORM_CHECKS.items():
        _observe_form(security, name, inspect)
    connect_account_changes(app, security)  # roles, (de)activation, deletion, second factors


# --- signals ------------------------------------------------------------------------------------------------


def _on_authenticated(_sender: Any, user: Any = None, authn_via: Any = None, **_extra: Any) -> None:
    with never_raise(_WHERE):
        via = authn_via or ()
        if "change" in via:
            return  # change_user_password() logs the user in again: a password change, not a login
        _when_stored(
            user,
            lambda: record_auth("authn_login_success", where=_WHERE, user=_account(user), outcome="success"),
        )


def _on_failed_authn(_sender: Any, user: Any = None, tfa: bool = False, **_extra: Any) -> None:
    with never_raise(_WHERE):
        if tfa:
            _mfa(user, "failure", reason="invalid_code")
            return
        _login_failed(user, "invalid_credentials", login=_typed_identity())


def _on_unauthenticated(_sender: Any, **_extra: Any) -> None:
    with never_raise(_WHERE):
        auth = flask.request.authorization
        if auth is not None and auth.type == "basic" and auth.username:
            user = flask_security.lookup_identity(auth.username)
            if user is None:
                _login_failed(None, "unknown_user", login=auth.username)
            else:
                reason = "account_disabled" if not user.is_active else "invalid_credentials"
                _login_failed(user, reason, login=auth.username)
            return
        if _presented_token():
            record_bad_credential(_WHERE, reason="invalid_token")
            return
        record_auth("authz_fail", where=_WHERE, params={"resource": flask.request.path})


def _on_registered(_sender: Any, user: Any = None, **_extra: Any) -> None:
    with never_raise(_WHERE):
        _when_stored(user, lambda: record_auth("user_signup", where=_WHERE, user=_account(user)))


def _on_reset_requested(_sender: Any, user: Any = None, **_extra: Any) -> None:
    with never_raise(_WHERE):
        record_auth("authn_password_reset_request", where=_WHERE, user=_account(user), exists=True)


def _on_password_reset(_sender: Any, user: Any = None, **_extra: Any) -> None:
    with never_raise(_WHERE):
        record_auth("authn_password_reset", where=_WHERE, user=_account(user), outcome="success", exists=True)


def _on_password_changed(_sender: Any, user: Any = None, **_extra: Any) -> None:
    with never_raise(_WHERE):
        record_auth("authn_password_change", where=_WHERE, user=_account(user), outcome="success")


def _on_tf_confirmed(_sender: Any, user: Any = None, method: Any = None, **_extra: Any) -> None:
    with never_raise(_WHERE):
        _mfa(user, "success", method=method)


# --- what the views' forms concluded ----------------------------------------------------------------------


def _check_login(form: Any) -> None:
    if already_recorded("authn_login_success") or already_recorded("authn_login_fail"):
        return
    user = getattr(form, "user", None)
    field = getattr(form, "ifield", None)
    typed = getattr(field, "data", None) if field is not None else None
    if user is None:
        if field is not None and typed:  # looked up, not found
            _login_failed(None, "unknown_user", login=typed)
        return
    if not getattr(form, "user_authenticated", False):
        _login_failed(user, "invalid_credentials", login=typed)  # an app's track_failed_authn sent no signal
    elif not user.is_active:
        _login_failed(user, "account_disabled", login=typed)
    elif getattr(form, "requires_confirmation", False):
        _login_failed(user, "unconfirmed", login=typed)
    elif "tf_user_id" not in flask.session:  # right password, not waiting for a second factor: is_locked()
        record_auth("authn_login_lock", where=_WHERE, user=_account(user), params={"reason": "locked"})


def _check_forgot_password(form: Any) -> None:
    if already_recorded("authn_password_reset_request"):
        return
    email = getattr(getattr(form, "email", None), "data", None)
    user = getattr(form, "user", None)
    if user is not None:
        record_auth("authn_password_reset_request", where=_WHERE, user=_account(user), exists=True)
    elif email:
        record_auth("authn_password_reset_request", where=_WHERE, login=email, exists=False)


def _check_reset_password(form: Any) -> None:
    if already_recorded("authn_password_reset"):
        return
    token = (flask.request.view_args or {}).get("token")
    expired, invalid, user = reset_password_token_status(token)  # type: ignore[no-untyped-call]
    if expired or invalid or user is None:
        reason = "expired_token" if expired else "invalid_token"
    elif form.errors:
        reason = "password_policy"
    else:
        return
    record_reset_refused(_WHERE, reason=reason, user=_account(user))


def _check_change_password(form: Any) -> None:
    if already_recorded("authn_password_change") or not form.errors:
        return
    password = getattr(form, "password", None)
    reason = "invalid_credentials" if password is not None and password.errors else "password_policy"
    user = flask_security.current_user._get_current_object()
    record_auth("authn_password_change_fail", where=_WHERE, user=_account(user), params={"reason": reason})


def _check_refresh_token(form: Any) -> None:
    """A refresh token exchanged (`/refresh-token`): a generation already rotated away or a revoked family
    is a reuse; an unsigned, unknown or expired one is a bad credential. A good exchange is no event."""
    errors = getattr(form, "refresh_errors", None)
    if errors is None:
        return
    user = _account(getattr(form, "user", None))
    if errors.name in ("GEN_MISMATCH", "REVOKED"):
        tracker = getattr(form, "refresh_tracker", None)
        family = getattr(tracker, "refresh_family", None)
        record_auth(
            "authn_token_reuse",
            where=_WHERE,
            user=user,
            params={"token_id": family if isinstance(family, str) else None},
        )
    else:
        reason = "expired_token" if errors.name == "EXPIRED" else "invalid_token"
        record_bad_credential(_WHERE, reason=reason, user=user)


def _check_us_signin(form: Any) -> None:
    """Unified sign-in (`SECURITY_UNIFIED_SIGNIN`): `/us-signin` (a password or a one-time code) and
    `/us-signin/send-code` share this form. A wrong passcode is `user_failed_authn`, a success
    `user_authenticated`; what the form refused before checking the passcode is read here."""
    if already_recorded("authn_login_success") or already_recorded("authn_login_fail"):
        return
    validated = getattr(form, _VALIDATED, None)
    if validated is None or validated[0] or "user" not in vars(form):
        return  # not validated; validated (a login, a code sent, a second factor next); no identity looked up
    failed_fields: frozenset[str] = validated[1]
    user = form.user
    typed = getattr(getattr(form, "identity", None), "data", None)
    if user is None:
        if typed:
            _login_failed(None, "unknown_user", login=typed)
    elif not user.is_active:
        _login_failed(user, "account_disabled", login=typed)
    elif getattr(form, "requires_confirmation", False):
        _login_failed(user, "unconfirmed", login=typed)
    elif not failed_fields & {"passcode", "chosen_method"}:  # stopped after the lookup, before the passcode
        record_auth("authn_login_lock", where=_WHERE, user=_account(user), params={"reason": "locked"})
    # else: no passcode given, or a code method the account has not set up: no credential was presented


_FORM_CHECKS: Final[dict[str, Callable[[Any], None]]] = {
    "login_form": _check_login,
    "us_signin_form": _check_us_signin,
    "forgot_password_form": _check_forgot_password,
    "reset_password_form": _check_reset_password,
    "change_password_form": _check_change_password,
    "refresh_token_form": _check_refresh_token,
}


def _observe_form(security: Any, name: str, inspect: Callable[[Any], None]) -> None:
    """Wrap the form's instantiator (Flask-Security's documented hook) so that, after a POST to its view,
    `inspect(form)` sees what the form concluded; a GET costs one method comparison."""
    info = security.forms.get(name)
    if info is None or getattr(info.instantiator, _WRAPPED, False):
        return
    original = info.instantiator

    def instantiate(form_name: str, cls: Any = None, *args: Any, **kwargs: Any) -> Any:
        form = original(form_name, cls, *args, **kwargs)
        if flask.request.method == "POST":
            _note_validation(form)

            def after(response: Any) -> Any:
                with never_raise(_WHERE):
                    inspect(form)
                return response

            flask.after_this_request(after)
        return form

    setattr(instantiate, _WRAPPED, True)
    security.set_form_info(name, flask_security.FormInfo(instantiator=instantiate, cls=info.cls))


def _note_validation(form: Any) -> None:
    """Keep on `form` what its `validate()` returned and which fields failed then: a view may move the
    field errors afterwards (`RETURN_GENERIC_RESPONSES`), before the check reads the form."""
    validate = getattr(form, "validate", None)
    if not callable(validate):
        return

    def noted(*args: Any, **kwargs: Any) -> Any:
        result = validate(*args, **kwargs)
        with never_raise(_WHERE):
            fields = cast("Mapping[str, Any]", getattr(form, "_fields", {}))
            failed = frozenset(name for name, field in fields.items() if getattr(field, "errors", None))
            setattr(form, _VALIDATED, (bool(result), failed))
        return result

    form.validate = noted


# --- helpers ------------------------------------------------------------------------------------------------


def _account(user: Any) -> Any:
    """The account as events describe it: its `id` (an inactive Flask-Login user reads as anonymous, since
    `is_authenticated` is `is_active`) and its e-mail (privacy-processed)."""
    uid = stable_id(user)
    if uid is None:
        return None
    email = getattr(user, "email", None)
    return account(uid, email=email if isinstance(email, str) else None)


def _login_failed(user: Any, reason: str, *, login: object = None) -> None:
    record_auth(
        "authn_login_fail",
        where=_WHERE,
        user=_account(user),
        login=login,
        exists=user is not None,
        params={"reason": reason},
    )


def _mfa(user: Any, outcome: str, *, method: Any = None, reason: str | None = None) -> None:
    method = method or getattr(user, "tf_primary_method", None)
    params = {"method": method if isinstance(method, str) else None, "reason": reason}
    record_auth("authn_mfa_challenge", where=_WHERE, user=_account(user), outcome=outcome, params=params)


def _when_stored(user: Any, record: Callable[[], object]) -> None:
    """`record()` now if the account has its id; else once the view has committed it.

    A new account has no `id` until its row is written: the register view commits in an
    `after_this_request` callback it registers before `user_registered` is sent, so a callback registered
    here runs after that commit (Flask runs them in order).
    """
    if stable_id(user) is not None:
        record()
        return

    def after(response: Any) -> Any:
        with never_raise(_WHERE):
            record()
        return response

    flask.after_this_request(after)


def _typed_identity() -> str | None:
    """What was typed as the login in this request's form or JSON body (`email`, `username` or
    `identity`), never the password."""
    request = flask.request
    data: Any = request.get_json(silent=True) if request.is_json else request.form
    if not isinstance(data, dict) and not hasattr(data, "get"):
        return None
    fields = cast("Mapping[str, object]", data)  # a JSON object or a form: read like a mapping
    for key in _TYPED_FIELDS:
        value = fields.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _presented_token() -> bool:
    """Whether the request carried a Flask-Security auth token (header or query argument)."""
    config = cast("Mapping[str, Any]", flask.current_app.config)  # Flask's `Config` is an untyped `dict`
    header = config.get("SECURITY_TOKEN_AUTHENTICATION_HEADER", "Authentication-Token")
    key = config.get("SECURITY_TOKEN_AUTHENTICATION_KEY", "auth_token")
    request = flask.request
    return bool(request.headers.get(header) or request.args.get(key))
