"""fastapi-users: its logins, failures, signups, resets, logouts and refused tokens as events.

Two lines in the application, beside the ASGI middleware: the user manager takes the mixin (first, before
`BaseUserManager`), and the authentication backend is ours (same arguments)::

    from graffer_secevents.integrations.fastapi_users import (
        SecurityEventsAuthenticationBackend,
        SecurityEventsUserManagerMixin,
    )

    class UserManager(SecurityEventsUserManagerMixin, UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
        ...                                    # your on_after_* hooks stay as they are

    auth_backend = SecurityEventsAuthenticationBackend("jwt", transport=bearer, get_strategy=get_jwt_strategy)

What is recorded, each once per request, with `usr.id` the user's `id` (its UUID) for successes and
failures alike:

* `POST /login` → `authn_login_success` (the backend's `login`; with a plain backend, the mixin's
  `on_after_login`, if an override of it calls `super()`), or `authn_login_fail` with `usr.exists`
  and `evt.reason` `unknown_user`, `invalid_credentials`, `account_disabled` or `unverified` (a user
  not yet verified, refused by an auth router built with `requires_verification=True`) (the manager's
  `authenticate`; the password is passed on, never read);
* `POST /logout` → `session_logout`;
* `POST /register` → `user_signup` (`create` called with the request);
* `POST /forgot-password` → `authn_password_reset_request` with `usr.exists`: true for a known account
  (also an inactive one, which fastapi-users silently skips), false for an unknown e-mail (which its router
  swallows: seen in `get_by_email` on that route);
* `POST /reset-password` → `authn_password_reset`, or its failure with `evt.reason` `invalid_token`,
  `expired_token`, `account_disabled` or `password_policy`;
* a request whose bearer token or cookie does not authenticate (forged, expired or unknown JWT, an unknown
  database token) → `authn_login_fail` with `evt.reason: invalid_token`; an inactive user's token →
  `evt.reason: account_disabled`; no second event from the 401 status rule;
* a user the backend authenticated is bound to the request, so a 403 from `current_user(superuser=True)`
  (the default status rule) is an `authz_fail` with that user, not an anonymous one.

* `PATCH /users/{id}` (a superuser acting on another account; also `manager.update()` from a script) →
  `authz_change` for `is_superuser` (`evt.from_role`/`evt.to_role` `superuser`/`user`, `evt.granted`/
  `evt.revoked`), `user_enabled`/`user_disabled` for `is_active`, `user_updated` with `evt.attributes` (the
  names, never the values) for `email`/`is_verified` changed by someone else, `authn_password_change` for a
  new password (the hashes are compared, never written); the actor is the token's user, the account the
  `target.usr`; a change of nothing writes nothing; `DELETE /users/{id}` → `user_deleted`.

fastapi-users has no refresh tokens, lockout or second factor, so there is nothing to record for those.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Final, Generic, TypeVar

from graffer_secevents._errors import MissingDependencyError

try:
    from fastapi_users import BaseUserManager, exceptions, models
    from fastapi_users.authentication import AuthenticationBackend
except ImportError:
    raise MissingDependencyError("fastapi-users", "fastapi-users") from None

import jwt
from fastapi import Response
from fastapi.security import OAuth2PasswordRequestForm
from fastapi_users.jwt import decode_jwt

from graffer_secevents._context import current_request, current_user, set_user
from graffer_secevents._pipeline import emit_event
from graffer_secevents._types import User

from ._auth import record_auth, record_bad_credential, record_reset_refused
from ._common import never_raise
from .asgi import AsgiRequestContext

__all__ = ["SecurityEventsAuthenticationBackend", "SecurityEventsUserManagerMixin"]

# fastapi-users' own `models.UP` is bound to a bare `UserProtocol` (its id type left open); these are the
# same variables with the bound spelled out, so a user passed on is of a known type.
_UP = TypeVar("_UP", bound="models.UserProtocol[Any]")
_ID = TypeVar("_ID")

_WHERE: Final = "fastapi-users' event"
_FORGOT_PASSWORD_ROUTE: Final = "reset:forgot_password"  # noqa: S105 - a route name, not a secret
_REQUIRES_VERIFICATION: Final = "requires_verification"  # the auth router's option, as `login` names it


class SecurityEventsUserManagerMixin(BaseUserManager[_UP, _ID]):
    """Records what a fastapi-users `UserManager` decides: put it first among the manager's bases.

    Your own `on_after_*` hooks need not call `super()`: the events are recorded around the operations
    (`authenticate`, `create`, `forgot_password`, `reset_password`), not in the hooks.

    Example:
        ```python
        class UserManager(SecurityEventsUserManagerMixin, UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
            reset_password_token_secret = SECRET
            verification_token_secret = SECRET
        ```
    """

    async def authenticate(self, credentials: OAuth2PasswordRequestForm) -> _UP | None:
        user = await super().authenticate(credentials)
        login = credentials.username
        if user is None:
            try:
                known: Any = await self.get_by_email(login)
            except exceptions.UserNotExists:
                _login_failed(None, "unknown_user", login)
            else:
                _login_failed(known, "invalid_credentials", login)
        elif not user.is_active:  # the login route refuses it next
            _login_failed(user, "account_disabled", login)
        elif not getattr(user, "is_verified", True) and _login_requires_verification():
            _login_failed(user, "unverified", login)  # the login route refuses it next
        return user

    async def on_after_login(self, user: _UP, request: Any = None, response: Response | None = None) -> None:
        record_auth("authn_login_success", where=_WHERE, user=user, outcome="success")
        await super().on_after_login(user, request, response)

    async def create(self, user_create: Any, safe: bool = False, request: Any = None) -> _UP:
        user = await super().create(user_create, safe, request)
        if request is not None:  # the register route; a script or an admin creating users passes none
            record_auth("user_signup", where=_WHERE, user=user)
        return user

    async def update(self, user_update: Any, user: _UP, safe: bool = False, request: Any = None) -> _UP:
        before = _watched(user)
        updated = await super().update(user_update, user, safe, request)
        _record_changes(before, updated)
        return updated

    async def delete(self, user: _UP, request: Any = None) -> None:
        target = _target(user)  # read before the row goes
        await super().delete(user, request)
        _emit_changes([("user_deleted", {})], target)

    async def get_by_email(self, user_email: str) -> _UP:
        try:
            return await super().get_by_email(user_email)
        except exceptions.UserNotExists:
            if _route_name() == _FORGOT_PASSWORD_ROUTE:  # the router answers 202 and says nothing
                record_auth("authn_password_reset_request", where=_WHERE, login=user_email, exists=False)
            raise

    async def forgot_password(self, user: _UP, request: Any = None) -> None:
        try:
            await super().forgot_password(user, request)
        finally:
            record_auth("authn_password_reset_request", where=_WHERE, user=user, exists=True)

    async def reset_password(self, token: str, password: str, request: Any = None) -> _UP:
        try:
            user = await super().reset_password(token, password, request)
        except (exceptions.InvalidResetPasswordToken, exceptions.UserNotExists):
            await self._reset_failed(token, None)
            raise
        except exceptions.UserInactive:
            await self._reset_failed(token, "account_disabled")
            raise
        except exceptions.InvalidPasswordException:
            await self._reset_failed(token, "password_policy")
            raise
        record_auth("authn_password_reset", where=_WHERE, user=user, outcome="success", exists=True)
        return user

    async def _reset_failed(self, token: str, reason: str | None) -> None:
        """Record a refused reset: the account the token names when its signature holds (expired or not)."""
        user: Any = None
        expired = False
        try:
            try:
                audience = [self.reset_password_token_audience]
                data = decode_jwt(token, self.reset_password_token_secret, audience)
            except jwt.ExpiredSignatureError:
                expired = True
                data = jwt.decode(
                    token,
                    _secret(self.reset_password_token_secret),
                    audience=[self.reset_password_token_audience],
                    algorithms=["HS256"],
                    options={"verify_exp": False},
                )
            user = await super().get(self.parse_id(data["sub"]))
        except Exception:  # noqa: BLE001, S110 - a forged or garbage token names no account
            pass
        if reason is None:
            reason = "expired_token" if expired else "invalid_token"
        record_reset_refused(_WHERE, reason=reason, user=user)


class SecurityEventsAuthenticationBackend(AuthenticationBackend[_UP, _ID]):
    """fastapi-users' `AuthenticationBackend`, recording logins and logouts and watching its tokens.

    Every token the backend reads on a request is checked: a user is bound to the request (so a later 403 is
    recorded with that user); a token that authenticates nobody is one `authn_login_fail`
    (`evt.reason: invalid_token`) and the 401 that follows writes no second event.

    Args:
        name: the backend's name, as for `AuthenticationBackend`.
        transport: the transport (`BearerTransport`, `CookieTransport`).
        get_strategy: the strategy dependency (`JWTStrategy`, `DatabaseStrategy`, `RedisStrategy`).

    Example:
        ```python
        auth_backend = SecurityEventsAuthenticationBackend(
            "jwt", transport=BearerTransport(tokenUrl="auth/jwt/login"), get_strategy=get_jwt_strategy
        )
        ```
    """

    def __init__(self, name: str, transport: Any, get_strategy: Any) -> None:
        super().__init__(name, transport, _observed(get_strategy))

    async def login(self, strategy: Any, user: _UP) -> Response:
        response = await super().login(strategy, user)
        record_auth("authn_login_success", where=_WHERE, user=user, outcome="success")
        return response

    async def logout(self, strategy: Any, user: _UP, token: str) -> Response:
        response = await super().logout(strategy, user, token)
        record_auth("session_logout", where=_WHERE, user=user)
        return response


class _ObservedStrategy(Generic[_UP, _ID]):
    """A strategy whose `read_token` reports what it found; everything else is the strategy's own."""

    def __init__(self, strategy: Any) -> None:
        self._strategy = strategy

    def __getattr__(self, name: str) -> Any:
        return getattr(self._strategy, name)

    async def read_token(self, token: str | None, user_manager: Any) -> _UP | None:
        user: _UP | None = await self._strategy.read_token(token, user_manager)
        if user is not None:
            if getattr(user, "is_active", True) is False:
                record_bad_credential(_WHERE, reason="account_disabled", user=user)
            else:
                set_user(user)
        elif token is not None:
            record_bad_credential(_WHERE, reason="invalid_token")
        return user


