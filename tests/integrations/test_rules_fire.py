"""Every rule of the set fires on an attack driven through the real example app, and not on near misses.

The app is ``examples/flask_app.py`` (real Flask, Flask-Login and the ``SecurityEvents`` extension) driven by
Flask's own test client; each request comes from the client IP given in ``REMOTE_ADDR``, so the middleware
resolves it as it would on a server. The records the app writes are captured with the ``security_events``
fixture and replayed through every rule of `build_rules` with the engine (`graffer_secevents.detect.evaluate`).
Each scenario asserts the signal of its own rule (and its group) or its absence.

Two things are set up around the example, never changed in it: the accounts' password hashes use a cheap
PBKDF2 (the example's scrypt costs ~0.4 s a check here), and the example has no route for MFA challenges,
signups or token refreshes, so the tests add three small routes to the app they build (see `_app`), which
call the library's public helpers inside a request of that real app.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from flask.testing import FlaskClient
from flask_login import current_user, login_required
from werkzeug.security import generate_password_hash

import graffer_secevents as api
from graffer_secevents._tools.rules import RULES, build_rules
from graffer_secevents.detect import GeoPoint, Signal, evaluate
from graffer_secevents.testing import Capture

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flask_app.py"
ATTACKER = "203.0.113.66"
OFFICE = "198.51.100.10"  # Paris
LYON = "198.51.100.20"
TOKYO = "192.0.2.30"
GEO: Mapping[str, GeoPoint] = {
    OFFICE: GeoPoint(48.8566, 2.3522, "FR", "Paris"),
    LYON: GeoPoint(45.7640, 4.8357, "FR", "Lyon"),
    TOKYO: GeoPoint(35.6762, 139.6503, "JP", "Tokyo"),
    ATTACKER: GeoPoint(52.52, 13.405, "DE", "Berlin"),
}
ADA, GRACE, ROOT = "ada@example.com", "grace@example.com", "root@example.com"
OPS = "ops@example.com"  # a second administrator
PASSWORDS = {
    ADA: "correct horse battery staple",
    GRACE: "hopper-1906",
    ROOT: "root-admin-pass",
    OPS: "ops-admin-pass",
}
USERS = [f"user{n}@example.com" for n in range(30)]
REVOKED_TOKEN = "rt-revoked-1"


def _load_example() -> Any:
    spec = importlib.util.spec_from_file_location("secevents_example_flask_app_rules", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


SHOP = _load_example()


def _app(monkeypatch: pytest.MonkeyPatch) -> Flask:
    cheap = functools.partial(generate_password_hash, method="pbkdf2:sha256:1000")
    monkeypatch.setattr(SHOP, "generate_password_hash", cheap)
    accounts = SHOP.Accounts()
    accounts.add(1001, ADA, PASSWORDS[ADA])
    accounts.add(1002, GRACE, PASSWORDS[GRACE])
    accounts.add(1, ROOT, PASSWORDS[ROOT], role="admin")
    accounts.add(2, OPS, PASSWORDS[OPS], role="admin")
    for n, email in enumerate(USERS):
        accounts.add(2000 + n, email, f"password-{n}")
    app: Flask = SHOP.create_app(accounts)

    # Flows the example has no endpoint for: the library's helpers, called inside a request of this app.
    @app.post("/mfa")
    def mfa() -> tuple[str, int]:
        account = accounts.by_email[request.form["username"]]
        ok = request.form["code"] == "424242"
        api.log_mfa_challenge(account, "success" if ok else "failure", method="push")
        return ("", 204) if ok else ("", 401)

    @app.post("/signup")
    def signup() -> tuple[str, int]:
        email = request.form["username"]
        accounts.add(3000 + len(accounts.by_email), email, "a-new-password")
        api.log_signup(accounts.by_email[email], login=email)
        return "", 201

    @app.post("/token/refresh")
    def refresh() -> tuple[str, int]:
        account = accounts.by_email[request.form["username"]]
        if request.form["token"] == REVOKED_TOKEN:
            api.emit("authn_token_reuse", user=account, token_id=request.form["token"])
            return "", 401
        api.log_token_created(account, token_id="rt-fresh")
        return "", 200

    # Account administration the example has no endpoint for: one public call per change.
    @app.post("/admin/users/<int:user_id>/grant")
    @login_required
    def grant(user_id: int) -> tuple[str, int]:
        target = accounts.get(str(user_id))
        role, ticket = request.form["role"], request.form.get("change_ticket")
        extra = {"change_ticket": ticket} if ticket else {}
        api.log_privilege_change(
            current_user, target, from_role=target.role, to_role=role, granted=[role], **extra
        )
        target.role = role
        return "", 204

    @app.post("/admin/users/<int:user_id>/impersonate")
    @login_required
    def impersonate(user_id: int) -> tuple[str, int]:
        target = accounts.get(str(user_id))
        api.log_impersonation(current_user, target, target_role=target.role, reason="support")
        return "", 204

    @app.post("/mfa/remove")
    @login_required
    def remove_mfa() -> tuple[str, int]:
        api.log_mfa_change(current_user, enabled=False, method="totp")
        return "", 204

    return app


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[FlaskClient]:
    with _app(monkeypatch).test_client() as test_client:
        yield test_client


def post(client: FlaskClient, path: str, ip: str, **form: str) -> int:
    return client.post(path, data=form, environ_base={"REMOTE_ADDR": ip}).status_code


def login(client: FlaskClient, email: str, ip: str, *, ok: bool = True) -> int:
    password = PASSWORDS.get(email, f"password-{USERS.index(email)}" if email in USERS else "x")
    return post(client, "/login", ip, username=email, password=password if ok else "wrong-guess")


def signals(records: list[dict[str, Any]], rule_id: str) -> list[Signal]:
    return [s for s in evaluate(build_rules(), records, geo=GEO) if s.rule_id == rule_id]


def fired(events: Capture, rule_id: str, **group: str) -> Signal:
    """The one signal of ``rule_id``; its group (keys without ``@``) must be ``group``."""
    found = signals(events.records, rule_id)
    assert len(found) == 1, f"{rule_id}: expected one signal, got {found}"
    assert dict(found[0].group) == group
    return found[0]


def silent(events: Capture, rule_id: str) -> None:
    assert signals(events.records, rule_id) == []


def normal_traffic(client: FlaskClient) -> None:
    """A working day: logins (one typo), a page, a logout, a reset, all from the office."""
    assert login(client, ADA, OFFICE, ok=False) == 401
    assert login(client, ADA, OFFICE) == 200
    assert client.get("/me", environ_base={"REMOTE_ADDR": OFFICE}).status_code == 200
    assert post(client, "/logout", OFFICE) == 200
    assert login(client, GRACE, OFFICE) == 200
    assert post(client, "/password-reset", OFFICE, username=GRACE) == 202


def test_normal_traffic_raises_no_signal(client: FlaskClient, security_events: Capture) -> None:
    normal_traffic(client)
    assert len(security_events.records) == 5
    assert evaluate(build_rules(), security_events.records, geo=GEO) == []


# --- credential stuffing ------------------------------------------------------------------------------------


def test_credential_stuffing_attempt_fires_at_ten_failing_accounts(
    client: FlaskClient, security_events: Capture
) -> None:
    normal_traffic(client)
    for email in USERS[:10]:
        assert login(client, email, ATTACKER, ok=False) == 401
    signal = fired(security_events, "credential_stuffing", **{"network.client.ip": ATTACKER})
    assert (signal.case, signal.severity) == ("credential stuffing attempt", "medium")


def test_credential_stuffing_with_a_success_is_the_high_case(
    client: FlaskClient, security_events: Capture
) -> None:
    for email in [*USERS[:20], *[f"ghost{n}@example.com" for n in range(5)]]:
        login(client, email, ATTACKER, ok=False)
    assert login(client, USERS[25], ATTACKER) == 200
    signal = fired(security_events, "credential_stuffing", **{"network.client.ip": ATTACKER})
    assert (signal.case, signal.severity) == ("successful credential stuffing", "high")


def test_nine_failing_accounts_are_no_credential_stuffing(
    client: FlaskClient, security_events: Capture
) -> None:
    normal_traffic(client)
    for email in USERS[:9]:
        login(client, email, ATTACKER, ok=False)
    silent(security_events, "credential_stuffing")


# --- brute force --------------------------------------------------------------------------------------------


def test_brute_force_fires_on_ten_failures_for_one_account(
    client: FlaskClient, security_events: Capture
) -> None:
    """The example locks the account after 5 failures; the locked attempts are still failures for it."""
    for n in range(10):
        login(client, GRACE, ATTACKER if n % 2 else OFFICE, ok=False)
    fired(security_events, "brute_force", **{"usr.id": "1002"})


def test_nine_failures_are_no_brute_force(client: FlaskClient, security_events: Capture) -> None:
    for _ in range(9):
        login(client, GRACE, ATTACKER, ok=False)
    silent(security_events, "brute_force")


def test_brute_force_followed_by_a_success_fires(
    client: FlaskClient, security_events: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example's lock (5 failures) would stop the success; the scenario raises its limit."""
    monkeypatch.setattr(SHOP, "MAX_FAILURES", 100)
    for _ in range(5):
        login(client, GRACE, ATTACKER, ok=False)
    assert login(client, GRACE, ATTACKER) == 200
    signal = fired(security_events, "brute_force_success", **{"usr.id": "1002"})
    assert signal.severity == "high"


