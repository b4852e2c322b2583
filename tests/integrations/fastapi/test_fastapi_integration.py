"""FastAPI through the pure ASGI middleware, with FastAPI's own TestClient: helpers, set_user, streaming."""

from __future__ import annotations

import asyncio
import hmac
import re
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Header, HTTPException, WebSocket
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware.authentication import AuthenticationMiddleware

import graffer_secevents as api
from graffer_secevents import ConfigurationError
from graffer_secevents.integrations.fastapi import SecurityEventsMiddleware
from graffer_secevents.testing import Capture

with warnings.catch_warnings():  # starlette.testclient prefers httpx2 and says so when importing
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PEER = "203.0.113.9"
HEX32 = re.compile(r"[0-9a-f]{32}")

ACCOUNTS = {"ada": ("correct horse", 1001, "user"), "root": ("admin secret", 1, "admin")}


class Credentials(BaseModel):
    username: str
    password: str


def _account(authorization: str) -> api.User:
    name = authorization.removeprefix("Bearer ")
    if name not in ACCOUNTS:
        raise HTTPException(401)
    return api.User(id=ACCOUNTS[name][1], login=name)


def sync_user(authorization: str = Header()) -> api.User:
    """A sync dependency: FastAPI runs it in a thread pool, with a copy of the request's context."""
    user = _account(authorization)
    api.set_user(user)
    return user


async def async_user(authorization: str = Header()) -> api.User:
    user = _account(authorization)
    api.set_user(user)
    return user


SyncUser = Annotated[api.User, Depends(sync_user)]
AsyncUser = Annotated[api.User, Depends(async_user)]


def build_app(**middleware: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SecurityEventsMiddleware, **middleware)

    @app.post("/login")
    async def login(credentials: Credentials) -> dict[str, str]:
        account = ACCOUNTS.get(credentials.username)
        if account is None or not hmac.compare_digest(account[0], credentials.password):
            api.log_login(
                api.User(id=account[1], login=credentials.username) if account else None,
                "failure",
                login=credentials.username,
                exists=account is not None,
                reason="invalid_credentials" if account else "unknown_user",
            )
            raise HTTPException(401)
        api.log_login(api.User(id=account[1], login=credentials.username), "success")
        return {"token": credentials.username}

    @app.get("/me")
    async def me(user: SyncUser) -> dict[str, Any]:
        api.emit("sensitive_read", object="profile")
        return {"id": user.id}

    @app.get("/me-sync")
    def me_sync(user: AsyncUser) -> dict[str, Any]:
        api.emit("sensitive_read", object="profile-sync")
        return {"id": user.id}

    @app.get("/orders/{order_id}")
    def order(order_id: int) -> dict[str, Any]:
        api.set_user(api.User(id=7))  # bound inside a sync endpoint, in the thread pool
        api.emit("sensitive_read", object=f"order:{order_id}")
        return {"id": order_id}

    @app.post("/logout")
    async def logout(user: SyncUser) -> dict[str, bool]:
        api.log_logout()
        return {"ok": True}

    @app.get("/admin")
    def admin(user: SyncUser) -> dict[str, bool]:
        if ACCOUNTS[str(user.login)][2] != "admin":
            raise HTTPException(403)
        return {"ok": True}

    @app.get("/stream")
    async def stream(user: SyncUser) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b"first,"
            await asyncio.sleep(0)
            api.emit("data_export", object="report", record_count=2)
            yield b"second"

        return StreamingResponse(body())

    @app.get("/stream-sync")
    def stream_sync(user: SyncUser) -> StreamingResponse:
        def body() -> Iterator[bytes]:  # Starlette iterates it in the thread pool
            yield b"first,"
            api.emit("data_export", object="report-sync", record_count=2)
            yield b"second"

        return StreamingResponse(body())

    @app.get("/status/{code}")
    def status(code: int) -> PlainTextResponse:
        return PlainTextResponse("status", status_code=code)

    @app.get("/own-request-id")
    def own_request_id() -> PlainTextResponse:
        return PlainTextResponse("x", headers={"X-Request-ID": "app-chosen"})

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("the application's own error")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        api.emit("authz_fail", resource="/ws")
        await websocket.send_text("done")
        await websocket.close()

    return app


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return build_app()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, client=(PEER, 50123)) as test_client:
        yield test_client


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}"}


