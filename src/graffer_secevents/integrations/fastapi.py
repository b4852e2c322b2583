"""FastAPI: the ASGI middleware plus what FastAPI's own security tools need, with no event code in the app.

Example:
    ```python
    from fastapi import FastAPI
    from graffer_secevents.integrations.fastapi import SecurityEventsMiddleware

    app = FastAPI()
    app.add_middleware(SecurityEventsMiddleware, find_account=lambda username: get_user(db, username))
    ```

What it records by itself, on top of the ASGI middleware (`integrations/asgi.py`):

* **Login routes.** A route whose dependencies include `OAuth2PasswordRequestForm` (the token route of
  FastAPI's security tutorial), or a route named in `login_routes` (`{"/login": "email"}`: path →
  the body field holding the login), records its attempts from its own result: a 2xx is
  `authn_login_success`, a 400, 401 or 403 is `authn_login_fail`. The typed login is `usr.login`
  (hashed); the account is `find_account(login)` (sync or async; a user object, a
  `graffer_secevents.User` or an id, `None` for no such account), so a failure for an existing account
  carries its `usr.id` and `usr.exists: true` (`evt.reason: invalid_credentials`, or
  `account_disabled` when the account has `disabled=True` or `is_active=False`), one for an unknown
  account `usr.exists: false` (`unknown_user`). Without `find_account` the login is taken as the account
  key: a success is written with it as `usr.id`, a failure with the hashed login and no `usr.exists`.
  Only the login field of the body is read, never the password; the body is read as the application
  reads it (no second read), up to 64 KiB.
* **Password bodies.** A POST route whose body (a pydantic model or form fields) has a `password` and a
  `username`, `email` or `login` field may be a login or a signup: only its 401 is read, as a failed login
  for the typed login (account and `usr.exists` from `find_account`); declare it in `login_routes` to
  record its successes too.
* **Bad credentials.** A `fastapi.security` dependency, or any dependency, that answers 401 to a request
  carrying a credential (`Authorization`, or the header, query parameter or cookie of an `APIKeyHeader`,
  `APIKeyQuery` or `APIKeyCookie` the app uses) is
  `authn_login_fail` (`invalid_token`); a request without one is `authz_fail` (`unauthenticated`); the
  options of the ASGI middleware turn each part off.
* **Users.** A user object with only a `username` (the tutorial's pydantic `User`) is an identity: the
  user protocol of `docs/api.md` reads `pk`, `id`, `get_id()`, then `username`. Bind the authenticated
  user with `secevents.set_user(user)` in the dependency that resolves it, or keep it in
  `request.state.user`, so a 403 carries it.
"""

from __future__ import annotations

import email.parser
import email.policy
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, cast
from urllib.parse import parse_qsl

from graffer_secevents._errors import ConfigurationError, MissingDependencyError

try:
    # Fail early, with the install hint, when the extra is missing.
    import fastapi  # noqa: F401  # pyright: ignore[reportUnusedImport]
except ImportError:
    raise MissingDependencyError("fastapi", "fastapi") from None

from graffer_secevents._attempts import ATTEMPT_TYPES, recorded
from graffer_secevents._context import current_request, set_user

from ._auth import record_auth
from ._common import (
    LOGIN_FIELDS,
    LazyRequestContext,
    await_account_safely,
    find_account_safely,
    header_value,
    http_rules,
    never_raise,
)
from .asgi import (
    DEFAULT_STATUS_EVENTS,
    OPTIONAL_STATUS_EVENTS,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
)
from .asgi import SecurityEventsMiddleware as _AsgiMiddleware

__all__ = [
    "DEFAULT_STATUS_EVENTS",
    "OPTIONAL_STATUS_EVENTS",
    "SecurityEventsMiddleware",
    "current_request",
    "set_user",
]

MAX_LOGIN_BODY: Final = 64 * 1024
"""A login body longer than this is not read for its login (the attempt is still recorded)."""

FindAccount = Callable[[str], Any]


