"""Django REST framework, simplejwt and DRF's token auth through their own views, with no event code.

Every test drives one flow with Django's test client and asserts the request's records: their types and count
(exactly one per attempt), ``usr.id``/``usr.exists``/``evt.reason``, the client IP and the request id, and
that no raw e-mail or password is in any written line.
"""

from __future__ import annotations

import base64
import itertools
from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.test import Client, override_settings

from graffer_secevents.testing import Capture

pytest.importorskip("rest_framework_simplejwt")

from rest_framework.authtoken.models import Token
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

WITH_401 = override_settings(SECEVENTS_STATUS_EVENTS={401: "authz_fail"})
_ids = itertools.count()
SECRETS = (b"correct horse", b"admin secret", b"wrong horse", b"inactive pass", b"ada@example.com")


def send(
    method: str, path: str, data: Any = None, *, client: Client | None = None, **headers: str
) -> tuple[Any, str, str]:
    """One request from its own client IP with its own request id; returns (response, ip, request id)."""
    n = next(_ids)
    ip, rid = f"198.51.100.{n % 250 + 1}", f"drf-{n}"
    client = client or Client()
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    response = getattr(client, method)(
        path, data, content_type="application/json", REMOTE_ADDR=ip, HTTP_X_REQUEST_ID=rid, **extra
    )
    return response, ip, rid


def of_request(capture: Capture, rid: str) -> list[dict[str, Any]]:
    records = [r for r in capture.records if r.get("http", {}).get("request_id") == rid]
    for line in capture.lines:
        assert not any(secret in line for secret in SECRETS), line
    return records


def only(capture: Capture, rid: str, evt_type: str, ip: str, **usr: Any) -> dict[str, Any]:
    """The request wrote exactly one record, of ``evt_type``, with its IP and the ``usr`` fields given."""
    records = of_request(capture, rid)
    assert [r["evt"]["type"] for r in records] == [evt_type], records
    record = records[0]
    assert record["network"]["client"]["ip"] == ip
    for key, value in usr.items():
        assert record["usr"].get(key) == value, (key, record["usr"])
    return record


def pair(username: str = "ada", password: str = "correct horse") -> dict[str, str]:
    response, _, _ = send("post", "/drf/token/", {"username": username, "password": password})
    assert response.status_code == 200, response.content
    return response.json()  # type: ignore[no-any-return]


# --- simplejwt: obtain ----------------------------------------------------------------------------------------


def test_jwt_obtain_success_is_one_login_with_the_account_id(security_events: Capture, accounts: Any) -> None:
    response, ip, rid = send("post", "/drf/token/", {"username": "ada", "password": "correct horse"})
    assert response.status_code == 200
    only(security_events, rid, "authn_login_success", ip, id=str(accounts["ada"].pk))


def test_jwt_sliding_obtain_success(security_events: Capture, accounts: Any) -> None:
    response, ip, rid = send("post", "/drf/token/sliding/", {"username": "ada", "password": "correct horse"})
    assert response.status_code == 200 and "token" in response.json()
    only(security_events, rid, "authn_login_success", ip, id=str(accounts["ada"].pk))


@WITH_401
def test_jwt_obtain_wrong_password_is_one_failure_with_the_same_id(
    security_events: Capture, accounts: Any
) -> None:
    """Django's user_login_failed fires inside the serializer; the 401 rule is on: still one record."""
    response, ip, rid = send("post", "/drf/token/", {"username": "ada", "password": "wrong horse"})
    assert response.status_code == 401
    record = only(security_events, rid, "authn_login_fail", ip, id=str(accounts["ada"].pk), exists=True)
    assert record["evt"]["reason"] == "invalid_credentials"
    assert record["usr"]["login"].startswith("anon_")


def test_jwt_obtain_unknown_account(security_events: Capture) -> None:
    response, ip, rid = send("post", "/drf/token/", {"username": "mallory", "password": "x"})
    assert response.status_code == 401
    record = only(security_events, rid, "authn_login_fail", ip, exists=False)
    assert record["evt"]["reason"] == "unknown_user"
    assert record["usr"]["id"] == record["usr"]["login"]  # the hashed login (docs/record.md)


def test_jwt_obtain_inactive_account(security_events: Capture, accounts: Any) -> None:
    from django.contrib.auth import get_user_model

    inactive = get_user_model().objects.get(username="ina")
    response, ip, rid = send("post", "/drf/token/", {"username": "ina", "password": "inactive pass"})
    assert response.status_code == 401
    record = only(security_events, rid, "authn_login_fail", ip, id=str(inactive.pk), exists=True)
    assert record["evt"]["reason"] == "account_disabled"