def test_a_typo_then_a_success_is_no_brute_force_success(
    client: FlaskClient, security_events: Capture
) -> None:
    for _ in range(4):
        login(client, GRACE, OFFICE, ok=False)
    assert login(client, GRACE, OFFICE) == 200
    silent(security_events, "brute_force_success")


# --- account enumeration ------------------------------------------------------------------------------------


def test_account_enumeration_fires_on_ten_unknown_accounts(
    client: FlaskClient, security_events: Capture
) -> None:
    for n in range(10):
        login(client, f"nobody{n}@example.com", ATTACKER, ok=False)
    fired(security_events, "account_enumeration", **{"network.client.ip": ATTACKER})


def test_failures_on_existing_accounts_are_no_enumeration(
    client: FlaskClient, security_events: Capture
) -> None:
    for email in USERS[:12]:
        login(client, email, ATTACKER, ok=False)
    silent(security_events, "account_enumeration")


# --- geography ----------------------------------------------------------------------------------------------


def test_impossible_travel_fires_on_paris_then_tokyo(client: FlaskClient, security_events: Capture) -> None:
    assert login(client, ADA, OFFICE) == 200
    assert login(client, ADA, TOKYO) == 200
    fired(security_events, "impossible_travel", **{"usr.id": "1001"})


def test_paris_then_lyon_is_no_impossible_travel(client: FlaskClient, security_events: Capture) -> None:
    assert login(client, ADA, OFFICE) == 200
    assert login(client, ADA, LYON) == 200
    silent(security_events, "impossible_travel")


