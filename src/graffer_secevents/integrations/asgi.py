"""Pure ASGI middleware: request context, the real client IP and denied-request events for any ASGI app.

Not Starlette's `BaseHTTPMiddleware`, which runs the app in a separate task with memory streams and costs
about 3x per request (the middleware table of `docs/performance.md`). This class only binds a context, wraps
`send` to learn the status and echo `X-Request-ID`, and unbinds in a `finally`; the app's own task,
threadpool and streaming responses all see the context.

Example:
    ```python
    from starlette.applications import Starlette
    from graffer_secevents.integrations.asgi import SecurityEventsMiddleware

    app = Starlette(routes=[...])
    app.add_middleware(SecurityEventsMiddleware)        # or: app = SecurityEventsMiddleware(app)
    ```
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any, cast

from graffer_secevents import _server_check
from graffer_secevents._context import _request as _current  # bind_request(), inlined: once per request
from graffer_secevents._request_id import accept_request_id

from ._common import (
    DEFAULT_STATUS_EVENTS,
    OPTIONAL_STATUS_EVENTS,
    LazyRequestContext,
    StatusRule,
    cookie_value,
    emit_for_status,
    header_value,
    http_rules,
    user_from_scope,
)
from ._lifespan import run_lifespan
from ._sso import record_refused_sso

__all__ = [
    "DEFAULT_STATUS_EVENTS",
    "OPTIONAL_STATUS_EVENTS",
    "AsgiRequestContext",
    "SecurityEventsMiddleware",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REQUEST_ID = b"x-request-id"


class AsgiRequestContext(LazyRequestContext):
    """The request context of one ASGI connection scope (`http` or `websocket`)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def _raw_method(self) -> str | None:
        return self.scope.get("method")

    def _raw_path(self) -> str | None:
        return self.scope.get("path")

    def _raw_peer_and_forwarding(self) -> tuple[str | None, str | None, str | None]:
        client = self.scope.get("client")
        headers = self.scope.get("headers") or ()
        return (
            client[0] if client else None,
            header_value(headers, b"x-forwarded-for"),
            header_value(headers, b"forwarded"),
        )

    def _raw_user_agent(self) -> str | None:
        return header_value(self.scope.get("headers") or (), b"user-agent")

    def _raw_request_id(self) -> str | None:
        # Read at every response start (the id is echoed): a plain loop, the first header only.
        for key, value in self.scope.get("headers") or ():
            if key == _REQUEST_ID:
                return value.decode("latin-1")  # type: ignore[no-any-return]
        return None

    def _find_route(self) -> str | None:
        # Starlette and FastAPI routers store the matched route in the (shared) scope; Litestar stores its
        # template as scope["path_template"].
        scope = self.scope
        path = getattr(scope.get("route"), "path", None)
        if isinstance(path, str):
            return _mounted(scope, path) if "app_root_path" in scope else path
        template = scope.get("path_template")
        return template if isinstance(template, str) and template else None

    def _raw_header(self, name: str) -> str | None:
        return header_value(self.scope.get("headers") or (), name.encode("latin-1"))

    def _raw_query_string(self) -> str | None:
        query: bytes = self.scope.get("query_string") or b""
        return query.decode("latin-1") if query else None

    def _raw_cookie(self, name: str) -> str | None:
        return cookie_value(header_value(self.scope.get("headers") or (), b"cookie"), name)

    def _find_user(self) -> Any:
        user = user_from_scope(self.scope.get("user"))
        if user is None:
            # `request.state.user`, where hand-written auth dependencies and middlewares keep it (Starlette's
            # `request.state` is the scope's "state" dict)
            state = self.scope.get("state")
            found: Any = cast("dict[str, Any]", state).get("user") if isinstance(state, dict) else None
            if found is not None and getattr(found, "is_authenticated", True) is not False:
                user = found
        return user


def _mounted(scope: Scope, path: str) -> str:
    """`path` under the prefix of the Starlette `Mount`s that routed to it (`app.mount("/v1", sub_app)`):
    the mounts' matched paths are `root_path` past the app's own (`app_root_path`, which a server's
    `--root-path` sets). A mount with path parameters keeps the inner template alone, so that a value never
    becomes part of `http.route`."""
    root, app_root = scope.get("root_path"), scope.get("app_root_path")
    if not isinstance(root, str) or not isinstance(app_root, str) or not root.startswith(app_root):
        return path
    prefix = root[len(app_root) :].rstrip("/")
    if not prefix:
        return path
    params: Any = scope.get("path_params")
    names: Iterable[Any] = params.keys() if hasattr(params, "keys") else ()
    if any(f"{{{name}}}" not in path and f"{{{name}:" not in path for name in names):
        return path  # a parameter the inner template does not name came from a mount's path
    return prefix + path