@override_settings(SECEVENTS_STATUS_EVENTS={429: "excess_rate_limit_exceeded"})
def test_throttled_token_login_is_login_fail_max(security_events: Capture, accounts: Any) -> None:
    """DRF's throttle refuses the 3rd attempt from one address before the password is checked: one
    ``authn_login_fail_max`` and no 429 event besides."""
    client, ip = Client(), "198.51.100.251"
    for password in ("wrong horse", "correct horse"):
        client.post("/drf/token/throttled/", {"username": "ada", "password": password}, REMOTE_ADDR=ip)
    response = client.post(
        "/drf/token/throttled/",
        {"username": "ada", "password": "correct horse"},
        content_type="application/json",
        REMOTE_ADDR=ip,
        HTTP_X_REQUEST_ID="drf-throttled",
    )
    assert response.status_code == 429
    record = only(security_events, "drf-throttled", "authn_login_fail_max", ip, id=str(accounts["ada"].pk))
    assert record["usr"]["exists"] is True and record["usr"]["login"].startswith("anon_")


# --- simplejwt: refresh, reuse, logout ------------------------------------------------------------------------


@WITH_401
def test_garbage_refresh_token_is_one_bad_credential(security_events: Capture) -> None:
    response, ip, rid = send("post", "/drf/token/refresh/", {"refresh": "not-a-token"})
    assert response.status_code == 401
    record = only(security_events, rid, "authn_login_fail", ip)
    assert record["evt"]["reason"] == "invalid_token"
    assert "usr" not in record


def test_expired_refresh_token_is_a_bad_credential(security_events: Capture, accounts: Any) -> None:
    token = RefreshToken.for_user(accounts["ada"])
    token.set_exp(lifetime=-timedelta(minutes=1))
    response, ip, rid = send("post", "/drf/token/refresh/", {"refresh": str(token)})
    assert response.status_code == 401
    assert only(security_events, rid, "authn_login_fail", ip)["evt"]["reason"] == "invalid_token"


@WITH_401
def test_rotated_refresh_token_used_again_is_token_reuse(security_events: Capture, accounts: Any) -> None:
    old = pair()["refresh"]
    response, _, rid = send("post", "/drf/token/refresh/", {"refresh": old})
    assert response.status_code == 200 and response.json()["refresh"] != old  # rotated, old one blacklisted
    assert of_request(security_events, rid) == []  # a refresh is not an event
    response, ip, rid = send("post", "/drf/token/refresh/", {"refresh": old})
    assert response.status_code == 401
    record = only(security_events, rid, "authn_token_reuse", ip, id=str(accounts["ada"].pk))
    assert record["evt"]["outcome"] == "failure"
    jti = RefreshToken(old, verify=False)["jti"]
    assert record["evt"]["token_id"] != jti and record["evt"]["token_id"].startswith("anon_")  # hashed


def test_blacklist_view_is_a_logout_and_a_second_use_is_reuse(
    security_events: Capture, accounts: Any
) -> None:
    refresh = pair()["refresh"]
    response, ip, rid = send("post", "/drf/token/blacklist/", {"refresh": refresh})
    assert response.status_code == 200
    only(security_events, rid, "session_logout", ip, id=str(accounts["ada"].pk))
    response, ip, rid = send("post", "/drf/token/refresh/", {"refresh": refresh})
    only(security_events, rid, "authn_token_reuse", ip, id=str(accounts["ada"].pk))


# --- a JWT on a protected view --------------------------------------------------------------------------------


def test_valid_jwt_on_a_protected_view_writes_nothing(security_events: Capture, accounts: Any) -> None:
    access = pair()["access"]
    response, _, rid = send("get", "/drf/me/", authorization=f"Bearer {access}")
    assert response.status_code == 200 and response.json() == {"id": accounts["ada"].pk}
    assert of_request(security_events, rid) == []


@WITH_401
@pytest.mark.parametrize("kind", ["forged", "expired", "garbage"])
def test_bad_jwt_on_a_protected_view_is_one_event(security_events: Capture, accounts: Any, kind: str) -> None:
    """One authn_login_fail and no second event from the (enabled) 401 status rule."""
    good = AccessToken.for_user(accounts["ada"])
    if kind == "forged":
        token = jwt.encode({**good.payload}, "not-the-server-key-" + "y" * 32, algorithm="HS256")
    elif kind == "expired":
        good.set_exp(lifetime=-timedelta(minutes=1))
        token = str(good)
    else:
        token = "abc.def.ghi"
    response, ip, rid = send("get", "/drf/me/", authorization=f"Bearer {token}")
    assert response.status_code == 401
    assert only(security_events, rid, "authn_login_fail", ip)["evt"]["reason"] == "invalid_token"