class SecurityEventsMiddleware(_AsgiMiddleware):
    """The ASGI `SecurityEventsMiddleware`, plus login routes and `APIKeyHeader` credentials (module doc).

    Args:
        app: the FastAPI application.
        find_account: `login -> account` (a user object, a `graffer_secevents.User`, an id, or `None`
            when no account has that login); sync or async. Called once per login attempt.
        login_routes: extra login routes, path (as declared) → the form or JSON field of the login, e.g.
            `{"/api/session": "email"}`; routes built on `OAuth2PasswordRequestForm` need no entry.
        status_events: per-status overrides merged over `DEFAULT_STATUS_EVENTS`.
        record_unauthenticated: a 401 without a credential is `authz_fail` (`unauthenticated`).
        record_invalid_credentials: a 401 with a credential is `authn_login_fail`.
        credential_headers: the headers that carry a credential (default `("Authorization",)`; the
            app's `APIKeyHeader` headers are added by themselves), and `"cookie:<name>"` /
            `"query:<name>"` for a token a dependency reads itself (fastapi-login's `use_cookie`).
        credential_statuses: the statuses split by credential (default `(401,)`).

    Raises:
        ConfigurationError: an option is invalid.
    """

    __slots__ = ("_layer", "_options", "_scanned")

    def __init__(
        self,
        app: ASGIApp,
        *,
        find_account: FindAccount | None = None,
        login_routes: Mapping[str, str] | None = None,
        status_events: Mapping[int, str | None] | None = None,
        record_unauthenticated: bool = True,
        record_invalid_credentials: bool = True,
        credential_headers: Iterable[str] | None = None,
        credential_statuses: Iterable[int] | None = None,
    ) -> None:
        if find_account is not None and not callable(find_account):
            raise ConfigurationError("find_account: expected a function login -> account (or None)")
        declared = _declared_routes(login_routes)
        self._layer = _LoginRoutes(app, find_account, declared)
        options: dict[str, Any] = {
            "status_events": status_events,
            "record_unauthenticated": record_unauthenticated,
            "record_invalid_credentials": record_invalid_credentials,
            "credential_headers": credential_headers,
            "credential_statuses": credential_statuses,
        }
        super().__init__(self._layer, **options)
        self._options = options
        self._scanned = False

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:  # type: ignore[override]
        if not self._scanned:
            self._scan(scope)
        return super().__call__(scope, receive, send)

    def _scan(self, scope: Scope) -> None:
        """Find the app's login routes and API-key headers, once (at the first connection)."""
        self._scanned = True
        with never_raise("reading the app's routes"):
            app = scope.get("app") or self._layer.app
            routes = list(getattr(app, "routes", None) or ())
            headers: list[str] = []
            for route in routes:
                dependant = getattr(route, "dependant", None)
                if dependant is None:
                    continue
                if route.path in self._layer.declared:  # first: what the application says wins
                    self._layer.add(route, self._layer.declared[route.path])
                for call in _calls(dependant):
                    if _is_password_form(call):
                        self._layer.add(route, "username")
                    name = _api_key_source(call)
                    if name is not None and name not in headers:
                        headers.append(name)
                login_field = _password_body(route)
                if login_field is not None:  # a body with a password and a login: its 401 is a failed login
                    self._layer.add(route, login_field, failures_only=True)
            if headers:
                options = dict(self._options)
                given = options.pop("credential_headers", None)
                base = list(("Authorization",) if given is None else given)
                known = {h.lower() for h in base}
                extra = [name for name in headers if ":" not in name and name not in known]
                sources = [name for name in headers if ":" in name]
                self._rules = http_rules(
                    **options, credential_headers=[*base, *extra], credential_sources=sources
                )


def _declared_routes(login_routes: Mapping[str, str] | None) -> dict[str, str]:
    if login_routes is None:
        return {}
    if not isinstance(login_routes, Mapping):
        raise ConfigurationError(
            "login_routes: expected a mapping of path to login field, e.g. {'/login': 'email'}"
        )
    for path, field in login_routes.items():
        if not isinstance(path, str) or not path.startswith("/") or not isinstance(field, str) or not field:
            raise ConfigurationError(
                f"login_routes: {path!r}: {field!r} is not a path and a field name, "
                "e.g. {'/login': 'email'}"
            )
    return dict(login_routes)


def _calls(dependant: Any) -> Iterable[Any]:
    """Every `call` of a dependant's tree (the endpoint's dependencies, their dependencies...)."""
    stack = list(getattr(dependant, "dependencies", ()) or ())
    seen = 0
    while stack and seen < 1000:
        seen += 1
        dep = stack.pop()
        yield getattr(dep, "call", None)
        stack.extend(getattr(dep, "dependencies", ()) or ())


def _is_password_form(call: Any) -> bool:
    from fastapi.security import OAuth2PasswordRequestForm

    return isinstance(call, type) and issubclass(call, OAuth2PasswordRequestForm)


def _password_body(route: Any) -> str | None:
    """The login field of a POST route whose body (a model or form fields) has `password` and one of
    `username`, `email`, `login`; else `None`. Such a route may be a signup, so only its 401 is read."""
    if "POST" not in (getattr(route, "methods", None) or ()):
        return None
    body = getattr(route, "body_field", None)
    model = getattr(getattr(body, "field_info", None), "annotation", None)
    found: Any = getattr(model, "model_fields", None)
    if not isinstance(found, dict) or "password" not in found:
        return None
    fields = cast("dict[str, Any]", found)
    aliases: dict[str, str] = {
        name: str(getattr(info, "alias", None) or name) for name, info in fields.items()
    }
    return next((aliases[name] for name in LOGIN_FIELDS if name in aliases), None)


def _api_key_source(call: Any) -> str | None:
    """Where a `fastapi.security` API key is read: its header (lowercase), `query:<name>` or
    `cookie:<name>`; else `None`."""
    from fastapi.security import APIKeyCookie, APIKeyHeader, APIKeyQuery

    if not isinstance(call, APIKeyHeader | APIKeyQuery | APIKeyCookie):
        return None
    name = getattr(call.model, "name", None)
    if not isinstance(name, str) or not name:
        return None
    if isinstance(call, APIKeyQuery):
        return f"query:{name}"
    if isinstance(call, APIKeyCookie):
        return f"cookie:{name}"
    return name.lower()