# --- logins through the helpers carry the request context -------------------------------------------------


def test_failed_login_for_an_existing_account_carries_ip_request_id_and_route(
    client: TestClient, security_events: Capture
) -> None:
    response = client.post(
        "/login",
        json={"username": "ada", "password": "wrong"},
        headers={"X-Request-ID": "req-1", "User-Agent": "pytest-agent"},
    )
    assert response.status_code == 401
    security_events.assert_emitted(
        "authn_login_fail",
        usr__id="1001",
        usr__exists=True,
        evt__reason="invalid_credentials",
        network__client__ip=PEER,
        http__request_id="req-1",
        http__route="/login",
        http__method="POST",
        http__useragent="pytest-agent",
        http__url_details__path="/login",
    )
    assert response.headers["X-Request-ID"] == "req-1"


def test_failed_login_for_an_unknown_account_counts_the_login_as_the_target(
    client: TestClient, security_events: Capture
) -> None:
    client.post("/login", json={"username": "mallory", "password": "x"})
    record = security_events.assert_emitted("authn_login_fail", usr__exists=False, evt__reason="unknown_user")
    assert record["usr"]["id"] == record["usr"]["login"]
    assert record["usr"]["login"].startswith("anon_")


def test_successful_login_names_the_user(client: TestClient, security_events: Capture) -> None:
    assert client.post("/login", json={"username": "ada", "password": "correct horse"}).status_code == 200
    security_events.assert_emitted("authn_login_success", usr__id="1001", network__client__ip=PEER)


def test_logout_takes_the_user_bound_by_the_dependency(client: TestClient, security_events: Capture) -> None:
    client.post("/logout", headers=bearer("ada"))
    security_events.assert_emitted("session_logout", usr__id="1001", network__client__ip=PEER)


# --- set_user from dependencies and endpoints, sync and async ----------------------------------------------


def test_sync_dependency_binds_the_user_for_an_async_endpoint(
    client: TestClient, security_events: Capture
) -> None:
    client.get("/me", headers=bearer("ada"))
    security_events.assert_emitted("sensitive_read", usr__id="1001", evt__object="profile", http__route="/me")


def test_async_dependency_binds_the_user_for_a_sync_endpoint(
    client: TestClient, security_events: Capture
) -> None:
    client.get("/me-sync", headers=bearer("root"))
    security_events.assert_emitted("sensitive_read", usr__id="1", evt__object="profile-sync")


def test_sync_endpoint_binds_the_user_itself_and_sees_the_route_template(
    client: TestClient, security_events: Capture
) -> None:
    client.get("/orders/42")
    security_events.assert_emitted(
        "sensitive_read",
        usr__id="7",
        http__route="/orders/{order_id}",
        http__url_details__path="/orders/42",
    )


@pytest.mark.parametrize("path", ["/stream", "/stream-sync"])
def test_events_emitted_while_streaming_carry_the_request(
    client: TestClient, security_events: Capture, path: str
) -> None:
    response = client.get(path, headers={**bearer("ada"), "X-Request-ID": "stream-1"})
    assert response.text == "first,second"
    security_events.assert_emitted(
        "data_export", usr__id="1001", network__client__ip=PEER, http__request_id="stream-1", http__route=path
    )


def test_user_from_a_previous_request_does_not_leak(client: TestClient, security_events: Capture) -> None:
    client.get("/me", headers=bearer("ada"))
    client.get("/status/403")
    denied = security_events.assert_emitted("authz_fail", http__url_details__path="/status/403")
    assert "usr" not in denied