def _learned_ten_days_ago(client: FlaskClient, events: Capture) -> list[dict[str, Any]]:
    """Ada's logins from France, moved ten days back: the rule's learning period (7 days) is over."""
    assert login(client, ADA, OFFICE) == 200
    assert login(client, ADA, LYON) == 200
    past = []
    for record in events.records:
        when = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")) - timedelta(days=10)
        past.append({**record, "timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z")})
    events.clear()
    return past


def test_a_login_from_a_new_country_fires_after_learning(
    client: FlaskClient, security_events: Capture
) -> None:
    past = _learned_ten_days_ago(client, security_events)
    assert login(client, ADA, TOKYO) == 200
    found = signals(past + security_events.records, "new_country")
    assert [dict(s.group) for s in found] == [{"usr.id": "1001"}]


def test_a_login_from_a_known_country_is_not_new(client: FlaskClient, security_events: Capture) -> None:
    past = _learned_ten_days_ago(client, security_events)
    assert login(client, ADA, OFFICE) == 200
    assert signals(past + security_events.records, "new_country") == []


# --- MFA, resets, tokens, denials, signups, admin -----------------------------------------------------------


def test_mfa_fatigue_fires_on_refusals_then_an_accept(client: FlaskClient, security_events: Capture) -> None:
    """``/mfa`` is a route the test adds (the example has no MFA): it calls `log_mfa_challenge`."""
    for _ in range(5):
        assert post(client, "/mfa", ATTACKER, username=ADA, code="000000") == 401
    assert post(client, "/mfa", ATTACKER, username=ADA, code="424242") == 204
    signal = fired(security_events, "mfa_fatigue", **{"usr.id": "1001"})
    assert signal.case == "challenges refused, then one accepted"


