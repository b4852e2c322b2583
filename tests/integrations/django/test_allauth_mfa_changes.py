"""allauth.mfa, installed for real: activating TOTP, regenerating recovery codes and deactivating TOTP through
allauth's own views are `authn_mfa_enabled` / `authn_mfa_disabled`, with the method and never the secret."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from graffer_secevents.testing import Capture

pytest.importorskip("allauth.mfa")

from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import (
    SECRET_SESSION_KEY,
    format_hotp_value,
    hotp_value,
    yield_hotp_counters_from_time,
)

_ids = itertools.count()
PASSWORD = "mfa change pass"
MFA_TYPES = {"authn_mfa_enabled", "authn_mfa_disabled"}


@pytest.fixture
def signed_in() -> tuple[Client, Any]:
    cache.clear()
    n = next(_ids)
    member = get_user_model().objects.create_user(f"mfa{n}", f"mfa{n}@example.org", PASSWORD)
    client = Client(REMOTE_ADDR="192.0.2.200")
    response = client.post(reverse("account_login"), {"login": member.username, "password": PASSWORD})
    assert response.status_code == 302
    # allauth asks for the password again before MFA changes
    response = client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    assert response.status_code == 302
    return client, member


def mfa_records(capture: Capture, *secrets: str) -> list[dict[str, Any]]:
    for line in capture.lines:
        for secret in (PASSWORD, *secrets):
            assert secret.encode() not in line, line
    return [r for r in capture.records if r["evt"]["type"] in MFA_TYPES]


def activate_totp(client: Client) -> str:
    assert client.get(reverse("mfa_activate_totp")).status_code == 200
    secret = client.session[SECRET_SESSION_KEY]
    code = format_hotp_value(hotp_value(secret, next(yield_hotp_counters_from_time())))
    response = client.post(reverse("mfa_activate_totp"), {"code": code})
    assert response.status_code == 302, response.content.decode()[:500]
    return secret


def test_activate_totp_is_mfa_enabled_for_totp_and_recovery_codes(
    security_events: Capture, signed_in: tuple[Client, Any]
) -> None:
    client, member = signed_in
    secret = activate_totp(client)
    records = mfa_records(security_events, secret)
    assert [(r["evt"]["type"], r["evt"]["method"]) for r in records] == [
        ("authn_mfa_enabled", "totp"),
        ("authn_mfa_enabled", "recovery_codes"),
    ]
    assert {r["usr"]["id"] for r in records} == {str(member.pk)}
    assert {r["network"]["client"]["ip"] for r in records} == {"192.0.2.200"}


def test_regenerated_recovery_codes_are_a_reset(
    security_events: Capture, signed_in: tuple[Client, Any]
) -> None:
    client, _ = signed_in
    activate_totp(client)
    security_events.clear()
    assert client.post(reverse("mfa_generate_recovery_codes")).status_code == 302
    codes = Authenticator.objects.get(type=Authenticator.Type.RECOVERY_CODES, user=signed_in[1])
    unused = codes.wrap().get_unused_codes()
    [record] = mfa_records(security_events, *unused)
    assert record["evt"] == {
        "type": "authn_mfa_enabled",
        "name": "authn_mfa_enabled",
        "category": "iam",
        "outcome": "success",
        "method": "recovery_codes",
        "reason": "reset",
    }


def test_deactivate_totp_is_mfa_disabled_twice(
    security_events: Capture, signed_in: tuple[Client, Any]
) -> None:
    """Deactivating TOTP also deletes the recovery codes left dangling: one event per authenticator."""
    client, member = signed_in
    activate_totp(client)
    security_events.clear()
    assert client.post(reverse("mfa_deactivate_totp")).status_code == 302
    records = mfa_records(security_events)
    assert sorted(r["evt"]["method"] for r in records) == ["recovery_codes", "totp"]
    assert {r["evt"]["type"] for r in records} == {"authn_mfa_disabled"}
    assert {r["usr"]["id"] for r in records} == {str(member.pk)}
    assert {r["status"] for r in records} == {"warning"}
