"""The pure ASGI middleware under conventions of stacks our other tests do not name, reproduced with bare ASGI
apps: an auth middleware that puts the application's own user model in `scope["user"]` and a router that
stores its template as `scope["path_template"]` (Litestar's), and WebSocket handshakes the app refuses."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import pytest

import graffer_secevents as secevents
from graffer_secevents.integrations.asgi import SecurityEventsMiddleware
from graffer_secevents.testing import Capture

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

PEER = "198.51.100.44"


@dataclass
class Account:
    """A user model with no `is_authenticated`: what Litestar's `AbstractAuthenticationMiddleware` stores."""

    id: int
    email: str


async def respond(send: Any, status: int) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]}
    )
    await send({"type": "http.response.body", "body": b"x"})


def litestar_like(user: Any) -> Any:
    """An app that authenticates like Litestar: `scope["user"]` is set once authenticated, the route template
    is `scope["path_template"]`, a guard answers 403."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        scope["path_template"] = "/orders/{order_id:int}"
        if user is not None:
            scope["user"] = user
        if scope["path"].startswith("/orders/"):
            secevents.emit("sensitive_read", resource="order")
        await respond(send, 403)

    return app


def test_a_user_model_without_is_authenticated_is_the_request_user(security_events: Capture) -> None:
    app = SecurityEventsMiddleware(litestar_like(Account(1001, "ada@example.com")))
    with TestClient(app, client=(PEER, 1)) as client:
        assert client.get("/orders/7").status_code == 403
    read = security_events.assert_emitted(
        "sensitive_read", usr__id="1001", http__route="/orders/{order_id:int}"
    )
    denied = security_events.assert_emitted("authz_fail", usr__id="1001", network__client__ip=PEER)
    assert denied["http"]["route"] == "/orders/{order_id:int}"
    assert "ada@example.com" not in str(security_events.lines)  # the e-mail is hashed
    assert read["usr"]["email"].startswith("anon_")


@pytest.mark.parametrize(
    "value",
    ["ada", 42, {"name": "ada", "password": "pw-in-a-dict"}, object()],
    ids=["a-string", "an-int", "a-dict-with-no-identity", "an-anonymous-object"],
)
def test_a_scope_user_that_is_not_a_user_model_is_no_user(security_events: Capture, value: Any) -> None:
    """Only an object that says who it is: a bare value in `scope["user"]` says nothing about who set it."""
    app = SecurityEventsMiddleware(litestar_like(value))
    with TestClient(app, client=(PEER, 1)) as client:
        client.get("/elsewhere")
    (record,) = security_events.records
    assert record["evt"]["type"] == "authz_fail" and "usr" not in record


def test_a_user_record_dict_in_the_scope_is_the_request_user(security_events: Capture) -> None:
    record = {"id": 77, "username": "ada", "hashed_password": "$2b$12$never-written"}
    app = SecurityEventsMiddleware(litestar_like(record))
    with TestClient(app, client=(PEER, 1)) as client:
        client.get("/elsewhere")
    security_events.assert_emitted("authz_fail", usr__id="77")
    assert "never-written" not in str(security_events.lines)


def test_an_explicitly_unauthenticated_model_is_still_no_user(security_events: Capture) -> None:
    @dataclass
    class Anonymous:
        id: int
        is_authenticated: bool = False

    app = SecurityEventsMiddleware(litestar_like(Anonymous(0)))
    with TestClient(app, client=(PEER, 1)) as client:
        client.get("/elsewhere")
    (record,) = security_events.records
    assert "usr" not in record


# --- WebSocket handshakes ------------------------------------------------------------------------------------


def websocket_app(refuse: str) -> Any:
    """Starlette routes whose handshake is refused as apps do it: Starlette's `@requires` closes before the
    accept (the server answers 403); the Denial Response extension sends a status; or it is accepted."""
    from starlette.applications import Starlette
    from starlette.authentication import AuthenticationBackend, requires
    from starlette.middleware import Middleware
    from starlette.middleware.authentication import AuthenticationMiddleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    @requires("authenticated")
    async def private(websocket: WebSocket) -> None:  # never reached without AuthenticationMiddleware's user
        await websocket.accept()

    async def deny(websocket: WebSocket) -> None:
        await websocket.send_denial_response(PlainTextResponse("no", status_code=401))

    async def echo(websocket: WebSocket) -> None:
        secevents.set_user("ws-user-3")
        await websocket.accept()
        await websocket.send_text("hi " + await websocket.receive_text())
        await websocket.close(code=1008)  # a close after the accept is no refusal

    async def admin(websocket: WebSocket) -> None:
        secevents.set_user("ws-user-3")
        await websocket.close()

    class NoOne(AuthenticationBackend):
        async def authenticate(self, conn: Any) -> None:
            return None

    routes = {"requires": private, "denial": deny, "accepted": echo, "admin": admin}
    middleware = [Middleware(AuthenticationMiddleware, backend=NoOne())]
    return SecurityEventsMiddleware(
        Starlette(routes=[WebSocketRoute("/ws", routes[refuse])], middleware=middleware)
    )


def connect(app: Any, **headers: str) -> None:
    from starlette.testclient import WebSocketDenialResponse
    from starlette.websockets import WebSocketDisconnect

    with TestClient(app, client=(PEER, 1)) as client:
        try:
            with client.websocket_connect("/ws", headers=headers) as ws:
                ws.send_text("x")
                assert ws.receive_text() == "hi x"
                ws.receive()
        except (WebSocketDisconnect, WebSocketDenialResponse):
            pass


def test_a_handshake_closed_before_the_accept_is_a_403(security_events: Capture) -> None:
    connect(websocket_app("requires"), **{"X-Request-ID": "ws-1"})
    (record,) = security_events.records
    assert record["evt"]["type"] == "authz_fail"
    assert record["http"]["status_code"] == 403 and record["http"]["request_id"] == "ws-1"
    assert record["network"]["client"]["ip"] == PEER and record["http"]["url_details"]["path"] == "/ws"


def test_a_refused_handshake_names_the_user_bound_before(security_events: Capture) -> None:
    connect(websocket_app("admin"))
    security_events.assert_emitted("authz_fail", usr__id="ws-user-3", http__status_code=403)
    assert len(security_events.records) == 1


def test_a_denial_response_follows_the_401_rules(security_events: Capture) -> None:
    app = websocket_app("denial")
    connect(app, Authorization="Bearer forged-ws-token")
    security_events.assert_emitted("authn_login_fail", evt__reason="invalid_token", http__status_code=401)
    security_events.clear()
    connect(app)
    security_events.assert_emitted("authz_fail", evt__reason="unauthenticated", http__status_code=401)
    assert len(security_events.records) == 1
    assert "forged-ws-token" not in str(security_events.lines)


def test_an_accepted_socket_closed_later_is_no_refusal(security_events: Capture) -> None:
    connect(websocket_app("accepted"))
    assert security_events.records == []


def test_a_refusal_with_a_status_off_writes_nothing(security_events: Capture) -> None:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def admin(websocket: WebSocket) -> None:
        await websocket.close()

    app = SecurityEventsMiddleware(
        Starlette(routes=[WebSocketRoute("/ws", admin)]), status_events={403: None}
    )
    connect(app)
    assert security_events.records == []


def test_an_odd_websocket_message_is_passed_on(security_events: Capture) -> None:
    """A message that is not a dict reaches the server unchanged: the middleware never breaks the app."""
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(["not", "a", "message"])

    async def send(message: Any) -> None:
        seen.append(message)

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    import asyncio

    scope = {"type": "websocket", "path": "/ws", "headers": [], "client": (PEER, 1)}
    asyncio.run(SecurityEventsMiddleware(app)(scope, receive, send))
    assert seen == [["not", "a", "message"]] and security_events.records == []


# --- the request id an inner request-id middleware chose ------------------------------------------------------


def starlette_context_app(emit_in_view: bool) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette_context import plugins
    from starlette_context.middleware import RawContextMiddleware

    async def admin(request: Request) -> PlainTextResponse:
        if emit_in_view:
            secevents.emit("sensitive_read", resource="admin")
        return PlainTextResponse("no", status_code=403)

    middleware = [Middleware(RawContextMiddleware, plugins=(plugins.RequestIdPlugin(),))]
    return SecurityEventsMiddleware(Starlette(routes=[Route("/admin", admin)], middleware=middleware))


def test_the_id_an_inner_middleware_answers_with_is_the_events_id(security_events: Capture) -> None:
    """starlette-context's `RequestIdPlugin` makes its own id and answers with it: the 403's event carries
    that id, the one the client and the application's logs see, and the response has one id, not two."""
    with TestClient(starlette_context_app(emit_in_view=False), client=(PEER, 1)) as client:
        response = client.get("/admin")
    (sent,) = response.headers.get_list("x-request-id")
    security_events.assert_emitted("authz_fail", http__request_id=sent)