def test_one_wrong_code_is_no_mfa_fatigue(client: FlaskClient, security_events: Capture) -> None:
    """``/mfa`` is a route the test adds (the example has no MFA): it calls `log_mfa_challenge`."""
    assert post(client, "/mfa", OFFICE, username=ADA, code="000000") == 401
    assert post(client, "/mfa", OFFICE, username=ADA, code="424242") == 204
    silent(security_events, "mfa_fatigue")


def test_password_reset_flood_from_one_ip_fires(client: FlaskClient, security_events: Capture) -> None:
    for email in [*USERS[:15], *[f"ghost{n}@example.com" for n in range(5)]]:
        assert post(client, "/password-reset", ATTACKER, username=email) == 202
    fired(security_events, "password_reset_flood_ip", **{"network.client.ip": ATTACKER})


def test_nineteen_resets_from_one_ip_are_no_flood(client: FlaskClient, security_events: Capture) -> None:
    for email in USERS[:19]:
        post(client, "/password-reset", ATTACKER, username=email)
    silent(security_events, "password_reset_flood_ip")


def test_password_reset_flood_on_one_account_fires(client: FlaskClient, security_events: Capture) -> None:
    for ip in (ATTACKER, OFFICE, LYON, TOKYO, ATTACKER):
        post(client, "/password-reset", ip, username=GRACE)
    (signal,) = signals(security_events.records, "password_reset_flood_account")
    (login_hash,) = signal.group.values()
    assert set(signal.group) == {"usr.login"}
    assert login_hash == security_events.records[0]["usr"]["login"]  # the privacy-processed login


def test_four_resets_for_one_account_are_no_flood(client: FlaskClient, security_events: Capture) -> None:
    for _ in range(4):
        post(client, "/password-reset", OFFICE, username=GRACE)
    silent(security_events, "password_reset_flood_account")


def test_refresh_token_reuse_fires(client: FlaskClient, security_events: Capture) -> None:
    """``/token/refresh`` is a route the test adds: it emits ``authn_token_reuse`` for a revoked token."""
    assert post(client, "/token/refresh", ATTACKER, username=ADA, token=REVOKED_TOKEN) == 401
    fired(security_events, "token_reuse", **{"usr.id": "1001"})


def test_a_normal_refresh_is_no_token_reuse(client: FlaskClient, security_events: Capture) -> None:
    """``/token/refresh`` is a route the test adds: a fresh token records ``authn_token_created``."""
    assert post(client, "/token/refresh", OFFICE, username=ADA, token="rt-current") == 200
    security_events.assert_emitted("authn_token_created", usr__id="1001")
    silent(security_events, "token_reuse")


def _denied(client: FlaskClient, ip: str, times: int) -> None:
    assert login(client, ADA, ip) == 200
    for _ in range(times):
        assert client.get("/admin/users", environ_base={"REMOTE_ADDR": ip}).status_code == 403


