"""Starlette's AuthenticationMiddleware through its TestClient: a refused credential is one event, and a
SimpleUser whose identity is an e-mail never puts the address in usr.id."""

from __future__ import annotations

import base64
import warnings
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import graffer_secevents as api
from graffer_secevents.integrations.asgi import SecurityEventsMiddleware
from graffer_secevents.integrations.starlette_auth import auth_error_handler
from graffer_secevents.testing import Capture

with warnings.catch_warnings():  # starlette.testclient prefers httpx2 and says so when importing
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

PEER = "203.0.113.41"
EMAIL = "ada@secevents-test.net"
USERS = {EMAIL: "correct horse battery", "adalovelace": "another password"}


class BasicBackend(AuthenticationBackend):
    """Starlette's documented Basic-auth backend: a wrong password raises AuthenticationError."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        header = conn.headers.get("Authorization")
        if not header:
            return None
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        username, _, password = base64.b64decode(encoded).decode().partition(":")
        if USERS.get(username) != password:
            raise AuthenticationError(f"Invalid basic auth credentials for {username}")
        return AuthCredentials(["authenticated"]), SimpleUser(username)


def secret(_request: Request) -> Response:
    return PlainTextResponse("no", status_code=403)


def touch(request: Request) -> Response:
    api.emit("sensitive_read", object="report")
    return JSONResponse({"user": request.user.display_name})


def unauthorized(_conn: HTTPConnection, _exc: AuthenticationError) -> Response:
    return JSONResponse({"detail": "unauthorized"}, status_code=401)


def build(on_error: Any, **middleware: Any) -> Starlette:
    return Starlette(
        routes=[Route("/secret", secret), Route("/touch", touch)],
        middleware=[
            Middleware(SecurityEventsMiddleware, **middleware),
            Middleware(AuthenticationMiddleware, backend=BasicBackend(), on_error=on_error),
        ],
    )


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


@pytest.mark.parametrize(
    ("on_error", "status"),
    [(auth_error_handler(), 400), (auth_error_handler(unauthorized), 401)],
    ids=["default", "own-401"],
)
def test_an_authentication_error_is_one_event(security_events: Capture, on_error: Any, status: int) -> None:
    app = build(on_error, status_events={401: "authz_fail"})  # the 401 rule is on and writes nothing more
    with TestClient(app, client=(PEER, 50123)) as client:
        response = client.get("/secret", headers={"X-Request-ID": "sa-1", **basic(EMAIL, "wrong")})
    assert response.status_code == status
    [record] = security_events.records
    assert (record["evt"]["type"], record["evt"]["reason"]) == ("authn_login_fail", "authentication_error")
    assert record["network"]["client"]["ip"] == PEER
    assert record["http"]["request_id"] == "sa-1"
    assert EMAIL not in b"\n".join(security_events.lines).decode()  # the error's text is never written


def test_without_the_handler_the_error_is_silent(security_events: Capture) -> None:
    """What the handler adds: Starlette's default on_error records nothing."""
    with TestClient(build(None), client=(PEER, 50123)) as client:
        assert client.get("/secret", headers=basic(EMAIL, "wrong")).status_code == 400
    assert security_events.records == []


def test_an_email_identity_is_hashed_like_usr_email(security_events: Capture) -> None:
    with TestClient(build(auth_error_handler()), client=(PEER, 50123)) as client:
        assert client.get("/secret", headers=basic(EMAIL, USERS[EMAIL])).status_code == 403
        client.get("/touch", headers=basic("adalovelace", USERS["adalovelace"]))
    denied, read = security_events.records
    assert denied["evt"]["type"] == "authz_fail"
    assert denied["usr"]["id"].startswith("anon_")
    api.log_login(api.User(email=EMAIL), "success")  # the e-mail rule, applied directly
    assert denied["usr"]["id"] == security_events.records[-1]["usr"]["email"]
    assert read["usr"]["id"] == "adalovelace"  # a plain username is an id, kept
    text = b"\n".join(security_events.lines).decode()
    assert EMAIL not in text and USERS[EMAIL] not in text