# --- automatic denied-request events -----------------------------------------------------------------------


def test_a_403_emits_authz_fail_with_the_user_and_status(
    client: TestClient, security_events: Capture
) -> None:
    assert client.get("/admin", headers=bearer("ada")).status_code == 403
    security_events.assert_emitted(
        "authz_fail",
        usr__id="1001",
        evt__resource="/admin",
        evt__outcome="failure",
        http__status_code=403,
        http__route="/admin",
        network__client__ip=PEER,
    )
    assert len(security_events.find("authz_fail")) == 1


@pytest.mark.parametrize("code", [200, 302, 404, 429, 500])
def test_other_statuses_emit_nothing_by_default(
    client: TestClient, security_events: Capture, code: int
) -> None:
    client.get(f"/status/{code}")
    assert security_events.records == []


def test_401_and_429_are_opt_in(security_events: Capture) -> None:
    app = build_app(status_events={401: "authz_fail", 429: "excess_rate_limit_exceeded", 403: None})
    with TestClient(app, client=(PEER, 1)) as client:
        client.get("/status/401")
        client.get("/status/429")
        client.get("/status/403")
    security_events.assert_emitted("authz_fail", http__status_code=401, evt__resource="/status/401")
    security_events.assert_emitted(
        "excess_rate_limit_exceeded", http__status_code=429, evt__resource="/status/429"
    )
    security_events.assert_not_emitted("authz_fail", http__status_code=403)


@pytest.mark.parametrize(
    "status_events",
    [{99: "authz_fail"}, {403: "no_such_event"}, {"403": "authz_fail"}, {True: "authz_fail"}, ["authz_fail"]],
)
def test_bad_status_events_are_refused_at_construction(status_events: Any) -> None:
    with pytest.raises(ConfigurationError, match="status_events"):
        SecurityEventsMiddleware(build_app(), status_events=status_events)


# --- request ids ---------------------------------------------------------------------------------------------


def test_a_missing_request_id_is_generated_and_echoed(client: TestClient, security_events: Capture) -> None:
    response = client.get("/status/403")
    generated = response.headers["X-Request-ID"]
    assert HEX32.fullmatch(generated)
    security_events.assert_emitted("authz_fail", http__request_id=generated)


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "semi;colon", "ünï"])
def test_an_unsafe_upstream_request_id_is_replaced(
    client: TestClient, security_events: Capture, bad: str
) -> None:
    response = client.get("/status/403", headers={"X-Request-ID": bad.encode("utf-8")})
    assert HEX32.fullmatch(response.headers["X-Request-ID"])
    assert security_events.records[0]["http"]["request_id"] == response.headers["X-Request-ID"]


def test_the_applications_own_request_id_header_is_kept_once(client: TestClient) -> None:
    response = client.get("/own-request-id", headers={"X-Request-ID": "upstream"})
    assert response.headers.get_list("X-Request-ID") == ["app-chosen"]


# --- Starlette's AuthenticationMiddleware, websockets, lifespan ------------------------------------------


class HeaderBackend(AuthenticationBackend):
    async def authenticate(self, conn: Any) -> tuple[AuthCredentials, SimpleUser] | None:
        name = conn.headers.get("X-User")
        return (AuthCredentials(["authenticated"]), SimpleUser(name)) if name else None


def test_scope_user_from_starlette_authentication_is_the_event_user(security_events: Capture) -> None:
    app = build_app()
    app.add_middleware(AuthenticationMiddleware, backend=HeaderBackend())  # added last: runs inside ours
    with TestClient(app, client=(PEER, 1)) as client:
        client.get("/status/403", headers={"X-User": "grace"})
        client.get("/status/403")
    security_events.assert_emitted("authz_fail", usr__id="grace")
    anonymous = [r for r in security_events.find("authz_fail") if "usr" not in r]
    assert len(anonymous) == 1  # Starlette's UnauthenticatedUser is no user