def test_an_id_already_written_is_kept_for_the_whole_request(security_events: Capture) -> None:
    """An event written before the response started used the library's id: the request's events keep one id
    (the application's answer is passed on unchanged)."""
    with TestClient(starlette_context_app(emit_in_view=True), client=(PEER, 1)) as client:
        client.get("/admin")
    ids = {r["http"]["request_id"] for r in security_events.records}
    assert len(security_events.records) == 2 and len(ids) == 1


def test_a_raw_apps_capitalised_request_id_header_is_not_doubled(security_events: Capture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"X-Request-ID", b"app-own-7")]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    with TestClient(SecurityEventsMiddleware(app), client=(PEER, 1)) as client:
        response = client.get("/")
    assert response.headers.get_list("x-request-id") == ["app-own-7"]
    security_events.assert_emitted("authz_fail", http__request_id="app-own-7")


def test_an_unsafe_id_the_app_answers_with_is_not_written(security_events: Capture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"x-request-id", b"bad id <script>")]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    with TestClient(SecurityEventsMiddleware(app), client=(PEER, 1)) as client:
        client.get("/")
    (record,) = security_events.records
    assert "script" not in str(security_events.lines) and len(record["http"]["request_id"]) == 32


# --- http.route under Starlette mounts --------------------------------------------------------------------


