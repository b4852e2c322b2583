"""Django's password forms and reset view, and every subclass an application writes of them.

Wrapped once per process by the app (`apps.py`), on Django's own classes, so a subclass that calls
`super()` — and any view that uses one of these forms, not only Django's — is recorded:

* `PasswordResetForm.save`: `authn_password_reset_request`, `usr.exists` saying whether the e-mail
  reached an account (its pk as `usr.id` when it did; the typed e-mail hashed as `usr.email`);
* `PasswordChangeForm.clean_old_password` refusing: `authn_password_change_fail` with
  `evt.reason: invalid_credentials` for the form's user;
* `PasswordChangeForm.save` and `PasswordResetConfirmView`: say whether the password the user model's
  `post_save` sees (`_user_rows.py`) is a change or a reset, so that receiver writes the one event,
  whoever is logged in; a `SetPasswordForm` saved anywhere else (dj-rest-auth's password change) is a
  change when someone is logged in, a reset when not;
* `AuthenticationForm.clean` refusing an account whose password `authenticate()` accepted (its
  `confirm_login_allowed`: Django's admin refusing an account that is not staff, an inactive account let
  through by `AllowAllUsersModelBackend`, any check a subclass adds): one `authn_login_fail` with the
  account's pk, `usr.exists`, the typed login and `evt.reason` `account_disabled` (inactive) or
  `not_allowed`. No signal tells of it: `authenticate()` succeeded and `login()` is never called;
* `PasswordResetConfirmView` refusing a reset link (an unknown account, a bad or used token): a failed
  `authn_password_reset` with `evt.reason: invalid_reset_key` and, when the link named an account, its pk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graffer_secevents._context import current_request
from graffer_secevents.integrations._auth import account, record_auth, record_reset_refused
from graffer_secevents.integrations._common import never_raise

from ._user_rows import PASSWORD_KIND
from ._wrap import wrap_method

__all__ = ["install"]


def install() -> None:
    """Wrap Django's password forms and reset-confirm view. Idempotent; called by the app."""
    from django.contrib.auth import forms, views

    wrap_method(forms.AuthenticationForm, "clean", _login_refused)
    wrap_method(forms.PasswordResetForm, "save", _reset_request)
    wrap_method(forms.PasswordChangeForm, "clean_old_password", _old_password)
    wrap_method(forms.SetPasswordForm, "save", _set_password)
    wrap_method(views.PasswordResetConfirmView, "dispatch", _reset_confirm)


def _login_refused(original: Callable[..., Any]) -> Callable[..., Any]:
    def clean(self: Any) -> Any:
        from django.core.exceptions import ValidationError

        try:
            return original(self)
        except ValidationError:
            where = "Django's AuthenticationForm"
            user = getattr(self, "user_cache", None)
            if user is not None:  # the password was right; a wrong one is Django's user_login_failed
                with never_raise(where):
                    login = self.cleaned_data.get("username")
                    active = getattr(user, "is_active", True)
                    record_auth(
                        "authn_login_fail",
                        where=where,
                        user=user,
                        outcome="failure",
                        login=login if isinstance(login, str) else None,
                        exists=True,
                        params={"reason": "not_allowed" if active else "account_disabled"},
                    )
            raise

    return clean


def _reset_request(original: Callable[..., Any]) -> Callable[..., Any]:
    def save(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        where = "Django's PasswordResetForm"
        with never_raise(where):
            email = self.cleaned_data.get("email")
            email = email if isinstance(email, str) else None
            users = list(self.get_users(email)) if email is not None else []
            record_auth(
                "authn_password_reset_request",
                where=where,
                user=account(users[0].pk if users else None, email=email),
                exists=bool(users),
            )
        return result

    return save


def _old_password(original: Callable[..., Any]) -> Callable[..., Any]:
    def clean_old_password(self: Any) -> Any:
        from django.core.exceptions import ValidationError

        try:
            return original(self)
        except ValidationError:
            record_auth(
                "authn_password_change_fail",
                where="Django's PasswordChangeForm",
                user=getattr(self, "user", None),
                outcome="failure",
                params={"reason": "invalid_credentials"},
            )
            raise

    return clean_old_password


def _set_password(original: Callable[..., Any]) -> Callable[..., Any]:
    def save(self: Any, *args: Any, **kwargs: Any) -> Any:
        from django.contrib.auth.forms import PasswordChangeForm

        if not isinstance(self, PasswordChangeForm):
            # A reset inside PasswordResetConfirmView (which says so); elsewhere a SetPasswordForm is whoever
            # is logged in setting the password (dj-rest-auth's password change uses one): the actor decides.
            return original(self, *args, **kwargs)
        token = PASSWORD_KIND.set("change")
        try:
            return original(self, *args, **kwargs)
        finally:
            PASSWORD_KIND.reset(token)

    return save


def _reset_confirm(original: Callable[..., Any]) -> Callable[..., Any]:
    def dispatch(self: Any, *args: Any, **kwargs: Any) -> Any:
        kind = PASSWORD_KIND.set("reset")  # the link's password, whoever is logged in
        try:
            response = original(self, *args, **kwargs)
        finally:
            PASSWORD_KIND.reset(kind)
        if getattr(self, "validlink", True) is False and getattr(response, "status_code", 200) == 200:
            # Django's "Password reset unsuccessful" page (a valid link redirects, 302, first).
            user = getattr(self, "user", None)
            where = "Django's PasswordResetConfirmView"
            with never_raise(where):
                _redact_token_in_path(kwargs.get("token"))
            record_reset_refused(where, reason="invalid_reset_key", user=getattr(user, "pk", None))
        return response

    return dispatch


def _redact_token_in_path(token: object) -> None:
    """The reset link carries its token in the path: the request's events show `<token>` in its place
    (a mistyped token is often a real one, one character off)."""
    ctx = current_request()
    path = ctx.path if ctx is not None else None
    if isinstance(token, str) and token and isinstance(path, str) and token in path:
        ctx.path = path.replace(token, "<token>")  # type: ignore[union-attr]
