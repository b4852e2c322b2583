"""django-allauth (``allauth.account``, ``allauth.mfa``) through its own views, with no event code.

Each flow is one or two requests with Django's test client; each request's records are asserted: types and
count, ``usr.id``/``usr.exists``/``evt.reason``, client IP, request id, and no raw e-mail or password.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from graffer_secevents.testing import Capture

pytest.importorskip("allauth.mfa")

from allauth.account.forms import default_token_generator
from allauth.account.utils import user_pk_to_url_str
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
    yield_hotp_counters_from_time,
)

_ids = itertools.count()
PASSWORD = "allauth pass 1"
NEW_PASSWORD = "allauth pass 2"


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> Iterator[None]:
    """allauth counts attempts in the cache: every test starts from none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def member() -> Any:
    """A fresh account per test (tests change passwords), with its e-mail."""
    n = next(_ids)
    return get_user_model().objects.create_user(f"member{n}", f"member{n}@example.org", PASSWORD)


def send(client: Client, method: str, path: str, data: Any = None) -> tuple[Any, str, str]:
    n = next(_ids)
    ip, rid = f"192.0.2.{n % 250 + 1}", f"allauth-{n}"
    response = getattr(client, method)(path, data or {}, REMOTE_ADDR=ip, HTTP_X_REQUEST_ID=rid)
    return response, ip, rid


def of_request(capture: Capture, rid: str, *secrets: str) -> list[dict[str, Any]]:
    for line in capture.lines:
        for secret in (PASSWORD, NEW_PASSWORD, *secrets):
            assert secret.encode() not in line, line
    return [r for r in capture.records if r.get("http", {}).get("request_id") == rid]


def types(records: list[dict[str, Any]]) -> list[str]:
    return [r["evt"]["type"] for r in records]


def login(client: Client, login: str, password: str) -> tuple[Any, str, str]:
    return send(client, "post", reverse("account_login"), {"login": login, "password": password})


# --- login by e-mail and by username --------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["email", "username"])
def test_login_success_and_wrong_password_share_the_account_id(
    security_events: Capture, member: Any, by: str
) -> None:
    typed = member.email if by == "email" else member.username
    response, ip, rid = login(Client(), typed, "wrong")
    assert response.status_code == 200  # the form again
    [fail] = of_request(security_events, rid, member.email)
    assert fail["evt"]["type"] == "authn_login_fail"
    assert fail["usr"]["id"] == str(member.pk) and fail["usr"]["exists"] is True
    assert fail["evt"]["reason"] == "invalid_credentials"
    assert fail["usr"]["login"].startswith("anon_") and fail["network"]["client"]["ip"] == ip
    response, ip, rid = login(Client(), typed, PASSWORD)
    assert response.status_code == 302
    [ok] = of_request(security_events, rid, member.email)
    assert ok["evt"]["type"] == "authn_login_success" and ok["usr"]["id"] == str(member.pk)
    assert ok["network"]["client"]["ip"] == ip


@pytest.mark.parametrize("typed", ["nobody@example.org", "nobody"])
def test_login_unknown_account(security_events: Capture, typed: str) -> None:
    _, ip, rid = login(Client(), typed, "whatever")
    [fail] = of_request(security_events, rid, "nobody@example.org")
    assert fail["evt"]["type"] == "authn_login_fail" and fail["usr"]["exists"] is False
    assert fail["evt"]["reason"] == "unknown_user" and fail["usr"]["id"] == fail["usr"]["login"]
    assert fail["network"]["client"]["ip"] == ip


def test_login_inactive_account(security_events: Capture) -> None:
    inactive = get_user_model().objects.get(username="ina")
    _, ip, rid = login(Client(), "ina@example.com", "inactive pass")
    [fail] = of_request(security_events, rid, "ina@example.com")
    assert fail["evt"]["type"] == "authn_login_fail"
    assert fail["usr"]["id"] == str(inactive.pk) and fail["usr"]["exists"] is True
    assert fail["evt"]["reason"] == "account_disabled" and fail["network"]["client"]["ip"] == ip


def test_rate_limited_attempt_is_login_fail_max(security_events: Capture, member: Any) -> None:
    """ACCOUNT_RATE_LIMITS login_failed is 3 per key here: the 4th attempt is refused before the password."""
    for _ in range(3):
        login(Client(), member.email, "wrong")
    _, ip, rid = login(Client(), member.email, PASSWORD)  # even the right password is refused now
    [limited] = of_request(security_events, rid, member.email)
    assert limited["evt"]["type"] == "authn_login_fail_max"
    assert limited["evt"]["max_limit"] == 3
    assert limited["usr"]["id"] == str(member.pk) and limited["usr"]["exists"] is True
    assert limited["network"]["client"]["ip"] == ip
    assert len(security_events.find("authn_login_fail", usr__id=str(member.pk))) == 3


def test_logout(security_events: Capture, member: Any) -> None:
    client = Client()
    login(client, member.username, PASSWORD)
    _, ip, rid = send(client, "post", reverse("account_logout"))
    [out] = of_request(security_events, rid)
    assert out["evt"]["type"] == "session_logout" and out["usr"]["id"] == str(member.pk)
    assert out["network"]["client"]["ip"] == ip