def test_permission_denial_is_authz_fail_with_the_authenticated_user(
    security_events: Capture, accounts: Any
) -> None:
    access = pair()["access"]
    response, ip, rid = send("get", "/drf/admin/", authorization=f"Bearer {access}")
    assert response.status_code == 403
    only(security_events, rid, "authz_fail", ip, id=str(accounts["ada"].pk))


# --- DRF's token auth and Basic -----------------------------------------------------------------------------


def test_obtain_auth_token_success_and_failure(security_events: Capture, accounts: Any) -> None:
    response, ip, rid = send("post", "/drf/auth-token/", {"username": "ada", "password": "correct horse"})
    assert response.status_code == 200
    only(security_events, rid, "authn_login_success", ip, id=str(accounts["ada"].pk))
    response, ip, rid = send("post", "/drf/auth-token/", {"username": "ada", "password": "wrong horse"})
    assert response.status_code == 400
    record = only(security_events, rid, "authn_login_fail", ip, id=str(accounts["ada"].pk), exists=True)
    assert record["evt"]["reason"] == "invalid_credentials"


@WITH_401
def test_invalid_drf_token_is_one_bad_credential(security_events: Capture, accounts: Any) -> None:
    key = Token.objects.get_or_create(user=accounts["ada"])[0].key
    response, _, rid = send("get", "/drf/me/", authorization=f"Token {key}")
    assert response.status_code == 200 and of_request(security_events, rid) == []
    response, ip, rid = send("get", "/drf/me/", authorization="Token 0123456789abcdef")
    assert response.status_code == 401
    assert only(security_events, rid, "authn_login_fail", ip)["evt"]["reason"] == "invalid_token"


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@WITH_401
def test_basic_auth_success_and_wrong_password(security_events: Capture, accounts: Any) -> None:
    response, ip, rid = send("get", "/drf/me/", authorization=basic("ada", "correct horse"))
    assert response.status_code == 200
    only(security_events, rid, "authn_login_success", ip, id=str(accounts["ada"].pk))
    response, ip, rid = send("get", "/drf/me/", authorization=basic("ada", "wrong horse"))
    assert response.status_code == 401
    record = only(security_events, rid, "authn_login_fail", ip, id=str(accounts["ada"].pk), exists=True)
    assert record["evt"]["reason"] == "invalid_credentials"


def test_session_csrf_failure_is_authz_fail_with_the_session_user(
    security_events: Capture, accounts: Any
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(accounts["ada"])
    response, ip, rid = send("post", "/drf/session-write/", {}, client=client)
    assert response.status_code == 403 and b"CSRF" in response.content
    record = only(security_events, rid, "authz_fail", ip, id=str(accounts["ada"].pk))
    assert record["evt"]["resource"] == "/drf/session-write/"


@WITH_401
def test_an_inactive_accounts_valid_jwt_is_account_disabled(security_events: Capture) -> None:
    from django.contrib.auth import get_user_model

    token = AccessToken.for_user(get_user_model().objects.get(username="ina"))
    response, ip, rid = send("get", "/drf/me/", authorization=f"Bearer {token}")
    assert response.status_code == 401
    assert only(security_events, rid, "authn_login_fail", ip)["evt"]["reason"] == "account_disabled"


HOSTILE = ("ada\n\x01\u202e" * 500)[:3000]  # 3000 characters with newlines and control characters


def test_a_hostile_login_is_valid_input_even_in_strict_mode(security_events: Capture) -> None:
    """3000 characters of control characters are hashed whole (nothing is cut, so nothing to raise for):
    strict mode raises only where the library would have to change the input."""
    response, ip, rid = send("post", "/drf/token/", {"username": HOSTILE, "password": "x"})
    assert response.status_code == 401
    record = only(security_events, rid, "authn_login_fail", ip, exists=False)
    assert record["usr"]["login"].startswith("anon_") and "errors" not in record["secevents"]


def test_a_hostile_login_is_one_annotated_single_line_record_otherwise(security_events: Capture) -> None:
    with security_events.lenient():
        response, ip, rid = send("post", "/drf/token/", {"username": HOSTILE, "password": "x"})
    assert response.status_code == 401  # the view answered as usual
    record = only(security_events, rid, "authn_login_fail", ip, exists=False)
    # Hashed before any cut, so two long logins never share a pseudonym: nothing to note.
    assert record["usr"]["login"].startswith("anon_") and len(record["usr"]["login"]) == 37
    assert "errors" not in record["secevents"]
    assert all(line.count(b"\n") == 1 for line in security_events.lines)
