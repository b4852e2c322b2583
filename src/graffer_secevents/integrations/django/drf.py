"""Django REST framework, its token auth and simplejwt: every login path and every bad credential, once.

Installed by the app `graffer_secevents.integrations.django` when `"rest_framework"` is in
`INSTALLED_APPS` (simplejwt's part when `rest_framework_simplejwt` can be imported); nothing to call.

**The seams every DRF authentication class passes through** (not a list of classes):

* `Request._authenticate`, DRF's authentication loop: any authentication class that refuses a credential
  (`AuthenticationFailed`: an unknown, expired, forged or revoked token, a malformed header) is one
  `authn_login_fail` with `evt.reason: invalid_token`, or `account_disabled` when the account the
  credential named may not log in (simplejwt's `user_inactive` code, or an inactive account loaded while
  the class checked the credential). The account is the user-model row the class loaded while it checked
  the credential, when there was exactly one, so a valid token of a disabled account carries its pk.
  A class that refuses with `PermissionDenied` (`SessionAuthentication`'s CSRF check) is `authz_fail`
  with the session's user. A class that verified a password through Django's `authenticate()` (DRF's
  `BasicAuthentication`, any class doing the same) is an `authn_login_success` per request; a wrong
  password there is Django's `user_login_failed` (the app's receiver), once.
* `APIView.permission_denied` (a `permission_classes` refusal of an authenticated request): `authz_fail`
  with the user DRF authenticated and `evt.resource`, whatever status the exception handler answers.

Per-stack adapters, only where no seam sees the flow (token-obtain endpoints send no signal on success):

* simplejwt's `TokenObtainSerializer.validate` (pair and sliding obtain views) and DRF's
  `AuthTokenSerializer.validate` (`obtain_auth_token`): `authn_login_success` with the account; a
  refusal is one `authn_login_fail` (from Django's `user_login_failed`, or here for an account the
  backend returned but the view refuses);
* simplejwt's refresh serializers: a blacklisted (rotated) refresh token used again is
  `authn_token_reuse`; a garbage or expired one is the bad-credential event above;
* simplejwt's `TokenBlacklistSerializer.validate` (logout): `session_logout` with the token's account
  and its `jti` as the (hashed) `session_id`;
* DRF's `Token` (`rest_framework.authtoken`) deleted during a request by its own account (dj-rest-auth's
  logout without `SESSION_LOGIN`): `session_logout` with the (hashed) key as `session_id`, once;
* `APIView.throttled` on a token-obtain view (a throttle refusing a login before the password is checked):
  `authn_login_fail_max` with the login and, for a known account, its pk; no 429 event besides.

Every failure above marks the request, so the 401/403 status rule writes no second event for it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Final

from graffer_secevents._context import current_request
from graffer_secevents.integrations._auth import record_auth, record_bad_credential
from graffer_secevents.integrations._common import LazyRequestContext, never_raise

from ._accounts import pk_of, record_login_failure, record_login_refused
from ._wrap import wrap_method

__all__ = ["install"]

# The user-model rows loaded while DRF's authentication loop runs (the model's `from_db`), so a refused
# credential can name the account it belonged to; `None` outside the loop (nothing is noted then).
_LOADED: Final[ContextVar[list[Any] | None]] = ContextVar("secevents_drf_loaded_users", default=None)
_WATCHING: Final = "_secevents_watching_loaded_users"
_NOTHING: Final[dict[str, Any]] = {}


def install() -> None:
    """Hook DRF's authentication loop and permission check (and, when importable, simplejwt's endpoints).
    Idempotent; called by the app."""
    from django.apps import apps
    from django.contrib.auth import get_user_model
    from rest_framework.request import Request
    from rest_framework.views import APIView

    wrap_method(Request, "_authenticate", _authentication_loop)
    wrap_method(APIView, "permission_denied", _permission_denied)
    wrap_method(APIView, "throttled", _throttled)
    _watch_loaded_users(get_user_model())
    if apps.is_installed("rest_framework.authtoken"):
        from rest_framework.authtoken.serializers import AuthTokenSerializer

        wrap_method(AuthTokenSerializer, "validate", _auth_token_obtain)
        from django.db.models.signals import post_delete
        from rest_framework.authtoken.models import Token

        post_delete.connect(_token_deleted, sender=Token, dispatch_uid="graffer_secevents.drf_token_deleted")
    if importlib.util.find_spec("rest_framework_simplejwt") is not None:
        _install_simplejwt()


def _install_simplejwt() -> None:
    from rest_framework_simplejwt import serializers

    wrap_method(serializers.TokenObtainSerializer, "validate", _jwt_obtain)
    wrap_method(serializers.TokenRefreshSerializer, "validate", _jwt_refresh("refresh"))
    wrap_method(serializers.TokenRefreshSlidingSerializer, "validate", _jwt_refresh("token"))
    wrap_method(serializers.TokenBlacklistSerializer, "validate", _jwt_blacklist)


def _failed(exc: BaseException) -> bool:
    from rest_framework.exceptions import AuthenticationFailed

    return isinstance(exc, AuthenticationFailed)


# --- the authentication loop and the permission check -------------------------------------------------------


def _watch_loaded_users(model: Any) -> None:
    """Have the user model's `from_db` (every row Django loads, `select_related` ones included) note the
    accounts loaded while the authentication loop runs: one context-variable read per row loaded, where a
    `post_init` receiver would cost a signal dispatch for every instance the application creates."""
    current = model.__dict__.get("from_db")
    if getattr(getattr(current, "__func__", None), _WATCHING, False):
        return
    load = model.from_db.__func__

    def from_db(cls: Any, db: Any, field_names: Any, values: Any) -> Any:
        instance = load(cls, db, field_names, values)
        loaded = _LOADED.get()
        if loaded is not None:
            loaded.append(instance)
        return instance

    setattr(from_db, _WATCHING, True)
    model.from_db = classmethod(from_db)


def _authentication_loop(original: Callable[..., Any]) -> Callable[..., Any]:
    def _authenticate(self: Any) -> Any:
        loaded: list[Any] = []
        token = _LOADED.set(loaded)
        # The session's (lazy) user, kept before a refusal makes DRF replace it with an anonymous one.
        session_user = getattr(getattr(self, "_request", None), "__dict__", _NOTHING).get("user")
        try:
            result = original(self)
        except Exception as exc:
            _LOADED.reset(token)
            _refused(self, exc, loaded, session_user)
            raise
        _LOADED.reset(token)
        user = self.__dict__.get("_user")
        if user is not None and "backend" in getattr(user, "__dict__", _NOTHING):
            # Django's authenticate() annotates the user it returns with `backend`: a password (or another
            # credential a backend checks) was verified for this request, a per-request login.
            with never_raise("DRF's authentication loop"):
                where = f"DRF's {type(self._authenticator).__name__}"
                record_auth("authn_login_success", where=where, user=user, outcome="success")
        return result

    return _authenticate


def _refused(request: Any, exc: BaseException, loaded: list[Any], session_user: Any) -> None:
    from rest_framework.exceptions import PermissionDenied

    with never_raise("DRF's authentication loop"):
        ctx = current_request()
        if isinstance(ctx, LazyRequestContext) and ctx.denial_recorded:
            # Already recorded: a wrong password (Django's user_login_failed), or a backend's refusal
            # before the password was checked (authn_login_fail_max).
            return
        if _failed(exc):
            accounts = {user.pk: user for user in loaded if getattr(user, "pk", None) is not None}
            named = next(iter(accounts.values())) if len(accounts) == 1 else None
            disabled = "user_inactive" in _codes(exc) or getattr(named, "is_active", True) is False
            reason = "account_disabled" if disabled else "invalid_token"
            record_auth(
                "authn_login_fail",
                where="DRF's authentication loop",
                user=named.pk if named is not None else None,
                outcome="failure",
                exists=True if named is not None else None,
                params={"reason": reason},
            )
        elif isinstance(exc, PermissionDenied):
            # SessionAuthentication's CSRF check: the session's user.
            _authz_fail("DRF's authentication loop", request, session_user)


def _token_deleted(sender: Any, instance: Any = None, **_kwargs: Any) -> None:
    """A DRF token deleted by its own account, during a request: that account's logout (dj-rest-auth's
    `LogoutView` without `SESSION_LOGIN`, a logout view of your own); sends no `user_logged_out`."""
    where = "DRF's Token deleted"
    with never_raise(where):
        ctx = current_request()
        user = ctx.user if isinstance(ctx, LazyRequestContext) else None
        owner = getattr(instance, "user_id", None)
        if owner is None or getattr(user, "pk", None) != owner:  # an admin revoking someone's: no logout
            return
        record_auth(
            "session_logout", where=where, user=user, params={"session_id": getattr(instance, "key", None)}
        )


def _permission_denied(original: Callable[..., Any]) -> Callable[..., Any]:
    def permission_denied(self: Any, request: Any, message: Any = None, code: Any = None) -> Any:
        if not (request.authenticators and not request.successful_authenticator):  # else NotAuthenticated
            _authz_fail("DRF's permission check", request, request.user)
        return original(self, request, message, code)

    return permission_denied


def _authz_fail(where: str, request: Any, user: Any) -> None:
    with never_raise(where):
        path = getattr(request, "path", None)
        params = {"resource": path} if isinstance(path, str) else None
        record_auth("authz_fail", where=where, user=user, params=params)


def _codes(exc: Any) -> set[str]:
    """The codes of a DRF `AuthenticationFailed`; simplejwt's carry theirs as the `code` item of a dict
    detail (`{"detail": ..., "code": "user_inactive"}`)."""
    detail = getattr(exc, "detail", None)
    if isinstance(detail, dict):
        return {str(detail["code"])} if "code" in detail else set()
    code = getattr(detail, "code", None)
    return {code} if isinstance(code, str) else set()


# --- logins ------------------------------------------------------------------------------------------------


def _login_success(where: str, user: object) -> None:
    record_auth("authn_login_success", where=where, user=user, outcome="success")


def _jwt_obtain(original: Callable[..., Any]) -> Callable[..., Any]:
    def validate(self: Any, attrs: Any) -> Any:
        try:
            data = original(self, attrs)
        except Exception as exc:
            if _failed(exc):
                field = self.username_field
                login = attrs.get(field) if isinstance(attrs, dict) else None
                record_login_failure(login, where="simplejwt's token obtain view", keys=(field,))
            raise
        _login_success("simplejwt's token obtain view", self.user)
        return data

    return validate


def _auth_token_obtain(original: Callable[..., Any]) -> Callable[..., Any]:
    def validate(self: Any, attrs: Any) -> Any:
        from rest_framework.exceptions import ValidationError

        try:
            data = original(self, attrs)
        except ValidationError:
            # Missing fields never reach validate() (both are required), so this is a refused login.
            login = attrs.get("username") if isinstance(attrs, dict) else None
            record_login_failure(login, where="DRF's obtain_auth_token")
            raise
        _login_success("DRF's obtain_auth_token", data.get("user"))
        return data

    return validate


def _throttled(original: Callable[..., Any]) -> Callable[..., Any]:
    def throttled(self: Any, request: Any, wait: Any) -> Any:
        with never_raise("DRF's throttle on a token view"):
            field = _login_field(self)
            if field is not None:
                _login_throttled(request, field)
        return original(self, request, wait)

    return throttled


def _login_field(view: Any) -> str | None:
    """The login field of a token-obtain view (simplejwt's or `obtain_auth_token`), else `None`."""
    get = getattr(view, "get_serializer_class", None)
    serializer = get() if callable(get) else getattr(view, "serializer_class", None)
    if not isinstance(serializer, type):
        return None
    names = {klass.__module__ + "." + klass.__qualname__ for klass in serializer.__mro__}
    if "rest_framework_simplejwt.serializers.TokenObtainSerializer" in names:
        return str(getattr(serializer, "username_field", "username"))
    if "rest_framework.authtoken.serializers.AuthTokenSerializer" in names:
        return "username"
    return None


def _login_throttled(request: Any, field: str) -> None:
    try:
        data = request.data  # parsed by DRF; only the login field is read, never the password
    except Exception:  # noqa: BLE001 - a malformed body: the attempt is recorded without its login
        data = None
    login = data.get(field) if data is not None and hasattr(data, "get") else None
    login = login if isinstance(login, str) and login else None
    record_login_refused(login, where="DRF's throttle on a token view", keys=(field,))


# --- simplejwt refresh and blacklist -----------------------------------------------------------------------


def _jwt_refresh(key: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def validate(self: Any, attrs: Any) -> Any:
            try:
                return original(self, attrs)
            except Exception as exc:
                _token_refused(attrs, key, exc, "simplejwt's token refresh view")
                raise

        return validate

    return make


def _jwt_blacklist(original: Callable[..., Any]) -> Callable[..., Any]:
    def validate(self: Any, attrs: Any) -> Any:
        where = "simplejwt's token blacklist view"
        try:
            data = original(self, attrs)
        except Exception as exc:
            _token_refused(attrs, "refresh", exc, where)
            raise
        with never_raise(where):
            payload = _verified_payload(attrs.get("refresh"))
            if payload is not None:
                jti = payload.get(_jwt_setting("JTI_CLAIM"))
                record_auth(
                    "session_logout",
                    where=where,
                    user=_account_of(payload),
                    params={"session_id": jti} if jti else None,
                )
        return data

    return validate


def _token_refused(attrs: Any, key: str, exc: BaseException, where: str) -> None:
    """A refresh (or blacklist) request was refused: reuse of a revoked token, or a bad credential."""
    from rest_framework_simplejwt.exceptions import TokenError

    if not isinstance(exc, TokenError) and not _failed(exc):
        return
    with never_raise(where):
        raw = attrs.get(key) if isinstance(attrs, dict) else None
        payload = _verified_payload(raw)
        jti = payload.get(_jwt_setting("JTI_CLAIM")) if payload is not None else None
        if jti is not None and _blacklisted(jti):
            record_auth("authn_token_reuse", where=where, user=_account_of(payload), params={"token_id": jti})
        elif payload is not None and _failed(exc):  # a valid token of an account that may not log in
            record_bad_credential(where, reason="account_disabled", user=_account_of(payload))
        else:
            record_bad_credential(where)


def _verified_payload(raw: object) -> dict[str, Any] | None:
    """The claims of `raw` if its signature and expiry verify (blacklisting aside), else `None`."""
    if not isinstance(raw, str):
        return None
    from rest_framework_simplejwt.state import token_backend

    try:
        payload = token_backend.decode(raw, verify=True)  # type: ignore[arg-type]  # a str is what it decodes
    except Exception:  # noqa: BLE001 - forged, expired or garbage
        return None
    return payload if isinstance(payload, dict) else None


def _blacklisted(jti: object) -> bool:
    from django.apps import apps

    if not apps.is_installed("rest_framework_simplejwt.token_blacklist"):
        return False
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

    # `objects` is added by Django at run time, unseen by pyright; `_default_manager` is that same manager.
    return bool(BlacklistedToken._default_manager.filter(token__jti=jti).exists())


def _jwt_setting(name: str) -> Any:
    from rest_framework_simplejwt.settings import api_settings

    return getattr(api_settings, name)


def _account_of(payload: dict[str, Any] | None) -> Any:
    """The pk of the account a token names (its `USER_ID_CLAIM` looked up by `USER_ID_FIELD`)."""
    if payload is None:
        return None
    return pk_of(_jwt_setting("USER_ID_FIELD"), payload.get(_jwt_setting("USER_ID_CLAIM")))