def mounted_app() -> Any:
    from fastapi import FastAPI, HTTPException
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    async def item(request: Request) -> PlainTextResponse:
        return PlainTextResponse("no", status_code=403)

    v2 = FastAPI()

    @v2.get("/orders/{order_id}")
    def order(order_id: int) -> None:
        raise HTTPException(403)

    inner = Starlette(routes=[Route("/items/{item_id}", item)])
    tenant = Starlette(routes=[Route("/items/{item_id}", item)])  # "{item" never matches "{i}" below
    return Starlette(
        routes=[
            Route("/top/{n}", item),
            Mount("/v1", app=Starlette(routes=[Mount("/shop", app=inner)])),
            Mount("/v2", app=v2),
            Mount("/tenants/{tenant_id}", app=tenant),
            Mount("/org/{i}", app=tenant),
        ]
    )


@pytest.mark.parametrize("root_path", ["", "/behind-proxy"])
def test_a_mounted_routes_template_carries_the_mount_prefix(security_events: Capture, root_path: str) -> None:
    with TestClient(SecurityEventsMiddleware(mounted_app()), root_path=root_path) as client:
        for path in (
            "/top/1",
            "/v1/shop/items/5",
            "/v2/orders/9",
            "/tenants/acme-corp/items/5",
            "/org/7/items/5",
        ):
            assert client.get(root_path + path).status_code == 403  # behind a proxy: the full path
    routes = [r["http"]["route"] for r in security_events.records]
    # A mount with a parameter keeps the inner template: "acme-corp" never becomes part of a route.
    assert routes == [
        "/top/{n}",
        "/v1/shop/items/{item_id}",
        "/v2/orders/{order_id}",
        "/items/{item_id}",
        "/items/{item_id}",
    ]