def _observed(get_strategy: Any) -> Any:
    """`get_strategy` returning an `_ObservedStrategy`; FastAPI still sees the original signature
    (`functools.wraps` sets `__wrapped__`, which `inspect.signature` follows)."""
    if inspect.iscoroutinefunction(get_strategy):

        @functools.wraps(get_strategy)
        async def observed_async(*args: Any, **kwargs: Any) -> _ObservedStrategy[Any, Any]:
            return _ObservedStrategy(await get_strategy(*args, **kwargs))

        return observed_async

    @functools.wraps(get_strategy)
    def observed(*args: Any, **kwargs: Any) -> _ObservedStrategy[Any, Any]:
        return _ObservedStrategy(get_strategy(*args, **kwargs))

    return observed


_FLAGS: Final = ("is_superuser", "is_active", "email", "is_verified")
_PASSWORD_FIELD: Final = "hashed_password"  # noqa: S105 - a column name; its value is compared, never written


def _watched(user: Any) -> dict[str, Any]:
    """The fields whose change is an event, as the user object holds them now (it is updated in place)."""
    values = {name: getattr(user, name, None) for name in _FLAGS}
    values[_PASSWORD_FIELD] = getattr(user, _PASSWORD_FIELD, None)
    return values


def _record_changes(before: dict[str, Any], user: Any) -> None:
    """The events of one account's update, from the values before and after (same keys)."""
    with never_raise(_WHERE):
        after = _watched(user)
        changed = [name for name, old in before.items() if old != after[name]]
        if not changed:
            return
        actor = current_user()
        by_self = actor is not None and getattr(actor, "id", None) == getattr(user, "id", None)
        emits: list[tuple[str, dict[str, Any]]] = []
        if "is_superuser" in changed:
            granted = after["is_superuser"] is True
            roles = ("user", "superuser") if granted else ("superuser", "user")
            key = "granted" if granted else "revoked"
            emits.append(("authz_change", {"from_role": roles[0], "to_role": roles[1], key: ["superuser"]}))
        if "is_active" in changed:
            emits.append(("user_enabled" if after["is_active"] is True else "user_disabled", {}))
        profile = [name for name in ("email", "is_verified") if name in changed]
        if profile and not by_self:  # a user editing their own profile is not an administrative event
            emits.append(("user_updated", {"attributes": profile}))
        if _PASSWORD_FIELD in changed:
            emits.append(("authn_password_change", {"outcome": "success"}))
        _emit_changes(emits, None if by_self else _target(user), user if by_self else None)


