"""The HTTP semantics of `integrations/_common.py`, the same through the plain WSGI and ASGI middlewares (no
framework of ours: a bare WSGI callable and a bare Starlette app), including odd credentials sent on purpose."""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from graffer_secevents import ConfigurationError
from graffer_secevents.integrations import asgi, wsgi
from graffer_secevents.integrations._common import http_rules
from graffer_secevents.testing import Capture, hashed

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

PEER = "198.51.100.31"


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A bare WSGI app: 401 unless `Authorization: Key ok`, 422 for `/unprocessable`, 403 for `/admin`."""
    path = environ["PATH_INFO"]
    status = "200 OK"
    if path == "/admin":
        status = "403 Forbidden"
    elif path == "/unprocessable":
        status = "422 Unprocessable Content"
    elif environ.get("HTTP_AUTHORIZATION") != "Key ok" and environ.get("HTTP_X_API_KEY") != "ok":
        status = "401 Unauthorized"
    start_response(status, [("Content-Type", "text/plain")])
    return [b"x"]


def starlette_app() -> Starlette:
    async def private(request: Request) -> PlainTextResponse:
        if request.headers.get("authorization") != "Key ok" and request.headers.get("x-api-key") != "ok":
            return PlainTextResponse("no", status_code=401)
        return PlainTextResponse("ok")

    async def admin(request: Request) -> PlainTextResponse:
        request.state.user = "ops-7"  # a hand-written auth layer's user, by id
        return PlainTextResponse("no", status_code=403)

    async def unprocessable(request: Request) -> PlainTextResponse:
        return PlainTextResponse("no", status_code=422)

    return Starlette(
        routes=[Route("/private", private), Route("/admin", admin), Route("/unprocessable", unprocessable)]
    )


def client(kind: str, **options: Any) -> Any:
    if kind == "wsgi":
        app = wsgi.SecurityEventsMiddleware(wsgi_app, **options)
        return httpx.Client(transport=httpx.WSGITransport(app=app, remote_addr=PEER), base_url="http://t")
    app = starlette_app()
    app.add_middleware(asgi.SecurityEventsMiddleware, **options)
    return TestClient(app, client=(PEER, 1))


KINDS = ["wsgi", "asgi"]


def only(security_events: Capture, evt_type: str, **match: Any) -> dict[str, Any]:
    assert [r["evt"]["type"] for r in security_events.records] == [evt_type], security_events.records
    return security_events.assert_emitted(evt_type, network__client__ip=PEER, **match)


@pytest.mark.parametrize("kind", KINDS)
def test_a_401_is_split_by_credential(security_events: Capture, kind: str) -> None:
    with client(kind) as c:
        assert c.get("/private", headers={"Authorization": "Key stolen"}).status_code == 401
        only(security_events, "authn_login_fail", evt__reason="invalid_token")
        security_events.clear()
        c.get("/private")
        only(security_events, "authz_fail", evt__reason="unauthenticated", evt__resource="/private")
        security_events.clear()
        basic = base64.b64encode(b"ada@example.com:pw").decode()
        c.get("/private", headers={"Authorization": f"Basic {basic}"})
        record = only(security_events, "authn_login_fail", evt__reason="invalid_credentials")
        assert record["usr"]["login"] == hashed("ada@example.com")
        security_events.clear()
        assert c.get("/private", headers={"Authorization": "Key ok"}).status_code == 200
        assert security_events.records == []
    assert "stolen" not in json.dumps(security_events.records) and "pw" not in str(security_events.lines)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "odd",
    [
        "Basic !!!not-base64",
        "Basic " + base64.b64encode(b"\xff\xfe:pw").decode(),
        "Basic ",
        "   ",
        "x" * 9000,
    ],
    ids=["bad-base64", "not-utf8", "empty-basic", "blank", "huge"],
)
def test_odd_credentials_are_one_record_and_never_raise(
    security_events: Capture, kind: str, odd: str
) -> None:
    with client(kind) as c:
        assert c.get("/private", headers={"Authorization": odd}).status_code == 401
    (record,) = security_events.records
    if odd.strip():
        assert record["evt"]["type"] == "authn_login_fail"
        assert record["evt"]["reason"] in {"invalid_token", "invalid_credentials"}
    else:
        assert record["evt"] == {**record["evt"], "type": "authz_fail", "reason": "unauthenticated"}
    assert "x" * 100 not in json.dumps(record)


@pytest.mark.parametrize("kind", KINDS)
def test_each_part_is_an_option(security_events: Capture, kind: str) -> None:
    with client(kind, credential_headers=("Authorization", "X-API-Key"), credential_statuses=(401, 422)) as c:
        c.get("/private", headers={"X-API-Key": "leaked"})
        only(security_events, "authn_login_fail", evt__reason="invalid_token")
        security_events.clear()
        c.get("/unprocessable", headers={"Authorization": "Bearer garbage"})  # a JWT library's 422
        only(security_events, "authn_login_fail", evt__reason="invalid_token")
        security_events.clear()
        c.get("/unprocessable")  # a 422 without a credential is a plain validation error: nothing
        assert security_events.records == []
    with client(kind, record_unauthenticated=False, record_invalid_credentials=False) as c:
        c.get("/private")
        c.get("/private", headers={"Authorization": "Key stolen"})
        c.get("/unprocessable", headers={"Authorization": "Bearer garbage"})  # 422 is not split by default
    assert security_events.records == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_403_is_authz_fail(security_events: Capture, kind: str) -> None:
    with client(kind) as c:
        c.get("/admin")
    record = only(security_events, "authz_fail", evt__resource="/admin")
    if kind == "asgi":  # request.state.user
        assert record["usr"]["id"] == "ops-7"


@pytest.mark.parametrize(
    "options",
    [
        {"credential_headers": "Authorization"},
        {"credential_headers": ["Bad Header"]},
        {"credential_headers": [7]},
        {"credential_statuses": [200]},
        {"credential_statuses": ["401"]},
        {"credential_statuses": 401},
        {"record_unauthenticated": 0},
        {"record_invalid_credentials": None},
    ],
)
def test_bad_options_are_configuration_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        http_rules(**options)
    with pytest.raises(ConfigurationError):
        wsgi.SecurityEventsMiddleware(wsgi_app, **options)


@pytest.mark.parametrize("kind", KINDS)
def test_a_token_cookie_or_query_parameter_is_a_credential_when_declared(
    security_events: Capture, kind: str
) -> None:
    """fastapi-login (`use_cookie`) and AuthX keep the token in a cookie: a 401 to a forged one is a bad
    token, not an unauthenticated request, once declared; the cookie's name is case-sensitive."""
    declared = ("Authorization", "cookie:access-Token", "query:api_key")
    with client(kind, credential_headers=declared) as c:
        c.get("/private", headers={"Cookie": "theme=dark; access-Token=forged.jwt.value"})
        only(security_events, "authn_login_fail", evt__reason="invalid_token")
        security_events.clear()
        c.get("/private?page=2&api_key=leaked-key")
        only(security_events, "authn_login_fail", evt__reason="invalid_token")
        security_events.clear()
        c.get("/private", headers={"Cookie": "access-token=other-case; access-Token="})  # blank: none
        only(security_events, "authz_fail", evt__reason="unauthenticated")
    text = str(security_events.lines)
    assert "forged.jwt.value" not in text and "leaked-key" not in text


