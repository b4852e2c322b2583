"""The SSO callback rule (`integrations/_sso.py`) in the WSGI and ASGI middlewares, around raw apps: which answers
to an OAuth 2.0 authorization response are a refused login, which are not, and hostile query strings.

The real clients (mozilla-django-oidc, python-social-auth, allauth, Authlib on Flask and FastAPI) through a real
provider: `test_sso_callbacks.py` and `django/test_sso_logins.py`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

import graffer_secevents as api
from graffer_secevents.integrations._sso import authorization_response
from graffer_secevents.integrations.asgi import SecurityEventsMiddleware as AsgiMiddleware
from graffer_secevents.integrations.wsgi import SecurityEventsMiddleware as WsgiMiddleware
from graffer_secevents.testing import Capture

PEER = "203.0.113.9"
STATUS_TEXT = {
    200: "200 OK",
    302: "302 Found",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    403: "403 Forbidden",
    404: "404 Not Found",
}


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Answers `?answer=<status>`; `?records=1` records its own refused login first (as the recipe does)."""
    from urllib.parse import parse_qs

    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "records" in query:
        api.record_login(None, "failure", login="someone", reason="unknown_user")
    status = int(query.get("answer", ["200"])[0])
    start_response(STATUS_TEXT[status], [("Content-Type", "text/plain")])
    return [b"done"]


def wsgi_get(query: str, **headers: str) -> int:
    response = Client(WsgiMiddleware(wsgi_app)).get(
        "/auth/callback", query_string=query, headers=headers, environ_base={"REMOTE_ADDR": PEER}
    )
    return response.status_code


def failures(security_events: Capture) -> list[tuple[str, Any]]:
    return [(r["evt"]["type"], r["evt"].get("reason")) for r in security_events.records]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state=s1&code=c1&answer=302", []),  # a redirect after a callback that refused nothing: not known
        ("state=s1&code=c1&answer=200", []),  # e.g. a signup form to finish: the login is recorded later
        ("state=CA&code=94110&answer=200", []),  # a page whose query merely looks like one
        ("error=access_denied&state=s1&answer=302", [("authn_login_fail", "not_allowed")]),
        ("error=ACCESS_DENIED&state=s1&answer=200", [("authn_login_fail", "not_allowed")]),
        ("error=server_error&state=s1&answer=302", [("authn_login_fail", "other")]),  # nobody refused
        ("error=temporarily_unavailable&state=s1&answer=200", [("authn_login_fail", "other")]),
        ("error=login_required&state=s1&answer=302", []),  # prompt=none's answer: no login was attempted
        ("error=interaction_required&state=s1&answer=302", []),
        ("state=s1&code=c1&answer=400", [("authn_login_fail", "invalid_token")]),
        (
            "code=c1&state=s1&answer=401",
            [("authn_login_fail", "invalid_token")],
        ),  # not the 401 rule's authz_fail
        (
            "state=s1&code=c1&answer=403",
            [("authn_login_fail", "not_allowed")],
        ),  # not the 403 rule's authz_fail
        ("state=CA&code=94110&answer=404", []),  # no such page: not a callback
        ("code=c1&answer=400", []),  # no state: not an authorization response
        ("state=s1&answer=400", []),  # a state alone (e.g. the provider's own authorize request)
        ("state=s1&code=c1&answer=400&records=1", [("authn_login_fail", "unknown_user")]),  # the app's, once
    ],
)
def test_wsgi_callback_answers(security_events: Capture, query: str, expected: list[tuple[str, Any]]) -> None:
    wsgi_get(query)
    assert failures(security_events) == expected
    for record in security_events.records:
        assert record["network"]["client"]["ip"] == PEER


def test_a_posted_answer_is_not_read(security_events: Capture) -> None:
    """Only the browser's redirect (a GET) is a callback: a POST whose query has `state` and `code` is not."""
    Client(WsgiMiddleware(wsgi_app)).post(
        "/auth/callback", query_string="state=s1&code=c1&answer=400", environ_base={"REMOTE_ADDR": PEER}
    )
    assert security_events.records == []


def test_a_refused_callback_never_writes_the_code_the_state_or_the_error_text(
    security_events: Capture,
) -> None:
    code, state = "code-" + "q" * 40, "state-" + "r" * 40
    wsgi_get(f"state={state}&code={code}&answer=400&error_description=secret-ish+text")
    wsgi_get(f"state={state}&error=access_denied&answer=302&error_description=secret-ish+text")
    assert [r["evt"]["reason"] for r in security_events.records] == ["invalid_token", "not_allowed"]
    written = str(security_events.records)
    assert code not in written and state not in written and "secret-ish" not in written


def test_an_application_that_suppresses_the_request_gets_no_sso_event(security_events: Capture) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        api.suppress_request_events("authn_login_fail")
        start_response("400 Bad Request", [])
        return [b""]

    Client(WsgiMiddleware(app)).get("/cb", query_string="state=a&code=b")
    assert security_events.records == []


@pytest.mark.parametrize(
    "query",
    [
        "state=%ff%fe&code=%00%0a",
        "state&code",
        "state=&error=",
        "state=1&state=2&error=%E2%80%AEaccess_denied",
        "%zz=state=&code",
    ],
)
def test_hostile_query_strings_never_break_the_request(security_events: Capture, query: str) -> None:
    assert wsgi_get(query + "&answer=400") == 400
    for record in security_events.records:  # whatever is written is one line of valid, bounded reasons
        assert record["evt"]["reason"] in {"invalid_token", "not_allowed"}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_authorization_response_parses_any_text(query: str) -> None:
    found = authorization_response(query)
    assert found is None or (found[0] is True and (found[1] is None or isinstance(found[1], str)))


# --- ASGI: an app that raises before answering ------------------------------------------------------------


async def raising_app(scope: Any, receive: Any, send: Any) -> None:
    """As Authlib's Starlette client does on a refused callback: raises, the server answers 500."""
    raise RuntimeError("MismatchingStateError")


async def answering_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 403, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def asgi_get(app: Any, query: str) -> int:
    async def go() -> int:
        transport = httpx.ASGITransport(
            app=AsgiMiddleware(app), raise_app_exceptions=False, client=(PEER, 1234)
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return (await client.get("/auth?" + query)).status_code

    return asyncio.run(go())


def test_asgi_callback_whose_app_raised_is_one_invalid_token(security_events: Capture) -> None:
    assert asgi_get(raising_app, "code=c1&state=s1") == 500
    assert asgi_get(raising_app, "error=access_denied&state=s1") == 500
    assert asgi_get(raising_app, "page=1") == 500  # not a callback: nothing
    assert failures(security_events) == [
        ("authn_login_fail", "invalid_token"),
        ("authn_login_fail", "not_allowed"),
    ]
    assert all(r["network"]["client"]["ip"] == PEER for r in security_events.records)


def test_asgi_callback_answered_403_is_one_not_allowed(security_events: Capture) -> None:
    assert asgi_get(answering_app, "code=c1&state=s1") == 403
    assert failures(security_events) == [("authn_login_fail", "not_allowed")]
