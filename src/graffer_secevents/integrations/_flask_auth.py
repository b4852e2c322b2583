"""Flask's hand-wired auth stacks: Flask-HTTPAuth and Flask-JWT-Extended, turned on by `SecurityEvents`.

Neither stack sends a signal, so each is hooked where its decision is made:

* **Flask-HTTPAuth**: the result of `verify_password` / `verify_token` (`HTTPBasicAuth.authenticate`,
  `HTTPTokenAuth.authenticate`, wrapped once per process). A Basic credential accepted is a
  per-request login (`authn_login_success` with the account the callback returned, as for DRF's Basic);
  refused, one `authn_login_fail` (`invalid_credentials`, the typed user name as `usr.login`). A token
  refused is one `authn_login_fail` (`invalid_token`); a token accepted writes nothing. No credential at
  all writes nothing here: the 401 that follows is the middleware's `authz_fail` (`unauthenticated`).
* **Flask-JWT-Extended**: a token issued to a request that presented none (the login route of its docs,
  `create_access_token`) is `authn_login_success` with the token's identity as the account; every token
  error its error handlers answer (garbage, forged, wrong type, expired, revoked, a user the
  `user_lookup_loader` no longer finds), seen in `app.handle_user_exception` before the handler runs:
  one `authn_login_fail` (`invalid_token`), with the token's identity as the
  account when the token's signature was verified (expired, revoked, unknown user), never when it was
  not. Any PyJWT error a view lets out is recorded the same way. A missing token is left to the 401 rule.

The user of a request (for a 403 and every other event) is read by `flask_user()`: Flask-Login's
`current_user`, Flask-HTTPAuth's `auth.current_user()`, Flask-JWT-Extended's `get_current_user()` or
identity, in that order.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Callable
from typing import Any, Final, cast

import flask

from graffer_secevents._types import User
from graffer_secevents._users import EmailIdentity

from ._auth import record_auth, record_bad_credential
from ._common import never_raise

__all__ = ["connect_httpauth", "connect_jwt_extended", "flask_user", "identity_user"]

_WRAPPED: Final = "_secevents_wrapped"
_EXTENSION_KEY: Final = "graffer_secevents"


def identity_user(identity: object) -> object:
    """An identity a stack stores (a JWT `sub`, a user name) as a user: an e-mail address under the e-mail
    privacy rule, anything else as the id."""
    if identity is None or identity == "":
        return None
    if isinstance(identity, str):
        return User(id=EmailIdentity(identity) if "@" in identity else identity)
    if isinstance(identity, int):
        return identity
    return identity


def flask_user() -> Any:
    """The user the request's auth stack authenticated, or `None` (see the module docstring)."""
    if not flask.has_request_context():
        return None
    flask_login = sys.modules.get("flask_login")
    if flask_login is not None and getattr(flask.current_app, "login_manager", None) is not None:
        # The real object, not the proxy; loading it (the user_loader) happens only when an event needs it.
        user = flask_login.current_user._get_current_object()
        if user is not None and getattr(user, "is_authenticated", False) is True:
            return user
    g = flask.g
    if "flask_httpauth" in sys.modules:
        found = g.get("flask_httpauth_user")
        if found is not None and found is not True and found is not False:
            return identity_user(found) if isinstance(found, str) else found
    if "flask_jwt_extended" in sys.modules:
        loaded: Any = getattr(g, "_jwt_extended_jwt_user", None)
        if isinstance(loaded, dict) and cast("dict[str, Any]", loaded).get("loaded_user") is not None:
            return cast("dict[str, Any]", loaded)["loaded_user"]
        data: Any = getattr(g, "_jwt_extended_jwt", None)
        if isinstance(data, dict) and data:
            return identity_user(cast("dict[str, Any]", data).get(_identity_claim()))
    return None


def _identity_claim() -> str:
    try:
        from flask_jwt_extended.config import config

        return str(config.identity_claim_key)
    except Exception:  # noqa: BLE001 - outside an app context, or an older release
        return "sub"


def _ours() -> bool:
    return flask.has_request_context() and _EXTENSION_KEY in flask.current_app.extensions


def _wrap(owner: type, name: str, make: Callable[[Any], Callable[..., Any]]) -> None:
    original = owner.__dict__[name]
    if getattr(original, _WRAPPED, False):
        return
    wrapper = functools.wraps(original)(make(original))
    setattr(wrapper, _WRAPPED, True)
    setattr(owner, name, wrapper)


# --- Flask-HTTPAuth -----------------------------------------------------------------------------------------