def test_a_burst_of_denied_requests_from_one_ip_fires(client: FlaskClient, security_events: Capture) -> None:
    _denied(client, ATTACKER, 20)
    fired(security_events, "authz_denied_burst", **{"network.client.ip": ATTACKER})


def test_nineteen_denied_requests_are_no_burst(client: FlaskClient, security_events: Capture) -> None:
    _denied(client, ATTACKER, 19)
    silent(security_events, "authz_denied_burst")


def test_mass_signups_from_one_ip_fire(client: FlaskClient, security_events: Capture) -> None:
    """``/signup`` is a route the test adds (the example has no signup): it calls `log_signup`."""
    for n in range(10):
        assert post(client, "/signup", ATTACKER, username=f"bot{n}@example.com") == 201
    fired(security_events, "mass_signup", **{"network.client.ip": ATTACKER})


def test_signups_from_many_ips_are_no_mass_signup(client: FlaskClient, security_events: Capture) -> None:
    """``/signup`` is a route the test adds (the example has no signup): it calls `log_signup`."""
    for n in range(10):
        assert post(client, "/signup", f"198.51.100.{100 + n}", username=f"new{n}@example.com") == 201
    silent(security_events, "mass_signup")


def test_an_admin_action_after_a_login_from_a_new_ip_fires(
    client: FlaskClient, security_events: Capture
) -> None:
    assert login(client, ROOT, OFFICE) == 200
    assert login(client, ROOT, ATTACKER) == 200
    assert post(client, "/admin/users/1002/disable", ATTACKER) == 200
    signal = fired(security_events, "admin_after_new_ip", **{"usr.id": "1"})
    assert signal.severity == "high"


def test_an_admin_action_from_the_usual_ip_is_silent(client: FlaskClient, security_events: Capture) -> None:
    assert login(client, ROOT, OFFICE) == 200
    assert post(client, "/admin/users/1002/disable", OFFICE) == 200
    assert login(client, ROOT, OFFICE) == 200
    silent(security_events, "admin_after_new_ip")


# --- privilege escalation, impersonation, MFA removal -------------------------------------------------------


def test_a_grant_of_admin_after_a_login_from_a_new_ip_is_privilege_escalation(
    client: FlaskClient, security_events: Capture
) -> None:
    assert login(client, ROOT, OFFICE) == 200
    assert login(client, ROOT, ATTACKER) == 200
    assert post(client, "/admin/users/1001/grant", ATTACKER, role="admin") == 204
    signal = fired(security_events, "privilege_escalation", **{"usr.id": "1"})
    assert signal.severity == "critical"


def test_grants_from_the_usual_ip_or_in_a_change_window_are_no_escalation(
    client: FlaskClient, security_events: Capture
) -> None:
    assert login(client, ROOT, OFFICE) == 200
    assert post(client, "/admin/users/1001/grant", OFFICE, role="admin") == 204  # ordinary administration
    assert login(client, OPS, OFFICE) == 200
    assert login(client, OPS, ATTACKER) == 200  # a second IP, but:
    assert post(client, "/admin/users/1002/grant", ATTACKER, role="admin", change_ticket="CHG-1042") == 204
    assert post(client, "/admin/users/2000/grant", ATTACKER, role="customer") == 204  # not a privilege
    assert len(security_events.records) == 6
    silent(security_events, "privilege_escalation")


def test_impersonating_an_administrator_fires(client: FlaskClient, security_events: Capture) -> None:
    assert login(client, ROOT, OFFICE) == 200
    assert post(client, "/admin/users/2/impersonate", OFFICE) == 204
    signal = fired(security_events, "admin_impersonated", **{"usr.id": "1"})
    assert signal.severity == "high"


def test_impersonating_a_customer_is_silent(client: FlaskClient, security_events: Capture) -> None:
    assert login(client, ROOT, OFFICE) == 200
    assert post(client, "/admin/users/1001/impersonate", OFFICE) == 204
    security_events.assert_emitted("authn_impersonation_start", evt__target_role="customer")
    silent(security_events, "admin_impersonated")


