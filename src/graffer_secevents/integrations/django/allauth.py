"""django-allauth (`allauth.account`, `allauth.mfa`): signup, resets, password changes, MFA, rate limits.

Installed by the app `graffer_secevents.integrations.django` when `"allauth.account"` is in
`INSTALLED_APPS`; nothing to call. Logins and logouts already come from Django's own signals, which
allauth sends (`login()`, `logout()`, `authenticate(email=..., password=...)`: the failed login's
`usr.login` is the e-mail or username typed, hashed). The rest:

* `user_signed_up`: `user_signup` with the new account (its auto-login is Django's `user_logged_in`,
  once);
* `ResetPasswordForm.save`: `authn_password_reset_request` with `usr.exists` for known and unknown
  e-mails (`usr.email` hashed); `password_reset`: `authn_password_reset`;
* `UserTokenForm.clean` refusing a reset key: a failed `authn_password_reset` with ``evt.reason:
  invalid_reset_key``;
* `password_changed`: `authn_password_change` (never a login); `ChangePasswordForm.clean_oldpassword`
  refusing: `authn_password_change_fail` with `evt.reason: invalid_credentials`;
* `DefaultAccountAdapter.pre_authenticate` refusing (`too_many_login_attempts`, from
  `ACCOUNT_RATE_LIMITS["login_failed"]`: a window, not a lock): `authn_login_fail_max` with
  `usr.login` and, for a known account, its pk;
* `allauth.mfa`'s `authenticator_used` / `authentication_failed`: `authn_mfa_challenge` with the
  outcome and `evt.method` (`totp`, `recovery_codes`, ...);
* `allauth.mfa`'s `authenticator_added` / `authenticator_removed`: `authn_mfa_enabled` /
  `authn_mfa_disabled` with `evt.method`; `authenticator_reset` (recovery codes regenerated):
  `authn_mfa_enabled` with `evt.reason: reset`. The authenticator's secret or codes are never read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from graffer_secevents.integrations._auth import account, record_auth

from ._accounts import login_from, record_login_refused
from ._wrap import wrap_method
from .middleware import request_bound

__all__ = ["install"]


def install() -> None:
    """Connect allauth's signals and wrap its refusals. Idempotent; called by the app."""
    from allauth.account import signals
    from allauth.account.adapter import DefaultAccountAdapter
    from allauth.account.forms import ChangePasswordForm, ResetPasswordForm, UserTokenForm
    from django.apps import apps

    uid = "graffer_secevents.allauth."
    signals.user_signed_up.connect(_on_signed_up, dispatch_uid=uid + "signed_up")
    signals.password_reset.connect(_on_password_reset, dispatch_uid=uid + "password_reset")
    signals.password_changed.connect(_on_password_changed, dispatch_uid=uid + "password_changed")
    wrap_method(DefaultAccountAdapter, "pre_authenticate", _pre_authenticate)
    wrap_method(DefaultAccountAdapter, "respond_user_inactive", _user_inactive)
    if apps.is_installed("allauth.socialaccount"):
        _install_social_refusals()
    wrap_method(ResetPasswordForm, "save", _reset_request)
    wrap_method(UserTokenForm, "clean", _reset_key)
    wrap_method(ChangePasswordForm, "clean_oldpassword", _old_password)
    if apps.is_installed("allauth.mfa"):
        from allauth.mfa import signals as mfa_signals

        mfa_signals.authenticator_used.connect(_on_mfa_used, dispatch_uid=uid + "mfa_used")
        failed = getattr(mfa_signals, "authentication_failed", None)
        if failed is not None:
            failed.connect(_on_mfa_failed, dispatch_uid=uid + "mfa_failed")
        for name, receiver in (
            ("authenticator_added", _on_mfa_added),
            ("authenticator_removed", _on_mfa_removed),
            ("authenticator_reset", _on_mfa_reset),
        ):
            signal = getattr(mfa_signals, name, None)
            if signal is not None:
                signal.connect(receiver, dispatch_uid=uid + name)


def _user_inactive(original: Callable[..., Any]) -> Callable[..., Any]:
    """An account allauth refuses after it was identified (a social login's, or a backend that accepts
    inactive accounts): `authn_login_fail` `account_disabled` with its pk, once for the request."""

    def respond_user_inactive(self: Any, request: Any, user: Any) -> Any:
        with request_bound(request):
            params = {"reason": "account_disabled"}
            where = "allauth's respond_user_inactive"
            record_auth("authn_login_fail", where=where, user=user, outcome="failure", params=params)
        return original(self, request, user)

    return respond_user_inactive


def _install_social_refusals() -> None:
    """A social login the service refuses after the provider vouched for the identity: a `pre_social_login`
    hook (the adapter's or a signal receiver) raising `ImmediateHttpResponse`, or signup closed to a new
    identity (`SignupClosedException`). allauth answers both with a page (no status, no signal), so they are
    wrapped where allauth's login flow calls them (its `internal.flows.login` module; left alone if a
    release moves them)."""
    try:
        from allauth.socialaccount.internal.flows import login as flow
    except ImportError:
        return
    for name in ("pre_social_login", "process_signup"):
        if callable(getattr(flow, name, None)):
            wrap_method(cast(Any, flow), name, _social_refusal)