@pytest.mark.parametrize("kind", KINDS)
def test_without_the_declaration_a_token_cookie_is_no_credential(security_events: Capture, kind: str) -> None:
    with client(kind) as c:
        c.get("/private", headers={"Cookie": "access-token=forged"})
    only(security_events, "authz_fail", evt__reason="unauthenticated")


@pytest.mark.parametrize("entry", ["cookie:", "query:", "cookie:a b", "cookie:x;y", "header:x"])
def test_a_malformed_cookie_or_query_entry_is_refused_when_built(entry: str) -> None:
    with pytest.raises(ConfigurationError, match="credential_headers"):
        http_rules(credential_headers=("Authorization", entry))


@pytest.mark.parametrize("kind", KINDS)
def test_a_trusted_proxy_sending_only_x_real_ip_is_said_once(security_events: Capture, kind: str) -> None:
    """nginx's `proxy_set_header X-Real-IP $remote_addr` without `X-Forwarded-For`: the proxy's address is
    every client IP. The header is not believed (no chain to check), but the misconfiguration is said once."""
    from graffer_secevents import ForwardedHeaderIgnoredWarning, configure
    from graffer_secevents._errors import reset_warnings

    configure(trusted_proxies=[f"{PEER}/32"])
    reset_warnings()
    with client(kind) as c:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for real_ip in ("203.0.113.77", "203.0.113.78"):
                c.get("/admin", headers={"X-Real-IP": real_ip})
        caught = [w for w in caught if issubclass(w.category, ForwardedHeaderIgnoredWarning)]
        assert len(caught) == 1 and "X-Real-IP header ignored" in str(caught[0].message)
        assert {r["network"]["client"]["ip"] for r in security_events.records} == {PEER}
        assert "203.0.113.77" not in str(caught[0].message)
    reset_warnings()
    with client(kind) as c, warnings.catch_warnings():
        warnings.simplefilter("error")
        c.get("/admin", headers={"X-Real-IP": "203.0.113.77", "X-Forwarded-For": "203.0.113.77"})
    security_events.assert_emitted("authz_fail", network__client__ip="203.0.113.77")


@pytest.mark.parametrize("kind", KINDS)
def test_x_real_ip_from_an_untrusted_peer_is_not_mentioned(security_events: Capture, kind: str) -> None:
    from graffer_secevents import configure
    from graffer_secevents._errors import reset_warnings

    configure(trusted_proxies=["10.0.0.0/8"])
    reset_warnings()
    with client(kind) as c, warnings.catch_warnings():
        warnings.simplefilter("error")
        c.get("/admin", headers={"X-Real-IP": "6.6.6.6"})
    (record,) = security_events.records
    assert record["network"]["client"]["ip"] == PEER
