"""django-impersonate and django-loginas, installed for real and wired only as their own docs say (the app in
INSTALLED_APPS, django-impersonate's middleware, their URLs): start and end are events, and every event of
the impersonated session names both the effective account (`usr`) and the real one (`impersonator.usr`),
with no code of the application's. A session value the package would not accept names no impersonator."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from graffer_secevents.detect import default_rules, evaluate
from graffer_secevents.testing import Capture

pytest.importorskip("impersonate")
pytest.importorskip("loginas")

_ids = itertools.count()
PASSWORD = "impersonation pass 7"
SUPPORT_IP = "198.51.100.78"


def account(**flags: Any) -> Any:
    n = next(_ids)
    return get_user_model().objects.create_user(f"im{n}", f"im{n}@example.org", PASSWORD, **flags)


@pytest.fixture(autouse=True)
def stacks_wiring() -> Any:
    """django-impersonate's middleware after Django's authentication, and django-su's backend, as their docs
    ask (this module only: the middleware reads the session of every request, which other modules' tests
    check nothing does; django-su's backend has no `aauthenticate`, which other modules' async logins need)."""
    middleware = [*settings.MIDDLEWARE, "impersonate.middleware.ImpersonateMiddleware"]
    backends = [*settings.AUTHENTICATION_BACKENDS, "django_su.backends.SuBackend"]
    with override_settings(MIDDLEWARE=middleware, AUTHENTICATION_BACKENDS=backends):
        yield


@pytest.fixture
def support(security_events: Capture) -> tuple[Client, Any]:
    engineer = account(is_superuser=True, is_staff=True)
    client = Client(REMOTE_ADDR=SUPPORT_IP)
    assert client.login(username=engineer.username, password=PASSWORD)
    security_events.clear()
    return client, engineer


def _types(capture: Capture) -> list[str]:
    return [r["evt"]["type"] for r in capture.records]


def _in_between(capture: Capture, client: Client, engineer: Any, customer: Any) -> None:
    capture.clear()
    assert client.get("/orders/7/").status_code == 200  # a view that emits sensitive_read
    assert client.get("/admin-only/").status_code == 403  # the customer may not: authz_fail
    assert _types(capture) == ["sensitive_read", "authz_fail"]
    for record in capture.records:
        assert record["usr"]["id"] == str(customer.pk)  # the effective account
        assert record["impersonator"] == {"usr": {"id": str(engineer.pk)}}  # the real one


def _after(capture: Capture, client: Client, engineer: Any) -> None:
    capture.clear()
    assert client.get("/orders/8/").status_code == 200
    after = capture.assert_emitted("sensitive_read")
    assert after["usr"]["id"] == str(engineer.pk) and "impersonator" not in after


def _switch(record: dict[str, Any], evt_type: str, engineer: Any, customer: Any) -> None:
    assert record["evt"]["type"] == evt_type
    assert record["usr"]["id"] == str(engineer.pk)
    assert record["target"]["usr"]["id"] == str(customer.pk)
    assert record["network"]["client"]["ip"] == SUPPORT_IP
    assert "impersonator" not in record  # the real account is usr itself here


# --- django-impersonate ------------------------------------------------------------------------------------


def test_impersonate_start_events_in_between_and_stop(
    security_events: Capture, support: tuple[Client, Any]
) -> None:
    client, engineer = support
    customer = account()
    security_events.clear()

    assert client.get(f"/impersonate/{customer.pk}/", HTTP_X_REQUEST_ID="im-start").status_code == 302
    [start] = security_events.records
    _switch(start, "authn_impersonation_start", engineer, customer)
    assert start["evt"]["target_role"] == "user"
    assert start["http"]["request_id"] == "im-start"

    _in_between(security_events, client, engineer, customer)

    security_events.clear()
    assert client.get("/impersonate/stop/").status_code == 302
    [end] = security_events.records
    _switch(end, "authn_impersonation_end", engineer, customer)

    _after(security_events, client, engineer)


def test_impersonate_logging_out_ends_the_impersonation_once(
    security_events: Capture, support: tuple[Client, Any]
) -> None:
    client, engineer = support
    customer = account()
    assert client.get(f"/impersonate/{customer.pk}/").status_code == 302
    security_events.clear()
    assert client.post("/logout/").status_code == 200  # Django's LogoutView, not django-impersonate's stop
    assert _types(security_events) == ["session_logout", "authn_impersonation_end"]
    logout, end = security_events.records
    assert logout["usr"]["id"] == str(customer.pk) and logout["impersonator"]["usr"]["id"] == str(engineer.pk)
    _switch(end, "authn_impersonation_end", engineer, customer)
    assert end["usr"]["login"].startswith("anon_")  # the account itself, hashed as usr.login always is


def test_impersonating_a_staff_account_names_its_role_for_the_rule(
    security_events: Capture, support: tuple[Client, Any]
) -> None:
    client, _ = support
    staff = account(is_staff=True)
    assert client.get(f"/impersonate/{staff.pk}/").status_code == 302
    start = security_events.assert_emitted("authn_impersonation_start")
    assert start["evt"]["target_role"] == "staff"
    [signal] = evaluate(default_rules(only=["admin_impersonated"]), security_events.records)
    assert dict(signal.group) == {"usr.id": start["usr"]["id"]}


def test_impersonate_a_forged_session_value_names_no_impersonator(security_events: Capture) -> None:
    """A plain account whose session names another (django-impersonate refuses it: not staff) acts as itself."""
    plain, other = account(), account()
    client = Client(REMOTE_ADDR=SUPPORT_IP)
    assert client.login(username=plain.username, password=PASSWORD)
    assert client.get(f"/impersonate/{other.pk}/").status_code == 302  # refused (sent to the login page)
    session = client.session
    session["_impersonate"] = other.pk
    session.save()
    security_events.clear()
    assert client.get("/orders/9/").status_code == 200
    record = security_events.assert_emitted("sensitive_read")
    assert record["usr"]["id"] == str(plain.pk) and "impersonator" not in record
    assert all(r["evt"]["type"] != "authn_impersonation_start" for r in security_events.records)


def test_impersonate_an_expired_session_names_no_impersonator(
    security_events: Capture, support: tuple[Client, Any]
) -> None:
    """Past django-impersonate's MAX_DURATION its middleware stops switching: so do the events."""
    client, _ = support
    customer = account()
    with override_settings(IMPERSONATE={"MAX_DURATION": 60}):
        assert client.get(f"/impersonate/{customer.pk}/").status_code == 302
        session = client.session
        session["_impersonate_start"] = time.time() - 3600
        session.save()
        security_events.clear()
        assert client.get("/orders/10/").status_code == 302  # django-impersonate sends it to its stop view
        assert all("impersonator" not in r for r in security_events.records)


