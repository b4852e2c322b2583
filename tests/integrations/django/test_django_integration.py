"""Django's own auth (authenticate/login/logout, LoginView) with no event code, through Django's test client."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_login_failed
from django.test import AsyncClient, Client, RequestFactory, override_settings

import graffer_secevents as api
from graffer_secevents._config import set_config
from graffer_secevents.integrations.django import SecurityEventsMiddleware
from graffer_secevents.testing import Capture, capture_events

PEER = "203.0.113.9"
HEX32 = re.compile(r"[0-9a-f]{32}")


def call(client: Client, method: str, path: str, **extra: Any) -> Any:
    extra.setdefault("REMOTE_ADDR", PEER)
    return getattr(client, method)(path, **extra)


# --- the three signals, with no event code in the application -----------------------------------------------


def test_login_view_failure_for_an_existing_account(security_events: Capture) -> None:
    response = call(
        Client(),
        "post",
        "/login/",
        data={"username": "ada", "password": "wrong"},
        HTTP_X_REQUEST_ID="dj-1",
        HTTP_USER_AGENT="pytest-agent",
    )
    assert response.status_code == 200  # the form is shown again
    assert response["X-Request-ID"] == "dj-1"
    record = security_events.assert_emitted(
        "authn_login_fail",
        usr__exists=True,
        evt__reason="invalid_credentials",
        network__client__ip=PEER,
        http__request_id="dj-1",
        http__route="/login/",
        http__method="POST",
        http__useragent="pytest-agent",
    )
    assert record["usr"]["login"].startswith("anon_")  # hashed, never the raw login


def test_failures_and_success_of_one_account_share_its_id(
    security_events: Capture, accounts: dict[str, Any]
) -> None:
    """Brute-force rules follow one @usr.id from failures to a success: an existing account's failures carry
    its pk, not the hashed login."""
    for _ in range(3):
        call(Client(), "post", "/login/", data={"username": "ada", "password": "wrong"})
    call(Client(), "post", "/login/", data={"username": "ada", "password": "correct horse"})
    ids = {r["usr"]["id"] for r in security_events.records if r["evt"]["name"] == "authentication"}
    assert ids == {str(accounts["ada"].pk)}


def test_login_view_failure_for_an_unknown_account(security_events: Capture) -> None:
    call(Client(), "post", "/login/", data={"username": "mallory", "password": "x"})
    record = security_events.assert_emitted("authn_login_fail", usr__exists=False, evt__reason="unknown_user")
    assert record["usr"]["id"] == record["usr"]["login"]


def test_login_view_success(security_events: Capture, accounts: dict[str, Any]) -> None:
    response = call(Client(), "post", "/login/", data={"username": "ada", "password": "correct horse"})
    assert response.status_code == 302
    security_events.assert_emitted(
        "authn_login_success",
        usr__id=str(accounts["ada"].pk),
        network__client__ip=PEER,
        http__request_id=response["X-Request-ID"],
    )


def test_logout_view(security_events: Capture, accounts: dict[str, Any]) -> None:
    client = Client()
    client.force_login(accounts["ada"])
    call(client, "post", "/logout/")
    record = security_events.assert_emitted(
        "session_logout", usr__id=str(accounts["ada"].pk), network__client__ip=PEER, http__route="/logout/"
    )
    assert record["evt"]["session_id"].startswith("anon_")


def test_authenticate_login_logout_called_by_the_application(
    security_events: Capture, accounts: dict[str, Any]
) -> None:
    client = Client()
    assert (
        call(client, "post", "/api/login/", data={"username": "ada", "password": "nope"}).status_code == 401
    )
    assert (
        call(client, "post", "/api/login/", data={"username": "ada", "password": "correct horse"}).status_code
        == 200
    )
    call(client, "post", "/api/logout/")
    ada = str(accounts["ada"].pk)
    security_events.assert_emitted("authn_login_fail", usr__exists=True, network__client__ip=PEER)
    security_events.assert_emitted("authn_login_success", usr__id=ada, network__client__ip=PEER)
    security_events.assert_emitted("session_logout", usr__id=ada, network__client__ip=PEER)
    request_ids = {r["http"]["request_id"] for r in security_events.records}
    assert len(request_ids) == 3  # one per request, never shared


def test_async_views_with_aauthenticate_and_alogin(accounts: dict[str, Any]) -> None:
    """Under ASGI; Django's AsyncClient always connects from 127.0.0.1, here a trusted proxy."""
    api.configure(trusted_proxies=["127.0.0.1/32"])
    forwarded = {"X-Forwarded-For": PEER}

    async def scenario() -> None:
        client = AsyncClient()
        await client.post(
            "/async/login/",
            {"username": "ada", "password": "bad"},
            headers={**forwarded, "X-Request-ID": "a-1"},
        )
        await client.post(
            "/async/login/", {"username": "ada", "password": "correct horse"}, headers=forwarded
        )

    with capture_events() as events:
        asyncio.run(scenario())
    events.assert_emitted(
        "authn_login_fail", usr__exists=True, network__client__ip=PEER, http__request_id="a-1"
    )
    events.assert_emitted("authn_login_success", usr__id=str(accounts["ada"].pk), network__client__ip=PEER)


