"""django-hijack, installed for real: start and end are events, and every event of the hijacked session names
both the effective account (`usr`) and the real one (`impersonator.usr`)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from graffer_secevents import EventValidationError
from graffer_secevents.detect import default_rules, evaluate
from graffer_secevents.testing import Capture

pytest.importorskip("hijack")

_ids = itertools.count()
PASSWORD = "hijack pass 7"
SUPPORT_IP = "198.51.100.77"


def account(**flags: Any) -> Any:
    n = next(_ids)
    return get_user_model().objects.create_user(f"hj{n}", f"hj{n}@example.org", PASSWORD, **flags)


@pytest.fixture
def support() -> tuple[Client, Any]:
    engineer = account(is_superuser=True, is_staff=True)
    client = Client(REMOTE_ADDR=SUPPORT_IP)
    assert client.login(username=engineer.username, password=PASSWORD)
    return client, engineer


def test_hijack_start_events_in_between_and_end(
    security_events: Capture, support: tuple[Client, Any]
) -> None:
    client, engineer = support
    customer = account()

    response = client.post("/hijack/acquire/", {"user_pk": customer.pk}, HTTP_X_REQUEST_ID="hj-start")
    assert response.status_code == 302
    start = security_events.assert_emitted("authn_impersonation_start")
    assert start["usr"]["id"] == str(engineer.pk)
    assert start["target"]["usr"]["id"] == str(customer.pk)
    assert start["evt"]["target_role"] == "user"
    assert start["network"]["client"]["ip"] == SUPPORT_IP
    assert "impersonator" not in start  # the real account is usr itself here
    # django-hijack logs the customer in to switch: that login is marked as not the customer's own
    switch = security_events.assert_emitted("authn_login_success", usr__id=str(customer.pk))
    assert switch["impersonator"]["usr"]["id"] == str(engineer.pk)

    security_events.clear()
    assert client.get("/orders/7/").status_code == 200  # a view that emits sensitive_read
    assert client.get("/admin-only/").status_code == 403  # the customer may not: authz_fail
    read = security_events.assert_emitted("sensitive_read")
    denied = security_events.assert_emitted("authz_fail")
    for record in (read, denied):
        assert record["usr"]["id"] == str(customer.pk)  # the effective account
        assert record["impersonator"]["usr"]["id"] == str(engineer.pk)  # the real one

    security_events.clear()
    assert client.post("/hijack/release/").status_code == 302
    end = security_events.assert_emitted("authn_impersonation_end")
    assert end["usr"]["id"] == str(engineer.pk) and end["target"]["usr"]["id"] == str(customer.pk)

    security_events.clear()
    assert client.get("/orders/8/").status_code == 200
    after = security_events.assert_emitted("sensitive_read")
    assert after["usr"]["id"] == str(engineer.pk) and "impersonator" not in after


def test_hijacking_an_administrator_names_its_role(
    security_events: Capture, support: tuple[Client, Any]
) -> None:
    client, _ = support
    staff = account(is_staff=True)
    assert client.post("/hijack/acquire/", {"user_pk": staff.pk}).status_code == 302
    start = security_events.assert_emitted("authn_impersonation_start")
    assert start["evt"]["target_role"] == "staff"
    [signal] = evaluate(default_rules(only=["admin_impersonated"]), security_events.records)
    assert dict(signal.group) == {"usr.id": start["usr"]["id"]}


def test_hijacking_a_customer_raises_no_signal(security_events: Capture, support: tuple[Client, Any]) -> None:
    client, _ = support
    assert client.post("/hijack/acquire/", {"user_pk": account().pk}).status_code == 302
    assert client.post("/hijack/release/").status_code == 302
    assert evaluate(default_rules(), security_events.records) == []


def test_a_refused_hijack_writes_no_start(security_events: Capture) -> None:
    """A non-superuser may not hijack (django-hijack's default permission check): no start event."""
    client = Client(REMOTE_ADDR=SUPPORT_IP)
    plain = account()
    assert client.login(username=plain.username, password=PASSWORD)
    target = account()
    assert client.post("/hijack/acquire/", {"user_pk": target.pk}).status_code == 403
    security_events.assert_not_emitted("authn_impersonation_start")
    assert all("impersonator" not in r for r in security_events.records)


@pytest.mark.secevents_lenient
def test_a_forged_session_history_value_is_written_as_an_id_only(
    security_events: Capture, support: tuple[Client, Any]
) -> None:
    """The session is server-side; whatever it holds is written as an id, through the privacy rules."""
    client, _ = support
    session = client.session
    session["hijack_history"] = ["<script>" + "x" * 2000]
    session.save()
    assert client.get("/orders/9/").status_code == 200
    record = security_events.assert_emitted("sensitive_read")
    real = record["impersonator"]["usr"]["id"]
    assert len(real) <= 1024 and any("impersonator.usr.id" in e for e in record["secevents"]["errors"])


def test_strict_mode_names_the_impersonator_field(
    security_events: Capture, support: tuple[Client, Any]
) -> None:
    client, _ = support
    session = client.session
    session["hijack_history"] = ["x" * 2000]
    session.save()
    with pytest.raises(EventValidationError, match=r"impersonator\.usr\.id: 2000 characters"):
        client.get("/orders/10/")


def test_the_switch_login_is_not_the_customers_own_for_the_geo_rules(
    security_events: Capture, support: tuple[Client, Any]
) -> None:
    """The customer logs in from Paris; a support engineer in Tokyo hijacks the account seconds later."""
    from graffer_secevents.detect import GeoPoint

    paris, tokyo = "198.51.100.10", "192.0.2.30"
    geo = {paris: GeoPoint(48.8566, 2.3522, "FR", "Paris"), tokyo: GeoPoint(35.6762, 139.6503, "JP", "Tokyo")}
    customer = account()
    own = Client(REMOTE_ADDR=paris)
    assert own.post("/login/", {"username": customer.username, "password": PASSWORD}).status_code == 302
    client, _ = support
    assert client.post("/hijack/acquire/", {"user_pk": customer.pk}, REMOTE_ADDR=tokyo).status_code == 302
    logins = [
        r
        for r in security_events.records
        if r["evt"]["type"] == "authn_login_success" and r["usr"]["id"] == str(customer.pk)
    ]
    assert [r["network"]["client"]["ip"] for r in logins] == [paris, tokyo]  # both written, the second marked
    assert evaluate(default_rules(only=["impossible_travel"]), security_events.records, geo=geo) == []