def _social_refusal(original: Callable[..., Any]) -> Callable[..., Any]:
    def step(request: Any, sociallogin: Any, *args: Any, **kwargs: Any) -> Any:
        from allauth.core.exceptions import ImmediateHttpResponse, SignupClosedException

        try:
            return original(request, sociallogin, *args, **kwargs)
        except (ImmediateHttpResponse, SignupClosedException):
            user = getattr(sociallogin, "user", None)
            known = user if getattr(sociallogin, "is_existing", False) else None  # an account of this service
            with request_bound(request):
                record_auth(
                    "authn_login_fail",
                    where="allauth's social login",
                    user=known,
                    outcome="failure",
                    params={"reason": "not_allowed"},
                )
            raise

    return step


def _current_request() -> Any:
    from allauth.core import context

    return getattr(context, "request", None)


# --- signals -----------------------------------------------------------------------------------------------


def _on_signed_up(sender: Any, request: Any = None, user: Any = None, **_kwargs: Any) -> None:
    with request_bound(request):
        record_auth("user_signup", where="allauth's user_signed_up", user=user)


def _on_password_reset(sender: Any, request: Any = None, user: Any = None, **_kwargs: Any) -> None:
    with request_bound(request):
        record_auth("authn_password_reset", where="allauth's password_reset", user=user, outcome="success")


def _on_password_changed(sender: Any, request: Any = None, user: Any = None, **_kwargs: Any) -> None:
    with request_bound(request):
        record_auth("authn_password_change", where="allauth's password_changed", user=user)


def _on_mfa_used(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    _mfa(request, user, kwargs.get("authenticator"), "success")


def _on_mfa_failed(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    _mfa(request, user, kwargs.get("authenticator"), "failure")


def _mfa(request: Any, user: Any, authenticator: Any, outcome: str) -> None:
    method = getattr(authenticator, "type", None)
    reason = "mfa_failed" if outcome == "failure" else None
    params = {"method": str(method) if method else None, "reason": reason}
    with request_bound(request):
        record_auth("authn_mfa_challenge", where="allauth.mfa", user=user, outcome=outcome, params=params)


def _on_mfa_added(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    _mfa_change("authn_mfa_enabled", request, user, kwargs.get("authenticator"), None)


def _on_mfa_removed(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    _mfa_change("authn_mfa_disabled", request, user, kwargs.get("authenticator"), None)


def _on_mfa_reset(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    _mfa_change("authn_mfa_enabled", request, user, kwargs.get("authenticator"), "reset")


def _mfa_change(evt_type: str, request: Any, user: Any, authenticator: Any, reason: str | None) -> None:
    method = getattr(authenticator, "type", None)
    params = {"method": str(method) if method else None, "reason": reason}
    with request_bound(request):
        # Not once per request: removing TOTP also removes the recovery codes left dangling (two events).
        record_auth(evt_type, where="allauth.mfa", user=user, params=params, once=False)


# --- refusals allauth reports only to the user ------------------------------------------------------------


def _pre_authenticate(original: Callable[..., Any]) -> Callable[..., Any]:
    def pre_authenticate(self: Any, request: Any, **credentials: Any) -> Any:
        from django.core.exceptions import ValidationError

        try:
            return original(self, request, **credentials)
        except ValidationError:
            _rate_limited(request, credentials)
            raise

    return pre_authenticate


def _rate_limited(request: Any, credentials: dict[str, Any]) -> None:
    # Only the login keys are read (never the password), as for Django's own failure signal.
    login, keys = login_from(credentials)
    with request_bound(request):
        record_login_refused(login, where="allauth's login rate limit", keys=keys, max_limit=_login_limit())


def _login_limit() -> int | None:
    """The per-account count of `ACCOUNT_RATE_LIMITS["login_failed"]` (`"10/m/ip,5/300s/key"` → 5)."""
    try:
        from allauth.account import app_settings

        rules = str(app_settings.RATE_LIMITS.get("login_failed") or "").split(",")
        counts = {rule.rsplit("/", 1)[-1]: int(rule.split("/", 1)[0]) for rule in rules if "/" in rule}
    except Exception:  # noqa: BLE001 - an unusual setting: no limit written
        return None
    return counts.get("key", counts.get("ip"))


def _reset_request(original: Callable[..., Any]) -> Callable[..., Any]:
    def save(self: Any, request: Any, **kwargs: Any) -> Any:
        result = original(self, request, **kwargs)
        users = getattr(self, "users", None) or []
        email = self.cleaned_data.get("email")
        with request_bound(request):
            record_auth(
                "authn_password_reset_request",
                where="allauth's password reset form",
                user=account(users[0].pk if users else None, email=email if isinstance(email, str) else None),
                exists=bool(users),
            )
        return result

    return save


def _change_refused(
    where: str, reason: str, user_attribute: str, evt_type: str = "authn_password_change_fail"
) -> Callable[[Any], Callable[..., Any]]:
    """A form `clean*` method whose `ValidationError` is a failed `evt_type` for the form's
    `user_attribute` account."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def clean(self: Any) -> Any:
            from django.core.exceptions import ValidationError

            try:
                return original(self)
            except ValidationError:
                with request_bound(_current_request()):
                    user = getattr(self, user_attribute, None)
                    params = {"reason": reason}
                    record_auth(evt_type, where=where, user=user, outcome="failure", params=params)
                raise

        return clean

    return make


_reset_key = _change_refused(
    "allauth's password reset key", "invalid_reset_key", "reset_user", "authn_password_reset"
)
_old_password = _change_refused("allauth's password change form", "invalid_credentials", "user")