def test_websocket_events_carry_the_client_ip(client: TestClient, security_events: Capture) -> None:
    with client.websocket_connect("/ws", headers={"X-Request-ID": "ws-1"}) as websocket:
        assert websocket.receive_text() == "done"
    security_events.assert_emitted(
        "authz_fail", evt__resource="/ws", network__client__ip=PEER, http__request_id="ws-1"
    )


def test_the_applications_exceptions_pass_through_unchanged(app: FastAPI) -> None:
    with (
        TestClient(app, client=(PEER, 1)) as client,
        pytest.raises(RuntimeError, match="the application's own error"),
    ):
        client.get("/boom")


# --- the context is bound for exactly one request ----------------------------------------------------------


def _scope(**extra: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [(b"user-agent", b"raw")],
        "client": (PEER, 1),
        "server": ("testserver", 80),
        **extra,
    }


async def _call(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def _denying_app(scope: Any, receive: Any, send: Any) -> None:
    api.emit("sensitive_read", object="inner")
    await send({"type": "http.response.start", "status": 403, "headers": []})
    await send({"type": "http.response.body", "body": b"no"})


def test_context_is_bound_during_the_call_and_reset_after() -> None:
    seen: list[Any] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(api.current_request())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def scenario() -> Any:
        await _call(SecurityEventsMiddleware(inner), _scope())
        return api.current_request()

    after = asyncio.run(scenario())
    assert seen[0] is not None and seen[0].client_ip == PEER and seen[0].user_agent == "raw"
    assert after is None


def test_concurrent_tasks_each_see_their_own_request(security_events: Capture) -> None:
    async def inner(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0.001 * (scope["client"][1] % 5))
        api.emit("sensitive_read", object=scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = SecurityEventsMiddleware(inner)

    async def scenario() -> None:
        await asyncio.gather(
            *(_call(middleware, _scope(path=f"/t/{n}", client=(f"198.51.100.{n}", n))) for n in range(1, 41))
        )

    asyncio.run(scenario())
    records = security_events.find("sensitive_read")
    assert len(records) == 40
    for record in records:
        n = record["evt"]["object"].rsplit("/", 1)[1]
        assert record["network"]["client"]["ip"] == f"198.51.100.{n}"


def test_lifespan_and_other_scopes_pass_through() -> None:
    """Lifespan reaches the app; an app that does not speak it is answered by the middleware, which drains
    the delivery queue before it reports the shutdown complete (docs/delivery.md)."""
    calls: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["type"])
        assert api.current_request() is None

    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(SecurityEventsMiddleware(inner)({"type": "lifespan"}, receive, send))  # type: ignore[arg-type]
    assert calls == ["lifespan"]
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


# --- nothing the middleware does raises into the application -----------------------------------------------


@pytest.mark.secevents_lenient
def test_odd_scope_values_never_reach_the_application(security_events: Capture) -> None:
    scope = _scope(client="not-a-tuple", headers=[("str-name", "str-value"), (b"x-request-id", b"ok-1")])
    sent = asyncio.run(_call(SecurityEventsMiddleware(_denying_app), scope))
    assert sent[0]["status"] == 403
    record = security_events.assert_emitted("authz_fail", http__request_id="ok-1")
    assert "network" not in record


def test_a_broken_configuration_never_reaches_the_application(monkeypatch: pytest.MonkeyPatch) -> None:
    """get_config() raises for a bad variable; the middleware's own event is skipped, the response goes out."""
    from graffer_secevents._config import set_config

    async def quiet_denial(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 403, "headers": []})
        await send({"type": "http.response.body", "body": b"no"})

    monkeypatch.setenv("SECEVENTS_METRICS", "not-a-backend")
    set_config(None)
    sent = asyncio.run(_call(SecurityEventsMiddleware(quiet_denial), _scope()))
    assert sent[0]["status"] == 403
    assert any(name == b"x-request-id" for name, _ in sent[0]["headers"])