# --- django-loginas -----------------------------------------------------------------------------------------


def test_loginas_start_events_in_between_and_logout(
    security_events: Capture, support: tuple[Client, Any]
) -> None:
    client, engineer = support
    customer = account()
    security_events.clear()

    response = client.post(f"/admin/login/user/{customer.pk}/", {"reason": "ticket-4711"})
    assert response.status_code == 302
    assert _types(security_events) == ["authz_admin", "authn_login_success", "authn_impersonation_start"]
    entry, switch, start = security_events.records
    # django-loginas's own admin log entry is the engineer's, before the switch
    assert entry["usr"]["id"] == str(engineer.pk) and "impersonator" not in entry
    # the switch logs the customer in: marked as not the customer's own login
    assert switch["usr"]["id"] == str(customer.pk)
    assert switch["impersonator"] == {"usr": {"id": str(engineer.pk)}}
    _switch(start, "authn_impersonation_start", engineer, customer)
    assert start["evt"]["target_role"] == "user" and start["evt"]["reason"] == "ticket-4711"

    _in_between(security_events, client, engineer, customer)

    security_events.clear()
    assert client.post("/admin/logout/").status_code == 302  # django-loginas's loginas-logout
    assert _types(security_events) == ["session_logout", "authn_impersonation_end", "authn_login_success"]
    logout, end, back = security_events.records
    assert logout["usr"]["id"] == str(customer.pk) and logout["impersonator"]["usr"]["id"] == str(engineer.pk)
    _switch(end, "authn_impersonation_end", engineer, customer)
    assert end["usr"]["login"] == start["usr"]["login"]  # the same account as the start named
    assert back["usr"]["id"] == str(engineer.pk) and "impersonator" not in back

    _after(security_events, client, engineer)


