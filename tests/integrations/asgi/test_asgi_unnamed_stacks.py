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
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
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
    read = security_events.assert_emitted("sensitive_read", usr__id="1001", http__route="/orders/{order_id:int}")
    denied = security_events.assert_emitted("authz_fail", usr__id="1001", network__client__ip=PEER)
    assert denied["http"]["route"] == "/orders/{order_id:int}"
    assert "ada@example.com" not in str(security_events.lines)  # the e-mail is hashed
    assert read["usr"]["email"].startswith("anon_")


@pytest.mark.parametrize(
    "value",
    ["ada", 42, {"id": 5}, object()],
    ids=["a-string", "an-int", "a-dict", "an-anonymous-object"],
)
def test_a_scope_user_that_is_not_a_user_model_is_no_user(security_events: Capture, value: Any) -> None:
    """Only an object that says who it is: a bare value in `scope["user"]` says nothing about who set it."""
    app = SecurityEventsMiddleware(litestar_like(value))
    with TestClient(app, client=(PEER, 1)) as client:
        client.get("/elsewhere")
    (record,) = security_events.records
    assert record["evt"]["type"] == "authz_fail" and "usr" not in record


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
