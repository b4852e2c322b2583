"""django-otp: every second-factor verification, whichever form, view or API drives it.

Installed by the app when `"django_otp"` is in `INSTALLED_APPS`; nothing to call. Every device model
(`TOTPDevice`, `HOTPDevice`, `StaticDevice` — recovery codes —, `EmailDevice`, and any device model of
another plugin or of the application) has its `verify_token` wrapped once, on the class that defines it,
so `OTPAuthenticationForm`, `OTPTokenForm`, `django_otp.verify_token()` and hand-written views are seen:

* `True`: `authn_mfa_challenge` success for the device's account, `evt.method` the device kind (`totp`,
  `hotp`, `static`, `email`, ...);
* `False`: its failure with `evt.reason` `mfa_failed` (a wrong code) or `throttled` (the device refused
  to check a code after too many failures); django-otp's own `otp_verification_failed` signal is
  connected too and writes the same event when a form sees the failure first. Once per request.

django-otp's forms ask the device whether it may verify at all before they call `verify_token`; their
refusal (`OTPAuthenticationFormMixin._verify_token` raising without a code) is the failure with
`evt.reason: throttled` too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from graffer_secevents.integrations._auth import record_auth
from graffer_secevents.integrations._common import never_raise

from ._wrap import wrap_method

__all__ = ["install"]

_WHERE: Final = "django-otp"


def install() -> None:
    """Wrap every device model's `verify_token` and connect `otp_verification_failed`. Idempotent."""
    from django.apps import apps
    from django_otp.forms import otp_verification_failed
    from django_otp.models import Device

    for model in apps.get_models():
        if issubclass(model, Device):
            owner = next(klass for klass in model.__mro__ if "verify_token" in klass.__dict__)
            wrap_method(owner, "verify_token", _verify_token)
    otp_verification_failed.connect(_on_failed, dispatch_uid="graffer_secevents.otp.failed")
    from django_otp.forms import OTPAuthenticationFormMixin

    wrap_method(OTPAuthenticationFormMixin, "_verify_token", _form_verify)


def _method(device: Any) -> str:
    name = type(device).__name__.lower()
    return name.removesuffix("device") or name


def _verify_token(original: Callable[..., Any]) -> Callable[..., Any]:
    def verify_token(self: Any, *args: Any, **kwargs: Any) -> Any:
        allowed = True
        if hasattr(self, "verify_is_allowed"):  # django-otp's throttling devices
            with never_raise(_WHERE):
                allowed = bool(self.verify_is_allowed()[0])
        verified = original(self, *args, **kwargs)
        with never_raise(_WHERE):
            params: dict[str, Any] = {"method": _method(self)}
            if not verified:
                params["reason"] = "mfa_failed" if allowed else "throttled"
            outcome = "success" if verified else "failure"
            user = getattr(self, "user_id", None)
            record_auth("authn_mfa_challenge", where=_WHERE, user=user, outcome=outcome, params=params)
        return verified

    return verify_token


def _on_failed(sender: Any, user: Any = None, **_kwargs: Any) -> None:
    params = {"reason": "mfa_failed"}
    record_auth("authn_mfa_challenge", where=_WHERE, user=user, outcome="failure", params=params)


def _form_verify(original: Callable[..., Any]) -> Callable[..., Any]:
    def _verify_token(self: Any, user: Any, token: Any, device: Any = None) -> Any:
        from django.core.exceptions import ValidationError

        try:
            return original(self, user, token, device)
        except ValidationError as exc:
            if device is not None and getattr(exc, "code", None) not in ("invalid_token", "device_required"):
                # The device refused to verify any code (too many failures): no verify_token call was made.
                params = {"method": _method(device), "reason": "throttled"}
                user_id = getattr(user, "pk", None)
                record_auth(
                    "authn_mfa_challenge", where=_WHERE, user=user_id, outcome="failure", params=params
                )
            raise

    return _verify_token