def test_loginas_refused_writes_no_start_and_no_impersonator(security_events: Capture) -> None:
    """django-loginas's default CAN_LOGIN_AS: superusers only."""
    plain, other = account(), account()
    client = Client(REMOTE_ADDR=SUPPORT_IP)
    assert client.login(username=plain.username, password=PASSWORD)
    security_events.clear()
    assert client.post(f"/admin/login/user/{other.pk}/").status_code == 302  # back, with an error message
    assert client.get("/orders/11/").status_code == 200
    assert _types(security_events) == ["sensitive_read"]
    assert security_events.records[0]["usr"]["id"] == str(plain.pk)
    assert "impersonator" not in security_events.records[0]


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(str, id="unsigned"),
        pytest.param(lambda real: f"{real}:1a2b3c:not-a-signature", id="bad-signature"),
        pytest.param(lambda real: real, id="an-int"),
        pytest.param(lambda real: [real], id="a-list"),
        pytest.param(lambda real: _signed_at(real, time.time() - 3 * 86400), id="expired"),
        pytest.param(lambda real: _signed_at(real, time.time(), salt="another.salt"), id="other-salt"),
    ],
)
def test_loginas_a_session_value_django_loginas_would_not_accept_names_no_impersonator(
    security_events: Capture, forge: Any
) -> None:
    plain, real = account(), account(is_superuser=True)
    client = Client(REMOTE_ADDR=SUPPORT_IP)
    assert client.login(username=plain.username, password=PASSWORD)
    session = client.session
    session["loginas_from_user"] = forge(real.pk)
    session.save()
    security_events.clear()
    assert client.get("/orders/12/").status_code == 200
    record = security_events.assert_emitted("sensitive_read")
    assert record["usr"]["id"] == str(plain.pk) and "impersonator" not in record
    security_events.clear()
    assert client.post("/logout/").status_code == 200
    assert _types(security_events) == ["session_logout"]  # no end of an impersonation nobody started


def test_loginas_a_validly_signed_value_is_read_as_django_loginas_reads_it(security_events: Capture) -> None:
    """The control of the forgeries above: the same session with loginas's own signature is impersonated."""
    plain, real = account(), account(is_superuser=True)
    client = Client(REMOTE_ADDR=SUPPORT_IP)
    assert client.login(username=plain.username, password=PASSWORD)
    session = client.session
    session["loginas_from_user"] = _signed_at(real.pk, time.time() - 3600)
    session.save()
    security_events.clear()
    assert client.get("/orders/13/").status_code == 200
    record = security_events.assert_emitted("sensitive_read")
    assert record["impersonator"] == {"usr": {"id": str(real.pk)}}


def _signed_at(value: object, when: float, salt: str | None = None) -> str:
    from django.core.signing import Signer, TimestampSigner, b62_encode

    signer = TimestampSigner() if salt is None else TimestampSigner(salt=salt)
    signed: str = Signer.sign(signer, f"{value}{signer.sep}{b62_encode(int(when))}")
    return signed


# --- django-su --------------------------------------------------------------------------------------------