def test_anonymous_logout_is_not_an_event(security_events: Capture) -> None:
    call(Client(), "post", "/api/logout/")
    assert security_events.records == []


def test_the_password_is_never_read(security_events: Capture) -> None:
    """Even when a caller sends the signal with unmasked credentials, only the login is used."""
    user_login_failed.send(
        sender="test", credentials={"username": "ada", "password": "hunter2-secret"}, request=None
    )
    record = security_events.assert_emitted("authn_login_fail", usr__exists=True)
    assert "hunter2" not in orjson.dumps(security_events.records).decode()
    assert "network" not in record  # no request, no client IP


def test_a_signal_with_a_request_but_no_middleware_still_gets_the_client_ip(security_events: Capture) -> None:
    request = RequestFactory().post("/elsewhere", REMOTE_ADDR=PEER, HTTP_X_REQUEST_ID="rf-1")
    assert authenticate(request, username="nobody", password="x") is None
    security_events.assert_emitted(
        "authn_login_fail", usr__exists=False, network__client__ip=PEER, http__request_id="rf-1"
    )
    assert api.current_request() is None


def test_account_lookup_failure_leaves_exists_unknown(security_events: Capture) -> None:
    """From an event loop the ORM refuses to run: usr.exists is left out, nothing is raised."""

    async def from_event_loop() -> None:
        user_login_failed.send(sender="test", credentials={"username": "ada"}, request=None)

    asyncio.run(from_event_loop())
    record = security_events.assert_emitted("authn_login_fail")
    assert "exists" not in record["usr"] and "reason" not in record["evt"]


# --- the user read at response time, route templates, status events ----------------------------------------


def test_user_authenticated_inside_the_view_is_the_one_recorded(
    security_events: Capture, accounts: dict[str, Any]
) -> None:
    """Django REST framework authenticates in the view: the 403 event must name that user."""
    call(Client(), "get", "/token-auth/", HTTP_X_TOKEN="root")
    security_events.assert_emitted("authz_fail", usr__id=str(accounts["root"].pk), http__status_code=403)


def test_permission_denied_records_authz_fail_with_the_session_user(
    security_events: Capture, accounts: dict[str, Any]
) -> None:
    client = Client()
    client.force_login(accounts["ada"])
    assert call(client, "get", "/admin-only/").status_code == 403
    security_events.assert_emitted(
        "authz_fail",
        usr__id=str(accounts["ada"].pk),
        evt__resource="/admin-only/",
        http__route="/admin-only/",
        http__status_code=403,
    )


def test_route_template(security_events: Capture) -> None:
    call(Client(), "get", "/orders/42/")
    record = security_events.assert_emitted(
        "sensitive_read", http__route="/orders/<int:order_id>/", http__url_details__path="/orders/42/"
    )
    assert "usr" not in record  # AnonymousUser is no user


def test_a_request_that_emits_nothing_never_touches_the_session() -> None:
    response = call(Client(), "get", "/status/200/")
    assert "Cookie" not in response.get("Vary", "")


def test_429_is_opt_in_through_settings(security_events: Capture) -> None:
    call(Client(), "get", "/status/429/")
    assert security_events.records == []
    with override_settings(SECEVENTS={"status_events": {429: "excess_rate_limit_exceeded", 403: None}}):
        call(Client(), "get", "/status/429/")
        call(Client(), "get", "/denied/")
    security_events.assert_emitted("excess_rate_limit_exceeded", http__status_code=429)
    security_events.assert_not_emitted("authz_fail", http__status_code=403)


