"""python-social-auth (`social_django`): a login its backend refuses with an exception.

Installed by the app `graffer_secevents.integrations.django` when `"social_django"` is in
`INSTALLED_APPS`. A social login that succeeds calls Django's `login()` (recorded by Django's signal); one
whose inactive account social-auth refuses is the SSO callback rule's (`integrations/_sso.py`). A refusal
is an exception raised by the backend's `complete()` — a forged or missing state, a code the provider
refuses, a cancelled consent, a domain or e-mail the pipeline does not allow —, which
`SocialAuthExceptionMiddleware` (the setup social-auth documents) turns into a redirect: no status, no
signal and no query parameter tells a shared layer about it, hence this adapter. `BaseAuth.complete` (every
backend's, whatever the framework) is wrapped once: a `social_core.exceptions.AuthException` leaving it is
one `authn_login_fail` for the request, `evt.reason` by the exception's family:

* `AuthCanceled` (the user or the provider declined), `AuthPolicyError` (`AuthForbidden`: the pipeline's
  whitelists), `AuthAssociationError` (the identity belongs to another account): `not_allowed`;
* any other `AuthException` (state, session, the provider's answer or token refused): `invalid_token`.

The exception is re-raised unchanged; its message and details are never read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graffer_secevents.integrations._auth import record_bad_credential
from graffer_secevents.integrations._sso import REASON_INVALID, REASON_REFUSED

from ._wrap import wrap_method

__all__ = ["install"]


def install() -> None:
    """Wrap `BaseAuth.complete`. Idempotent; called by the app."""
    from social_core.backends.base import BaseAuth

    wrap_method(BaseAuth, "complete", _complete)


def _complete(original: Callable[..., Any]) -> Callable[..., Any]:
    def complete(self: Any, *args: Any, **kwargs: Any) -> Any:
        from social_core import exceptions

        try:
            return original(self, *args, **kwargs)
        except exceptions.AuthException as exc:
            reason = REASON_REFUSED if isinstance(exc, _refusals(exceptions)) else REASON_INVALID
            record_bad_credential("python-social-auth's complete()", reason=reason)
            raise

    return complete


# social-core 6 names the families; older releases only the concrete classes.
_REFUSALS = (
    "AuthCanceled",
    "AuthPolicyError",
    "AuthAssociationError",
    "AuthForbidden",
    "AuthAlreadyAssociated",
)


def _refusals(exceptions: Any) -> tuple[type, ...]:
    found = (getattr(exceptions, name, None) for name in _REFUSALS)
    return tuple(klass for klass in found if isinstance(klass, type))