def test_su_start_events_in_between_and_exit(security_events: Capture, support: tuple[Client, Any]) -> None:
    pytest.importorskip("django_su")
    client, engineer = support
    customer = account()
    security_events.clear()

    assert client.post(f"/su/{customer.pk}/").status_code == 302
    assert _types(security_events) == ["authn_login_success", "authn_impersonation_start"]
    switch, start = security_events.records
    assert switch["usr"]["id"] == str(customer.pk)
    assert switch["impersonator"] == {"usr": {"id": str(engineer.pk)}}
    _switch(start, "authn_impersonation_start", engineer, customer)

    _in_between(security_events, client, engineer, customer)

    security_events.clear()
    assert client.get("/su/").status_code == 302  # django-su's su_logout: back to the engineer
    assert _types(security_events) == ["authn_login_success", "authn_impersonation_end"]
    back, end = security_events.records
    assert back["usr"]["id"] == str(engineer.pk) and "impersonator" not in back
    _switch(end, "authn_impersonation_end", engineer, customer)

    _after(security_events, client, engineer)


def test_su_refused_and_a_forged_exit_list(security_events: Capture) -> None:
    """A plain account may not su (django-su's default: `auth.change_user`); an exit list naming itself, or
    not a list of pairs, names no impersonator."""
    pytest.importorskip("django_su")
    plain, other = account(), account()
    client = Client(REMOTE_ADDR=SUPPORT_IP)
    assert client.login(username=plain.username, password=PASSWORD)
    security_events.clear()
    assert client.post(f"/su/{other.pk}/").status_code == 302  # to the login page
    for forged in ([[plain.pk, "x"]], "7", [7], [[]], [[None, "x"]]):
        session = client.session
        session["exit_users_pk"] = forged
        session.save()
        assert client.get("/orders/15/").status_code == 200
    assert _types(security_events) == ["sensitive_read"] * 5
    assert all("impersonator" not in r for r in security_events.records)


# --- all of them: an async view ------------------------------------------------------------------------------


# django-su's SuBackend has no `aget_user`: `request.auser()` fails in its sessions (django-su's own limit).
@pytest.mark.parametrize("stack", ["impersonate", "loginas", "hijack"])
def test_an_async_view_of_an_impersonated_session_names_both(
    security_events: Capture, support: tuple[Client, Any], stack: str
) -> None:
    """An async view that awaited `request.auser()` (as our Django page asks): the providers read the
    context's user, never `request.user`, which would query the database from the event loop."""
    import asyncio

    from django.test import AsyncClient

    pytest.importorskip({"hijack": "hijack"}.get(stack, "django"))
    client, engineer = support
    customer = account()
    start = {
        "impersonate": lambda: client.get(f"/impersonate/{customer.pk}/"),
        "loginas": lambda: client.post(f"/admin/login/user/{customer.pk}/"),
        "hijack": lambda: client.post("/hijack/acquire/", {"user_pk": customer.pk}),
    }[stack]
    assert start().status_code == 302
    async_client = AsyncClient(REMOTE_ADDR=SUPPORT_IP)
    async_client.cookies = client.cookies
    security_events.clear()
    assert asyncio.run(async_client.get("/aorders/14/")).status_code == 200
    record = security_events.assert_emitted("sensitive_read")
    assert record["usr"]["id"] == str(customer.pk)
    assert record["impersonator"] == {"usr": {"id": str(engineer.pk)}}


# --- django-hijack, through the same shared end --------------------------------------------------------------


@pytest.mark.skipif(
    not __import__("importlib").util.find_spec("hijack"), reason="django-hijack not installed"
)
def test_hijack_logging_out_ends_the_impersonation(
    security_events: Capture, support: tuple[Client, Any]
) -> None:
    client, engineer = support
    customer = account()
    assert client.post("/hijack/acquire/", {"user_pk": customer.pk}).status_code == 302
    security_events.clear()
    assert client.post("/logout/").status_code == 200
    assert _types(security_events) == ["session_logout", "authn_impersonation_end"]
    _switch(security_events.records[1], "authn_impersonation_end", engineer, customer)
