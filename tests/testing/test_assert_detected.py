"""``security_events.assert_detected`` / ``assert_not_detected``: an attack driven through the example Flask
app fires the rule, normal traffic does not, and a failure says what fired and how close the rule came."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import graffer_secevents as secevents
from graffer_secevents import User
from graffer_secevents._tools.demo import _load_example
from graffer_secevents.detect import GeoPoint, Signal
from graffer_secevents.testing import Capture

ATTACKER = "203.0.113.7"


@pytest.fixture
def client() -> Iterator[Any]:
    pytest.importorskip("flask_login")
    app = _load_example().create_app()
    with app.test_client() as test_client:
        yield test_client


def login(client: Any, email: str, password: str, ip: str) -> int:
    response = client.post(
        "/login", data={"username": email, "password": password}, environ_base={"REMOTE_ADDR": ip}
    )
    return int(response.status_code)


def test_credential_stuffing_through_the_app_is_detected_for_the_attacking_ip(
    security_events: Capture, client: Any
) -> None:
    for n in range(12):
        login(client, f"user{n}@example.org", "Summer2026!", ATTACKER)
    login(client, "ada@example.com", "correct horse battery staple", "198.51.100.10")
    signal = security_events.assert_detected("credential_stuffing", network__client__ip=ATTACKER)
    assert isinstance(signal, Signal)
    assert (signal.severity, signal.count) == ("medium", 12)
    security_events.assert_not_detected("credential_stuffing", network__client__ip="198.51.100.10")
    security_events.assert_not_detected("brute_force")


def test_normal_traffic_through_the_app_raises_no_signal(security_events: Capture, client: Any) -> None:
    login(client, "ada@example.com", "correct horse battery staple", "198.51.100.10")
    login(client, "ada@example.com", "typo", "198.51.100.10")
    login(client, "grace@example.com", "hopper-1906", "198.51.100.11")
    for rule_id in ("credential_stuffing", "brute_force", "brute_force_success", "account_enumeration"):
        security_events.assert_not_detected(rule_id)


def test_a_miss_lists_what_fired_and_the_nearest_miss(security_events: Capture) -> None:
    for n in range(3):
        secevents.log_login(User(id=100 + n), "failure", ATTACKER, exists=True, reason="invalid_credentials")
    for _ in range(10):
        secevents.log_login(User(id=7), "failure", "198.51.100.66", exists=True, reason="invalid_credentials")
    with pytest.raises(AssertionError) as caught:
        security_events.assert_detected("credential_stuffing", network__client__ip=ATTACKER)
    message = str(caught.value)
    assert (
        f"rule 'credential_stuffing' raised no signal for network.client.ip={ATTACKER} over 13 records"
        in message
    )
    assert "signals that fired:\n  brute_force [medium] usr.id=7: 10 events" in message
    assert f"nearest miss: network.client.ip={ATTACKER}: failed_users reached 3" in message
    assert "failed_users >= 10 -> medium" in message


def test_assert_not_detected_lists_the_signals_that_fired(security_events: Capture) -> None:
    for _ in range(10):
        secevents.log_login(User(id=7), "failure", "198.51.100.66", exists=True, reason="invalid_credentials")
    with pytest.raises(
        AssertionError, match=r"raised 1 signal\(s\), expected none:\n  brute_force \[medium\] usr.id=7"
    ):
        security_events.assert_not_detected("brute_force")
    security_events.assert_not_detected("brute_force", usr__id=8)  # another account: nothing


def test_an_unknown_rule_id_lists_the_ids(security_events: Capture) -> None:
    with pytest.raises(
        AssertionError,
        match=r"no rule 'credential_stufing' in the rules given; rule ids: .*credential_stuffing",
    ):
        security_events.assert_detected("credential_stufing")


def test_custom_rules_and_a_geo_lookup_can_be_given(security_events: Capture) -> None:
    team_rule = {
        "name": "Login from Japan",
        "message": "A login from Japan",
        "queries": [{"name": "a", "query": "@evt.outcome:success @network.client.geoip.country.iso_code:JP"}],
        "cases": [{"status": "info", "condition": "a >= 1"}],
        "options": {"evaluationWindow": 60, "keepAlive": 60, "maxSignalDuration": 60},
    }
    secevents.log_login(User(id=7), "success", "192.0.2.5")
    geo = {"192.0.2.5": GeoPoint(35.6762, 139.6503, "JP")}
    signal = security_events.assert_detected("Login from Japan", rules=[team_rule], geo=geo)
    assert signal.rule_name == "Login from Japan"
    security_events.assert_not_detected("Login from Japan", rules=[team_rule])  # no geo: no country


def test_the_failure_reads_well_in_a_users_pytest_run(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\naddopts = -p no:cacheprovider -p no:hypothesispytest -p no:ddtrace -p no:randomly\n"
    )
    pytester.makepyfile(
        """
        import graffer_secevents as secevents

        def test_stuffing(security_events):
            secevents.configure(hash_key="k" * 32)
            secevents.log_login(secevents.User(id=1), "failure", "203.0.113.7", exists=True)
            security_events.assert_detected("credential_stuffing")
        """
    )
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*rule 'credential_stuffing' raised no signal over 1 records*", "*nearest miss*"]
    )