class _LoginRoutes:
    """The inner ASGI layer (inside the context the middleware binds): records the attempts of login routes
    before the middleware's status rule sees their response."""

    __slots__ = ("app", "declared", "find_account", "routes")

    def __init__(self, app: ASGIApp, find_account: FindAccount | None, declared: dict[str, str]) -> None:
        self.app = app
        self.find_account = find_account
        self.declared = declared
        self.routes: list[tuple[Any, str, bool]] = []

    def __getattr__(self, name: str) -> Any:  # the wrapped app's attributes (e.g. `routes`), as middleware do
        if name == "app":  # not set yet (a copy): no recursion
            raise AttributeError(name)
        return getattr(self.app, name)

    def add(self, route: Any, field: str, *, failures_only: bool = False) -> None:
        if all(known is not route for known, _, _ in self.routes):
            self.routes.append((route, field, failures_only))

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if self.routes and scope["type"] == "http" and scope.get("method") == "POST":
            found = self._field(scope)
            if found is not None:
                return self._login(scope, receive, send, *found)
        return self.app(scope, receive, send)

    def _field(self, scope: Scope) -> tuple[str, bool] | None:
        from starlette.routing import Match

        for route, field, failures_only in self.routes:
            try:
                match, _child = route.matches(scope)
            except Exception:  # noqa: BLE001, S112 - an odd scope is not a login
                continue
            if match is Match.FULL:
                return field, failures_only
        return None

    async def _login(
        self, scope: Scope, receive: Receive, send: Send, field: str, failures_only: bool
    ) -> None:
        body = bytearray()

        async def receive_and_keep() -> Message:
            message = await receive()
            if message.get("type") == "http.request" and len(body) <= MAX_LOGIN_BODY:
                body.extend(message.get("body", b""))
            return message

        async def send_after_recording(message: Message) -> None:
            if message.get("type") == "http.response.start":
                status = message.get("status")
                login = _login_from_body(scope, body, field) if len(body) <= MAX_LOGIN_BODY else None
                body.clear()  # the password goes with it
                if not failures_only or status == 401:
                    await self._record(status, login)
            await send(message)

        await self.app(scope, receive_and_keep, send_after_recording)

    async def _record(self, status: object, login: str | None) -> None:
        if not isinstance(status, int) or not (200 <= status < 300 or status in (400, 401, 403)):
            return  # a 422 (a missing field) is no attempt; a 429 or 5xx is left to the status rules
        ctx = current_request()
        if ctx is not None and any(recorded(ctx, evt_type) for evt_type in ATTEMPT_TYPES):
            return  # the application recorded this attempt itself
        with never_raise("a FastAPI login route"):
            account: Any = None
            found = self.find_account is not None and login is not None
            if self.find_account is not None and login is not None:
                account, found = find_account_safely(self.find_account, login)
                if inspect.isawaitable(account):
                    account, found = await await_account_safely(account)
            success = 200 <= status < 300
            if success:
                user = account if account is not None else login
                record_auth(
                    "authn_login_success",
                    where="a FastAPI login route",
                    user=user,
                    outcome="success",
                    login=login,
                )
                if isinstance(ctx, LazyRequestContext) and user is not None:
                    ctx.user = user
                return
            exists: bool | None = None
            reason = "invalid_credentials"
            if found:  # find_account answered (it did not raise)
                exists = account is not None
                if account is None:
                    reason = "unknown_user"
                elif _disabled(account):
                    reason = "account_disabled"
            record_auth(
                "authn_login_fail",
                where="a FastAPI login route",
                user=account,
                outcome="failure",
                login=login,
                exists=exists,
                params={"reason": reason},
            )


def _disabled(account: object) -> bool:
    try:
        return getattr(account, "disabled", None) is True or getattr(account, "is_active", None) is False
    except Exception:  # noqa: BLE001
        return False


def _login_from_body(scope: Scope, body: bytearray, field: str) -> str | None:
    """The login field of a form (urlencoded or multipart) or JSON body; nothing else is kept."""
    if not body:
        return None
    content_type = header_value(scope.get("headers") or (), b"content-type") or ""
    kind = content_type.split(";", 1)[0].strip().lower()
    value: object = None
    try:
        if kind == "application/x-www-form-urlencoded":
            for key, item in parse_qsl(bytes(body).decode("latin-1"), keep_blank_values=True):
                if key == field:
                    value = item.encode("latin-1").decode("utf-8", "replace")
                    break
        elif kind == "multipart/form-data":
            head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + bytes(body))
            for part in message.iter_parts():
                if part.get_param("name", header="content-disposition") == field:
                    payload = part.get_payload(decode=True)
                    value = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else None
                    break
        elif kind == "application/json" or kind.endswith("+json"):
            data = json.loads(bytes(body))
            value = cast("dict[str, Any]", data).get(field) if isinstance(data, dict) else None
    except Exception:  # noqa: BLE001 - a malformed body: the attempt is recorded without its login
        return None
    return value if isinstance(value, str) and value else None