def _target(user: Any) -> User:
    """The account acted upon, read now: its id and e-mail (privacy rules apply as to every `usr`)."""
    email = getattr(user, "email", None)
    return User(id=getattr(user, "id", None), email=email if isinstance(email, str) else None)


def _emit_changes(emits: list[tuple[str, dict[str, Any]]], target: Any, user: Any = None) -> None:
    for evt_type, params in emits:
        with never_raise(_WHERE):
            outcome = params.pop("outcome", None)
            emit_event(evt_type, user=user, target_user=target, outcome=outcome, params=params or None)


def _login_failed(user: Any, reason: str, login: str) -> None:
    record_auth(
        "authn_login_fail",
        where=_WHERE,
        user=user,
        login=login,
        exists=user is not None,
        params={"reason": reason},
    )


def _route_name() -> str | None:
    """The name of the route being served (fastapi-users names its routes), from the bound ASGI context."""
    ctx = current_request()
    if not isinstance(ctx, AsgiRequestContext):
        return None
    name = getattr(ctx.scope.get("route"), "name", None)
    return name if isinstance(name, str) else None


def _login_requires_verification() -> bool:
    """Whether the auth router serving this request refuses unverified users (`get_auth_router(backend,
    requires_verification=True)`): the router decides it after `authenticate`, from the value its `login`
    route closes over. `False` when that cannot be read (another route, another fastapi-users release)."""
    ctx = current_request()
    if not isinstance(ctx, AsgiRequestContext):
        return False
    route = ctx.scope.get("route")
    name = getattr(route, "name", None)
    if not (isinstance(name, str) and name.startswith("auth:") and name.endswith(".login")):
        return False
    endpoint = getattr(route, "endpoint", None)
    code = getattr(endpoint, "__code__", None)
    closure = getattr(endpoint, "__closure__", None)
    names: tuple[str, ...] = getattr(code, "co_freevars", ())
    if closure is None or _REQUIRES_VERIFICATION not in names:
        return False
    cells: tuple[Any, ...] = closure
    return cells[names.index(_REQUIRES_VERIFICATION)].cell_contents is True


def _secret(secret: Any) -> str:
    value = secret.get_secret_value() if hasattr(secret, "get_secret_value") else secret
    return str(value)
