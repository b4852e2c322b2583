"""django-oauth-toolkit (`oauth2_provider`): tokens issued and refused, and bad bearer tokens.

Installed by the app when `"oauth2_provider"` is in `INSTALLED_APPS`; nothing to call. The token
endpoint's password grant checks the password with Django's `authenticate()`, so a wrong one is already
Django's `user_login_failed` (one `authn_login_fail` with the account). What only the toolkit sees comes
from its `app_authorized` signal and from its validator (`OAUTH2_VALIDATOR_CLASS`, wrapped once on the
class that defines each method, so a project's subclass is covered):

* `app_authorized` (a token issued): `authn_login_success` with the account for the password grant;
  a machine login for client credentials (`usr.id` `oauth2_client:<client_id>`, the same id its
  refusals carry); `authn_token_created` with the account for the other grants (authorization code,
  device code); a refresh is no event;
* `authenticate_client` refusing (a wrong client secret, an unknown client): `authn_login_fail` with
  `evt.reason: invalid_client`, `usr.id` `oauth2_client:<client_id>` and `usr.exists`;
* `validate_code` refusing an authorization code: `authn_login_fail` with `evt.reason: invalid_grant`;
* `validate_refresh_token` refusing: a refresh token that was revoked (rotated or repudiated) used again is
  `authn_token_reuse` with its account and the (hashed) token family; an unknown or expired one is
  `authn_login_fail` with `evt.reason: invalid_token`;
* `validate_bearer_token` refusing a presented access token (`ProtectedResourceView`, DRF's
  `OAuth2Authentication`, the toolkit's decorators and middleware): `authn_login_fail` with
  `evt.reason: invalid_token` — or `account_disabled` — and the token's account when the token exists,
  never the `authz_fail` that the toolkit's 403 would otherwise give.

No raw token, secret or code is written: tokens are looked up by the toolkit's own checksum.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Final

from graffer_secevents.integrations._auth import account, record_auth, record_bad_credential
from graffer_secevents.integrations._common import never_raise

from ._wrap import wrap_method

__all__ = ["install"]

_WHERE: Final = "django-oauth-toolkit"


def install() -> None:
    """Connect `app_authorized` and wrap the configured validator. Idempotent; called by the app."""
    from oauth2_provider.settings import oauth2_settings
    from oauth2_provider.signals import app_authorized

    app_authorized.connect(_on_authorized, dispatch_uid="graffer_secevents.oauth_toolkit.authorized")
    validator: type = oauth2_settings.OAUTH2_VALIDATOR_CLASS  # pyright: ignore[reportAssignmentType]
    for name, make in (
        ("authenticate_client", _client),
        ("validate_code", _code),
        ("validate_refresh_token", _refresh),
        ("validate_bearer_token", _bearer),
    ):
        owner = next(klass for klass in validator.__mro__ if name in klass.__dict__)
        wrap_method(owner, name, make)


def _client_account(client_id: object) -> Any:
    return account(f"oauth2_client:{client_id}") if isinstance(client_id, str) and client_id else None


def _checksum(raw: object) -> str | None:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest() if isinstance(raw, str) and raw else None


def _on_authorized(sender: Any, request: Any = None, token: Any = None, **_kwargs: Any) -> None:
    from .middleware import request_bound

    with request_bound(request), never_raise(_WHERE):
        grant = request.POST.get("grant_type") if request is not None else None
        if grant == "refresh_token" or token is None:
            return
        if grant == "password":
            record_auth("authn_login_success", where=_WHERE, user=token.user_id, outcome="success")
        elif grant == "client_credentials":
            user = _client_account(getattr(token.application, "client_id", None))
            record_auth("authn_login_success", where=_WHERE, user=user, outcome="success")
        elif token.user_id is not None:
            record_auth(
                "authn_token_created", where=_WHERE, user=token.user_id, params={"token_id": token.pk}
            )


def _client(original: Callable[..., Any]) -> Callable[..., Any]:
    def authenticate_client(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        authenticated = original(self, request, *args, **kwargs)
        if not authenticated:
            with never_raise(_WHERE):
                client = getattr(request, "client", None)
                client_id = getattr(client, "client_id", None) or getattr(request, "client_id", None)
                user = _client_account(client_id)
                exists = client is not None if client_id else None
                params = {"reason": "invalid_client"}
                record_auth(
                    "authn_login_fail",
                    where=_WHERE,
                    user=user,
                    outcome="failure",
                    exists=exists,
                    params=params,
                )
        return authenticated

    return authenticate_client


def _code(original: Callable[..., Any]) -> Callable[..., Any]:
    def validate_code(
        self: Any, client_id: Any, code: Any, client: Any, request: Any, *args: Any, **kw: Any
    ) -> Any:
        valid = original(self, client_id, code, client, request, *args, **kw)
        if not valid:
            record_bad_credential(_WHERE, reason="invalid_grant")
        return valid

    return validate_code


def _refresh(original: Callable[..., Any]) -> Callable[..., Any]:
    def validate_refresh_token(self: Any, refresh_token: Any, *args: Any, **kwargs: Any) -> Any:
        valid = original(self, refresh_token, *args, **kwargs)
        if not valid:
            with never_raise(_WHERE):
                _refresh_refused(refresh_token)
        return valid

    return validate_refresh_token


def _refresh_refused(raw: object) -> None:
    from oauth2_provider.models import get_refresh_token_model

    checksum = _checksum(raw)
    model = get_refresh_token_model()
    found = model._default_manager.filter(token_checksum=checksum).order_by("-revoked") if checksum else None
    token = found.first() if found is not None else None
    if token is not None and token.revoked is not None:
        family = getattr(token, "token_family", None) or token.pk
        record_auth("authn_token_reuse", where=_WHERE, user=token.user_id, params={"token_id": str(family)})
    else:
        record_bad_credential(_WHERE, user=token.user_id if token is not None else None)


def _bearer(original: Callable[..., Any]) -> Callable[..., Any]:
    def validate_bearer_token(self: Any, token: Any, scopes: Any, request: Any) -> Any:
        valid = original(self, token, scopes, request)
        if not valid and token:
            with never_raise(_WHERE):
                _bearer_refused(token)
        return valid

    return validate_bearer_token


def _bearer_refused(raw: object) -> None:
    from oauth2_provider.models import get_access_token_model

    checksum = _checksum(raw)
    model = get_access_token_model()
    found = (
        model._default_manager.select_related("user").filter(token_checksum=checksum) if checksum else None
    )
    token = found.first() if found is not None else None
    user = getattr(token, "user", None)
    disabled = user is not None and getattr(user, "is_active", True) is False
    reason = "account_disabled" if disabled else "invalid_token"
    record_auth(
        "authn_login_fail",
        where=_WHERE,
        user=getattr(user, "pk", None),
        outcome="failure",
        exists=True if user is not None else None,
        params={"reason": reason},
    )