@pytest.mark.parametrize("by", ["email", "username"])
def test_headless_app_api_login_failure_and_success(security_events: Capture, member: Any, by: str) -> None:
    """allauth.headless (the "app" client, JSON) goes through the same adapter and signals."""
    url = "/_allauth/app/v1/auth/login"
    typed = member.email if by == "email" else member.username
    for password, status, evt_type in (
        (("wrong", 400, "authn_login_fail")),
        (PASSWORD, 200, "authn_login_success"),
    ):
        n = next(_ids)
        ip, rid = f"192.0.2.{n % 250 + 1}", f"headless-{n}"
        response = Client().post(
            url,
            {by: typed, "password": password},
            content_type="application/json",
            REMOTE_ADDR=ip,
            HTTP_X_REQUEST_ID=rid,
        )
        assert response.status_code == status, response.content[:300]
        [record] = of_request(security_events, rid, member.email)
        assert record["evt"]["type"] == evt_type and record["usr"]["id"] == str(member.pk)
        assert record["network"]["client"]["ip"] == ip


# --- signup, reset, change -----------------------------------------------------------------------------------


def test_signup_then_its_auto_login_once_with_the_real_id(security_events: Capture) -> None:
    n = next(_ids)
    data = {
        "email": f"new{n}@example.org",
        "username": f"new{n}",
        "password1": PASSWORD,
        "password2": PASSWORD,
    }
    response, ip, rid = send(Client(), "post", reverse("account_signup"), data)
    assert response.status_code == 302, response.content[:500]
    records = of_request(security_events, rid, data["email"])
    assert types(records) == ["user_signup", "authn_login_success"]
    pk = str(get_user_model().objects.get(username=data["username"]).pk)
    assert {r["usr"]["id"] for r in records} == {pk}
    assert all(r["network"]["client"]["ip"] == ip for r in records)


@pytest.mark.parametrize("known", [True, False])
def test_password_reset_request_says_whether_the_account_exists(
    security_events: Capture, member: Any, known: bool
) -> None:
    email = member.email if known else "unknown@example.org"
    response, ip, rid = send(Client(), "post", reverse("account_reset_password"), {"email": email})
    assert response.status_code == 302
    [req] = of_request(security_events, rid, email)
    assert req["evt"]["type"] == "authn_password_reset_request"
    assert req["usr"]["exists"] is known and req["network"]["client"]["ip"] == ip
    assert req["usr"]["email"].startswith("anon_")
    assert req["usr"].get("id") == (str(member.pk) if known else None)


def test_password_reset_completed_and_a_bad_key(security_events: Capture, member: Any) -> None:
    client = Client()
    uid = user_pk_to_url_str(member)
    bad = reverse("account_reset_password_from_key", kwargs={"uidb36": uid, "key": "bad-key"})
    _, ip, rid = send(client, "get", bad)
    [fail] = of_request(security_events, rid)
    assert fail["evt"]["type"] == "authn_password_reset" and fail["evt"]["reason"] == "invalid_reset_key"
    assert fail["evt"]["outcome"] == "failure" and fail["status"] == "warning"
    assert fail["usr"]["id"] == str(member.pk)

    key = default_token_generator.make_token(member)
    response, _, _ = send(
        client, "get", reverse("account_reset_password_from_key", kwargs={"uidb36": uid, "key": key})
    )
    assert response.status_code == 302  # to the URL without the key
    data = {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    response, ip, rid = send(client, "post", response["Location"], data)
    assert response.status_code == 302
    [done] = of_request(security_events, rid)
    assert done["evt"]["type"] == "authn_password_reset" and done["usr"]["id"] == str(member.pk)
    assert done["network"]["client"]["ip"] == ip


def test_password_change_right_and_wrong_old_password_never_a_login(
    security_events: Capture, member: Any
) -> None:
    client = Client()
    login(client, member.username, PASSWORD)
    url = reverse("account_change_password")
    data = {"oldpassword": "not it", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    _, ip, rid = send(client, "post", url, data)
    assert types(of_request(security_events, rid)) == ["authn_password_change_fail"]
    assert of_request(security_events, rid)[0]["usr"]["id"] == str(member.pk)
    _, ip, rid = send(client, "post", url, {**data, "oldpassword": PASSWORD})
    records = of_request(security_events, rid)
    assert types(records) == ["authn_password_change"], records
    assert records[0]["usr"]["id"] == str(member.pk) and records[0]["network"]["client"]["ip"] == ip


# --- MFA -----------------------------------------------------------------------------------------------------


def test_totp_challenge_failed_then_passed(security_events: Capture, member: Any) -> None:
    secret = generate_totp_secret()
    TOTP.activate(member, secret)
    client = Client()
    response, _, rid = login(client, member.username, PASSWORD)
    assert response.status_code == 302 and response["Location"] == reverse("mfa_authenticate")
    assert of_request(security_events, rid) == []  # the password step is not a login yet

    _, ip, rid = send(client, "post", reverse("mfa_authenticate"), {"code": "000000"})
    [failed] = of_request(security_events, rid)
    assert failed["evt"]["type"] == "authn_mfa_challenge" and failed["evt"]["outcome"] == "failure"
    assert failed["evt"]["method"] == "totp" and failed["usr"]["id"] == str(member.pk)
    assert failed["network"]["client"]["ip"] == ip

    code = format_hotp_value(hotp_value(secret, next(yield_hotp_counters_from_time())))
    response, ip, rid = send(client, "post", reverse("mfa_authenticate"), {"code": code})
    assert response.status_code == 302
    records = of_request(security_events, rid)
    assert types(records) == ["authn_mfa_challenge", "authn_login_success"]
    assert records[0]["evt"]["outcome"] == "success"
    assert {r["usr"]["id"] for r in records} == {str(member.pk)}
    assert {r["network"]["client"]["ip"] for r in records} == {ip}