def test_401_is_split_by_credential_and_each_part_is_a_setting(security_events: Capture) -> None:
    call(Client(), "get", "/status/401/")
    security_events.assert_emitted("authz_fail", evt__reason="unauthenticated", http__status_code=401)
    security_events.clear()
    call(Client(), "get", "/status/401/", HTTP_AUTHORIZATION="Token forged")
    record = security_events.assert_emitted("authn_login_fail", evt__reason="invalid_token")
    assert len(security_events.records) == 1 and "forged" not in str(record)
    security_events.clear()
    options = {"record_unauthenticated": False, "credential_headers": ["Authorization", "X-Api-Key"]}
    with override_settings(SECEVENTS=options):
        call(Client(), "get", "/status/401/")
        assert security_events.records == []
        call(Client(), "get", "/status/401/", HTTP_X_API_KEY="k-123")
    security_events.assert_emitted("authn_login_fail", evt__reason="invalid_token")
    security_events.clear()
    with override_settings(SECEVENTS={"status_events": {401: None}}):
        call(Client(), "get", "/status/401/", HTTP_AUTHORIZATION="Token forged")
    assert security_events.records == []


def test_a_token_in_a_cookie_or_the_query_is_a_credential_when_declared(security_events: Capture) -> None:
    """`credential_headers` entries `cookie:<name>` and `query:<name>` hold on Django as on ASGI and WSGI: a
    401 to a forged token kept there is a bad token, and its value is never written."""
    options = {"credential_headers": ["Authorization", "cookie:access-token", "query:api_key"]}
    with override_settings(SECEVENTS=options):
        call(Client(), "get", "/status/401/?api_key=forged-in-query")
        call(Client(HTTP_COOKIE="access-token=forged-in-cookie"), "get", "/status/401/")
        call(Client(), "get", "/status/401/?other=1")
    reasons = [r["evt"]["reason"] for r in security_events.records]
    assert reasons == ["invalid_token", "invalid_token", "unauthenticated"]
    assert "forged-in" not in str(security_events.records)


def test_bad_status_events_setting_fails_at_start_up() -> None:
    with override_settings(SECEVENTS={"status_events": {403: "typo"}}), pytest.raises(api.ConfigurationError):
        SecurityEventsMiddleware(lambda request: None)


def test_generated_request_id_is_echoed(security_events: Capture) -> None:
    response = call(Client(), "get", "/denied/", HTTP_X_REQUEST_ID="not valid!")
    assert HEX32.fullmatch(response["X-Request-ID"])
    security_events.assert_emitted("authz_fail", http__request_id=response["X-Request-ID"])


# --- streaming: the body is produced after the middleware returned ----------------------------------------


def test_events_emitted_while_streaming_carry_the_request(security_events: Capture) -> None:
    response = call(Client(), "get", "/stream/7/", HTTP_X_REQUEST_ID="stream-7")
    assert b"".join(response.streaming_content) == b"first,second"
    security_events.assert_emitted(
        "data_export", evt__object="report-7", network__client__ip=PEER, http__request_id="stream-7"
    )
    assert api.current_request() is None


def test_events_emitted_while_streaming_asynchronously_carry_the_request() -> None:
    api.configure(trusted_proxies=["127.0.0.1/32"])

    async def scenario() -> bytes:
        response = await AsyncClient().get(
            "/astream/", headers={"X-Request-ID": "as-1", "X-Forwarded-For": PEER}
        )
        return b"".join([chunk async for chunk in response.streaming_content])

    with capture_events() as events:
        assert asyncio.run(scenario()) == b"first,second"
    events.assert_emitted("data_export", network__client__ip=PEER, http__request_id="as-1")


# --- failures stay out of the application ------------------------------------------------------------------


def test_a_broken_configuration_never_reaches_the_application(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECEVENTS_METRICS", "not-a-backend")
    set_config(None)
    client = Client()
    assert call(client, "post", "/login/", data={"username": "ada", "password": "x"}).status_code == 200
    assert (
        call(client, "post", "/login/", data={"username": "ada", "password": "correct horse"}).status_code
        == 302
    )
    assert call(client, "get", "/admin-only/").status_code == 403
    assert call(client, "post", "/logout/").status_code == 200


# --- the spoofing matrix ------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::graffer_secevents.ForwardedHeaderIgnoredWarning")
def test_forged_address_never_wins(spoof_case: Any) -> None:
    api.configure(**spoof_case.configure_kwargs())
    headers = spoof_case.headers()
    extra = {"REMOTE_ADDR": spoof_case.peer}
    if "X-Forwarded-For" in headers:
        extra["HTTP_X_FORWARDED_FOR"] = headers["X-Forwarded-For"]
    if "Forwarded" in headers:
        extra["HTTP_FORWARDED"] = headers["Forwarded"]
    with capture_events() as events:
        assert Client().get("/denied/", **extra).status_code == 403
    spoof_case.check(events.records)