class SecurityEventsMiddleware:
    """Bind the request context for every HTTP and WebSocket connection of an ASGI app.

    Inside a request, events carry the resolved client IP, user agent, request id, method, path, route
    template and, once the response has started, the status code; the user is Starlette's
    `scope["user"]` or whatever `graffer_secevents.set_user` bound. The response carries the request
    id as `X-Request-ID`. A 401 or 403 emits the event of the HTTP semantics
    (docs/integrations/auth-stacks.md): a 401 with a credential is `authn_login_fail`, without one
    `authz_fail` (`unauthenticated`), a 403 is `authz_fail` with the user. A WebSocket handshake the app
    refuses is such a response too: closed before it was accepted (a 403), or denied with a status of its
    own (the Denial Response extension).

    Args:
        app: the ASGI application to wrap.
        status_events: per-status overrides merged over `DEFAULT_STATUS_EVENTS`: an event type
            turns a status on, `None` turns it off, e.g. `{429: "excess_rate_limit_exceeded"}` or
            `{403: None}`.
        record_unauthenticated: a 401 without a credential is `authz_fail` (`unauthenticated`).
        record_invalid_credentials: a 401 with a credential is `authn_login_fail`.
        credential_headers: the headers that carry a credential (default `("Authorization",)`), and
            `"cookie:<name>"` / `"query:<name>"` for a token kept in a cookie or a query parameter.
        credential_statuses: the statuses split by credential (default `(401,)`).

    Raises:
        ConfigurationError: `status_events` names a status or an event type that does not exist.

    Example:
        ```python
        app = FastAPI()
        app.add_middleware(SecurityEventsMiddleware, status_events={429: "excess_rate_limit_exceeded"})
        ```
    """

    __slots__ = ("_rules", "app")

    def __init__(
        self,
        app: ASGIApp,
        *,
        status_events: Mapping[int, str | None] | None = None,
        record_unauthenticated: bool = True,
        record_invalid_credentials: bool = True,
        credential_headers: Iterable[str] | None = None,
        credential_statuses: Iterable[int] | None = None,
    ) -> None:
        self.app = app
        self._rules: dict[int, StatusRule] = http_rules(
            status_events,
            record_unauthenticated=record_unauthenticated,
            record_invalid_credentials=record_invalid_credentials,
            credential_headers=credential_headers,
            credential_statuses=credential_statuses,
        )
        from graffer_secevents._findings import report_startup_findings

        report_startup_findings()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._not_http(scope, receive, send)
            return
        if not _server_check._checked:
            _server_check.check_server_once()
        # Everything below runs on every request, so it does the least it can (docs/performance.md): the
        # context stores the scope and nothing else, and `send` is wrapped by a plain function that returns
        # the awaitable of the `send` it wraps (no coroutine of its own per message).
        ctx = AsgiRequestContext(scope)
        rules = self._rules
        query = scope.get("query_string")  # an SSO callback (`_sso.py`) carries `state=`; most carry nothing

        def send_with_context(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                status = None
                try:
                    status = ctx.status_code = message["status"]
                    headers = message.get("headers") or ()
                    for key, value in headers:
                        # The application's own (an inner request-id middleware's, e.g. starlette-context's)
                        # is kept, and is this request's id if no event has used one yet. ASGI names are
                        # lowercase, but only "should" be: a raw app's "X-Request-ID" is not doubled.
                        if key == _REQUEST_ID or (len(key) == 12 and key.lower() == _REQUEST_ID):
                            if ctx._request_id is None:
                                ctx._request_id = accept_request_id(value.decode("latin-1"))
                            break
                    else:
                        request_id = ctx._request_id  # the lazy property, inlined: this runs per request
                        if request_id is None:
                            request_id = ctx._request_id = accept_request_id(ctx._raw_request_id())
                        # A new list (the response may own the old one); the message is ours to change.
                        message["headers"] = [*headers, (_REQUEST_ID, request_id.encode("ascii"))]
                except Exception:  # noqa: BLE001, S110 - an odd message is passed on unchanged
                    pass
                if query and b"state=" in query:  # a refused SSO login (`_sso.py`)
                    record_refused_sso(ctx, ctx._raw_query_string())
                if status in rules:
                    emit_for_status(ctx, rules)
            return send(message)

        token = _current.set(ctx)
        try:
            await self.app(scope, receive, send_with_context)
        except Exception:
            # Raised before any answer: the server (or Starlette's ServerErrorMiddleware, outside this one)
            # answers 500, which this middleware never sees. An SSO callback that raised (Authlib's state
            # mismatch, a provider's error) is a refused login all the same.
            if ctx.status_code is None and query and b"state=" in query:
                ctx.status_code = 500
                record_refused_sso(ctx, ctx._raw_query_string())
            raise
        finally:
            _current.reset(token)

    async def _not_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # the queue is drained at shutdown (uvicorn re-raises SIGTERM after)
            await run_lifespan(self.app, scope, receive, send)
            return
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        ctx = AsgiRequestContext(scope)  # the context only stores the scope
        rules = self._rules
        accepted = False

        def send_refusal(message: Message) -> Awaitable[None]:
            # A handshake the app refuses is an HTTP response: a close before the accept is a 403 (the ASGI
            # spec), the WebSocket Denial Response extension sends its own status. Same rules as for HTTP.
            nonlocal accepted
            if not accepted:
                status = None
                try:
                    kind = message["type"]
                    if kind == "websocket.accept":
                        accepted = True
                    elif kind == "websocket.close":
                        status = 403
                        accepted = True  # nothing is sent after a close
                    elif kind == "websocket.http.response.start":
                        status = message["status"]
                        accepted = True
                except Exception:  # noqa: BLE001, S110 - an odd message is passed on unchanged
                    pass
                if status is not None:
                    ctx.status_code = status
                    if status in rules:
                        emit_for_status(ctx, rules)
            return send(message)

        token = _current.set(ctx)
        try:
            await self.app(scope, receive, send_refusal)
        finally:
            _current.reset(token)
