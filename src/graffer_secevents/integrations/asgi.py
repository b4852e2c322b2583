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

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from graffer_secevents._context import _request as _current  # bind_request(), inlined: once per request
from graffer_secevents._request_id import accept_request_id

from ._common import (
    DEFAULT_STATUS_EVENTS,
    OPTIONAL_STATUS_EVENTS,
    LazyRequestContext,
    StatusRule,
    emit_for_status,
    header_value,
    status_rules,
    user_from_scope,
)
from ._lifespan import run_lifespan

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
        # Starlette and FastAPI routers store the matched route in the (shared) scope.
        path = getattr(self.scope.get("route"), "path", None)
        return path if isinstance(path, str) else None

    def _find_user(self) -> Any:
        return user_from_scope(self.scope.get("user"))


class SecurityEventsMiddleware:
    """Bind the request context for every HTTP and WebSocket connection of an ASGI app.

    Inside a request, events carry the resolved client IP, user agent, request id, method, path, route
    template and, once the response has started, the status code; the user is Starlette's
    `scope["user"]` or whatever `graffer_secevents.set_user` bound. The response carries the request
    id as `X-Request-ID`. A response whose status is in `status_events` emits that event (by default a
    403 emits `authz_fail`).

    Args:
        app: the ASGI application to wrap.
        status_events: per-status overrides merged over `DEFAULT_STATUS_EVENTS`: an event type
            turns a status on, `None` turns it off, e.g. ``{401: "authz_fail", 429:
            "excess_rate_limit_exceeded"}` or `{403: None}``.

    Raises:
        ConfigurationError: `status_events` names a status or an event type that does not exist.

    Example:
        ```python
        app = FastAPI()
        app.add_middleware(SecurityEventsMiddleware, status_events={429: "excess_rate_limit_exceeded"})
        ```
    """

    __slots__ = ("_rules", "app")

    def __init__(self, app: ASGIApp, *, status_events: Mapping[int, str | None] | None = None) -> None:
        self.app = app
        self._rules: dict[int, StatusRule] = status_rules(status_events)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._not_http(scope, receive, send)
            return
        # Everything below runs on every request, so it does the least it can (docs/performance.md): the
        # context stores the scope and nothing else, and `send` is wrapped by a plain function that returns
        # the awaitable of the `send` it wraps (no coroutine of its own per message).
        ctx = AsgiRequestContext(scope)
        rules = self._rules

        def send_with_context(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                status = None
                try:
                    status = ctx.status_code = message["status"]
                    headers = message.get("headers") or ()
                    for key, _value in headers:
                        if key == _REQUEST_ID:  # the application's own (names are lowercase in ASGI): kept
                            break
                    else:
                        request_id = ctx._request_id  # the lazy property, inlined: this runs per request
                        if request_id is None:
                            request_id = ctx._request_id = accept_request_id(ctx._raw_request_id())
                        # A new list (the response may own the old one); the message is ours to change.
                        message["headers"] = [*headers, (_REQUEST_ID, request_id.encode("ascii"))]
                except Exception:  # noqa: BLE001, S110 - an odd message is passed on unchanged
                    pass
                if status in rules:
                    emit_for_status(ctx, rules)
            return send(message)

        token = _current.set(ctx)
        try:
            await self.app(scope, receive, send_with_context)
        finally:
            _current.reset(token)

    async def _not_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # the queue is drained at shutdown (uvicorn re-raises SIGTERM after)
            await run_lifespan(self.app, scope, receive, send)
            return
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        token = _current.set(AsgiRequestContext(scope))  # the context only stores the scope
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)