def connect_httpauth() -> None:
    """Wrap Flask-HTTPAuth's Basic and token checks (once per process)."""
    import flask_httpauth

    _wrap(flask_httpauth.HTTPBasicAuth, "authenticate", _basic)
    _wrap(flask_httpauth.HTTPTokenAuth, "authenticate", _token)


def _basic(original: Callable[..., Any]) -> Callable[..., Any]:
    def authenticate(self: Any, auth: Any, stored_password: Any) -> Any:
        result = original(self, auth, stored_password)
        if auth and _ours():
            with never_raise("Flask-HTTPAuth's Basic check"):
                login = getattr(auth, "username", None)
                login = login if isinstance(login, str) and login else None
                if result in (False, None):
                    record_auth(
                        "authn_login_fail",
                        where="Flask-HTTPAuth's Basic check",
                        outcome="failure",
                        login=login,
                        params={"reason": "invalid_credentials"},
                    )
                else:
                    user = identity_user(login) if result is True or isinstance(result, str) else result
                    record_auth(
                        "authn_login_success",
                        where="Flask-HTTPAuth's Basic check",
                        user=user,
                        outcome="success",
                        login=login,
                    )
        return result

    return authenticate


def _token(original: Callable[..., Any]) -> Callable[..., Any]:
    def authenticate(self: Any, auth: Any, stored_password: Any) -> Any:
        result = original(self, auth, stored_password)
        if result in (False, None) and getattr(auth, "token", None) and _ours():
            record_bad_credential("Flask-HTTPAuth's token check")
        return result

    return authenticate


# --- Flask-JWT-Extended -------------------------------------------------------------------------------------

# Errors raised after the token's signature was checked: the identity they carry is the account's.
_VERIFIED: Final = frozenset(
    {"ExpiredSignatureError", "RevokedTokenError", "UserLookupError", "UserClaimsVerificationError"}
)
# Not a bad credential: no token (the 401 rule says `unauthenticated`), a CSRF refusal, a non-fresh token.
_NOT_BAD: Final = frozenset({"NoAuthorizationError", "CSRFError", "FreshTokenRequired"})


def connect_jwt_extended(app: flask.Flask) -> None:
    """See Flask-JWT-Extended's (and any PyJWT) token errors before the app's error handlers answer them,
    and its tokens issued to a request that presented none (a login)."""
    if importlib.util.find_spec("flask_jwt_extended") is not None:
        from flask_jwt_extended import JWTManager

        _wrap(JWTManager, "_encode_jwt_from_config", _issued)
    original = app.handle_user_exception

    @functools.wraps(original)
    def handle_user_exception(e: Exception) -> Any:
        _token_error(e)
        return original(e)

    app.handle_user_exception = handle_user_exception  # type: ignore[method-assign]


def _issued(original: Callable[..., Any]) -> Callable[..., Any]:
    def encode(self: Any, identity: Any, token_type: str, *args: Any, **kwargs: Any) -> Any:
        token = original(self, identity, token_type, *args, **kwargs)
        if _ours() and not flask.g.get("_jwt_extended_jwt"):  # not a refresh: the request had no token
            with never_raise("Flask-JWT-Extended's token issue"):
                claim = self._user_identity_callback(identity)
                login = _posted_fields_login()
                record_auth(
                    "authn_login_success",
                    where="Flask-JWT-Extended's token issue",
                    user=identity_user(claim),
                    outcome="success",
                    login=login,
                )
        return token

    return encode


def _posted_fields_login() -> str | None:
    from ._common import login_from_fields

    request = flask.request
    found = login_from_fields(request.__dict__.get("form"))
    if found is None:
        found = login_from_fields(next((v for v in request._cached_json if v is not Ellipsis), None))
    return found or None


def _token_error(exc: BaseException) -> None:
    if not _is_token_error(exc):
        return
    with never_raise("Flask-JWT-Extended's token error"):
        name = type(exc).__name__
        if name in _NOT_BAD:
            return
        user = None
        if name in _VERIFIED:
            data: Any = getattr(exc, "jwt_data", None)
            if isinstance(data, dict):
                user = identity_user(cast("dict[str, Any]", data).get(_identity_claim()))
        record_bad_credential(f"Flask-JWT-Extended's {name}", user=user)


def _is_token_error(exc: BaseException) -> bool:
    for module in ("flask_jwt_extended.exceptions", "jwt.exceptions"):
        loaded = sys.modules.get(module)
        base = getattr(loaded, "JWTExtendedException" if module[0] == "f" else "PyJWTError", None)
        if isinstance(base, type) and isinstance(exc, base):
            return True
    return False