def test_mfa_removed_from_another_country_fires(client: FlaskClient, security_events: Capture) -> None:
    assert login(client, ADA, OFFICE) == 200
    assert login(client, ADA, TOKYO) == 200
    assert post(client, "/mfa/remove", TOKYO) == 204
    fired(security_events, "mfa_removed_new_country", **{"usr.id": "1001"})


def test_mfa_removed_at_home_is_silent(client: FlaskClient, security_events: Capture) -> None:
    assert login(client, ADA, OFFICE) == 200
    assert post(client, "/mfa/remove", OFFICE) == 204
    assert login(client, ADA, LYON) == 200  # another city, the same country
    assert login(client, GRACE, TOKYO) == 200  # another account abroad
    silent(security_events, "mfa_removed_new_country")


SCENARIOS = {
    "credential_stuffing": (
        "test_credential_stuffing_attempt_fires_at_ten_failing_accounts",
        "test_nine_failing_accounts_are_no_credential_stuffing",
    ),
    "brute_force": (
        "test_brute_force_fires_on_ten_failures_for_one_account",
        "test_nine_failures_are_no_brute_force",
    ),
    "brute_force_success": (
        "test_brute_force_followed_by_a_success_fires",
        "test_a_typo_then_a_success_is_no_brute_force_success",
    ),
    "account_enumeration": (
        "test_account_enumeration_fires_on_ten_unknown_accounts",
        "test_failures_on_existing_accounts_are_no_enumeration",
    ),
    "impossible_travel": (
        "test_impossible_travel_fires_on_paris_then_tokyo",
        "test_paris_then_lyon_is_no_impossible_travel",
    ),
    "new_country": (
        "test_a_login_from_a_new_country_fires_after_learning",
        "test_a_login_from_a_known_country_is_not_new",
    ),
    "mfa_fatigue": (
        "test_mfa_fatigue_fires_on_refusals_then_an_accept",
        "test_one_wrong_code_is_no_mfa_fatigue",
    ),
    "password_reset_flood_ip": (
        "test_password_reset_flood_from_one_ip_fires",
        "test_nineteen_resets_from_one_ip_are_no_flood",
    ),
    "password_reset_flood_account": (
        "test_password_reset_flood_on_one_account_fires",
        "test_four_resets_for_one_account_are_no_flood",
    ),
    "token_reuse": ("test_refresh_token_reuse_fires", "test_a_normal_refresh_is_no_token_reuse"),
    "authz_denied_burst": (
        "test_a_burst_of_denied_requests_from_one_ip_fires",
        "test_nineteen_denied_requests_are_no_burst",
    ),
    "mass_signup": ("test_mass_signups_from_one_ip_fire", "test_signups_from_many_ips_are_no_mass_signup"),
    "admin_after_new_ip": (
        "test_an_admin_action_after_a_login_from_a_new_ip_fires",
        "test_an_admin_action_from_the_usual_ip_is_silent",
    ),
    "privilege_escalation": (
        "test_a_grant_of_admin_after_a_login_from_a_new_ip_is_privilege_escalation",
        "test_grants_from_the_usual_ip_or_in_a_change_window_are_no_escalation",
    ),
    "admin_impersonated": (
        "test_impersonating_an_administrator_fires",
        "test_impersonating_a_customer_is_silent",
    ),
    "mfa_removed_new_country": (
        "test_mfa_removed_from_another_country_fires",
        "test_mfa_removed_at_home_is_silent",
    ),
}
"""Each rule's scenario that must fire it and the one that must not."""


def test_every_rule_of_the_set_has_a_firing_and_a_silent_scenario() -> None:
    assert set(SCENARIOS) == set(RULES)
    for must_fire, must_not in SCENARIOS.values():
        assert callable(globals()[must_fire])
        assert callable(globals()[must_not])
