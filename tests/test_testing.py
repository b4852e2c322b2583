"""graffer_secevents.testing: capture_events(), the Capture API, its matchers and its failure messages.

The pytest plugin itself (entry point, isolation between tests, xdist, random order) is exercised with
pytester in tests/testing/test_secevents_plugin.py.
"""

from __future__ import annotations

import asyncio
import io
import re
import threading
import unittest
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest

import graffer_secevents as api
from graffer_secevents import EventValidationError, User, _config, testing
from graffer_secevents._context import (
    RequestContext,
    bind_request,
    current_request,
    current_user,
    request_context,
)
from graffer_secevents.testing import (
    ABSENT,
    ANY,
    HASHED,
    TIMESTAMP,
    Capture,
    MetricPoint,
    capture_events,
    hashed,
)


def failure_message(call: Any) -> str:
    with pytest.raises(AssertionError) as info:
        call()
    return str(info.value)


# --- capture_events(): what it swaps and what it restores -------------------------------------------------


def test_records_are_captured_instead_of_written(capsys: pytest.CaptureFixture[str]) -> None:
    with capture_events() as events:
        api.log_logout(7)
    assert capsys.readouterr().out == ""
    assert len(events.lines) == 1
    assert events.lines[0].endswith(b"}\n")
    assert events.records == [orjson.loads(events.lines[0])]
    assert events.records[0]["usr"] == {"id": "7"}


def test_configuration_in_force_is_back_after_the_block() -> None:
    before = api.get_config()
    with capture_events():
        assert api.get_config().strict is True
        assert api.get_config().writer is not before.writer
    assert api.get_config() is before


def test_configuration_is_restored_when_the_block_raises() -> None:
    def failing_block() -> None:
        with capture_events():
            api.configure(service="inside")
            raise RuntimeError("boom")

    before = api.get_config()
    with pytest.raises(RuntimeError, match="boom"):
        failing_block()
    assert api.get_config() is before
    assert not testing._active
    assert _config.set_config.__module__ == "graffer_secevents._config"


def test_configure_inside_the_block_takes_effect_but_keeps_capturing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An application factory that calls configure() under test must not end the capture."""
    before = api.get_config()
    with capture_events() as events:
        api.configure(service="auth-api", env="test", output="stdout", strict=False)
        api.log_logout(1)
        assert api.get_config().strict is True
    events.assert_emitted("session_logout", service="auth-api", env="test")
    assert capsys.readouterr().out == ""
    assert api.get_config() is before


def test_configuration_rebuilt_from_the_environment_inside_the_block_keeps_capturing() -> None:
    with capture_events() as events:
        _config.set_config(None)
        api.log_logout(2)
    events.assert_emitted("session_logout", usr__id="2")


def test_strict_by_default_and_lenient_on_request() -> None:
    with capture_events(), pytest.raises(EventValidationError):
        api.emit("authz_fail", user=1, outcome="maybe", resource="/x")
    with capture_events(strict=False) as events:
        api.emit("authz_fail", user=1, outcome="maybe", resource="/x")
    errors = events.records[0]["secevents"]["errors"]
    assert any(e.startswith("outcome:") for e in errors)


def test_lenient_block_coerces_then_strict_mode_is_back() -> None:
    with capture_events() as events:
        with events.lenient():
            api.emit("authz_fail", user=1, outcome="maybe", resource="/x")
        assert api.get_config().strict is True
        with pytest.raises(EventValidationError):
            api.emit("authz_fail", user=1, outcome="maybe", resource="/x")
    assert len(events.records) == 1


def test_lenient_block_restores_strict_mode_when_it_raises() -> None:
    with capture_events() as events:
        with pytest.raises(KeyError), events.lenient():
            raise KeyError("x")
        assert api.get_config().strict is True


def test_user_and_request_bound_inside_the_block_are_unbound_after_it() -> None:
    outer = RequestContext(client_ip="192.0.2.1")
    with request_context(outer):
        with capture_events():
            api.set_user(User(id=9))  # lands on the bound request
            inner_token = bind_request(RequestContext(client_ip="192.0.2.2"))
            assert current_request() is not outer
            del inner_token  # never reset: the capture cleans up
        assert current_request() is outer
    with capture_events():
        api.set_user(User(id=10))
    assert current_user() is None


# --- nesting ------------------------------------------------------------------------------------------------


def test_nested_captures_inner_sees_its_own_outer_sees_everything() -> None:
    with capture_events() as outer:
        api.log_logout(1)
        with capture_events() as inner:
            api.log_logout(2)
        api.log_logout(3)
    assert [r["usr"]["id"] for r in inner.records] == ["2"]
    assert [r["usr"]["id"] for r in outer.records] == ["1", "2", "3"]
    assert len(inner.metrics) == 1
    assert len(outer.metrics) == 3


def test_nested_capture_strict_mode_is_the_innermost_one() -> None:
    with capture_events(strict=False) as outer:
        with capture_events() as inner, pytest.raises(EventValidationError):
            api.emit("authz_fail", user=1, outcome="maybe", resource="/x")
        api.emit("authz_fail", user=1, outcome="maybe", resource="/x")
    assert inner.records == []
    assert len(outer.records) == 1


def test_clear_forgets_only_this_capture() -> None:
    with capture_events() as outer:
        with capture_events() as inner:
            api.log_logout(1)
            inner.clear()
            assert inner.records == []
            assert inner.metrics == []
        assert len(outer.records) == 1


# --- threads and asyncio ------------------------------------------------------------------------------------


def test_events_from_other_threads_are_captured() -> None:
    with capture_events() as events:
        thread = threading.Thread(target=api.log_logout, args=(1,))
        thread.start()
        thread.join(timeout=10)
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(api.log_logout, range(2, 42)))
    assert sorted(int(r["usr"]["id"]) for r in events.records) == list(range(1, 42))


def test_events_from_asyncio_tasks_and_to_thread_are_captured() -> None:
    async def handler(uid: int) -> None:
        api.set_user(User(id=uid))  # the task's own context
        await asyncio.sleep(0)
        api.emit("sensitive_read", object="report")

    async def main() -> None:
        await asyncio.gather(*(handler(uid) for uid in range(5)))
        await asyncio.to_thread(api.log_logout, 99)

    with capture_events() as events:
        asyncio.run(main())
    assert sorted(r["usr"]["id"] for r in events.find("sensitive_read")) == ["0", "1", "2", "3", "4"]
    events.assert_emitted("session_logout", usr__id="99")
    assert current_user() is None


# --- matching -----------------------------------------------------------------------------------------------


def test_assert_emitted_returns_the_first_matching_record(security_events: Capture) -> None:
    api.log_access_denied(1, "/a")
    api.log_access_denied(2, "/b")
    api.log_access_denied(3, "/b")
    record = security_events.assert_emitted("authz_fail", evt__resource="/b")
    assert record["usr"]["id"] == "2"
    assert [r["usr"]["id"] for r in security_events.find("authz_fail", evt__resource="/b")] == ["2", "3"]


def test_values_may_be_plain_regex_or_predicates(security_events: Capture) -> None:
    api.log_login(User(id=42, login="ada"), "failure", "203.0.113.7", reason="invalid_credentials")
    security_events.assert_emitted(
        "authn_login_fail",
        usr__id="42",
        network__client__ip=re.compile(r"203\.0\.113\.\d+"),
        evt__reason=lambda v: v.startswith("invalid"),
        timestamp=TIMESTAMP,
        usr__login=HASHED,
    )
    assert security_events.find("authn_login_fail", usr__id=re.compile("4")) == []  # full match, not search


def test_any_needs_the_field_and_absent_needs_it_missing(security_events: Capture) -> None:
    api.log_login(User(id=1, login="ada", name="Ada Lovelace"), "success")
    security_events.assert_emitted("authn_login_success", usr__login=ANY, usr__name=ABSENT, network=ABSENT)
    assert security_events.find("authn_login_success", usr__email=ANY) == []
    assert security_events.find("authn_login_success", usr__id=ABSENT) == []


def test_hashed_gives_the_pseudonym_written_for_logins_and_unknown_accounts(security_events: Capture) -> None:
    api.log_login(None, "failure", login="ghost@example.com", exists=False, reason="unknown_user")
    record = security_events.assert_emitted(
        "authn_login_fail", usr__login=hashed("ghost@example.com"), usr__id=hashed("ghost@example.com")
    )
    assert HASHED.fullmatch(record["usr"]["id"])
    assert hashed("ghost@example.com") != hashed("Ghost@example.com")


def test_hashed_follows_the_configured_key(security_events: Capture) -> None:
    default_key = hashed("ada")
    api.configure(hash_key="another-key-of-16-bytes")
    api.log_login(User(id=1, login="ada"), "success")
    security_events.assert_emitted("authn_login_success", usr__login=hashed("ada"))
    assert hashed("ada") != default_key


def test_a_predicate_that_raises_is_a_mismatch_with_a_reason(security_events: Capture) -> None:
    api.log_logout(5)
    message = failure_message(
        lambda: security_events.assert_emitted("session_logout", usr__id=lambda v: v + 1)
    )
    assert "usr.id: a predicate raised TypeError on '5'" in message


def test_metrics_are_captured_as_points_with_totals(security_events: Capture) -> None:
    for _ in range(3):
        api.log_login(None, "failure", login="ada", exists=False, reason="unknown_user")
    api.log_login(1, "success")
    assert security_events.metric_total("secevents.login.attempts", "outcome:failure") == 3
    assert security_events.metric_total("secevents.login.attempts", "outcome:success") == 1
    assert (
        MetricPoint(
            "secevents.events",
            1,
            ("evt_type:authn_login_success", "evt_category:authentication", "outcome:success"),
        )
        in security_events.metrics
    )


def test_repr_counts_the_records_by_type(security_events: Capture) -> None:
    api.log_logout(1)
    api.log_logout(2)
    api.log_access_denied(3, "/x")
    assert repr(security_events) == "<Capture of 3 record(s): authz_fail, session_logout (2)>"


# --- failure messages ---------------------------------------------------------------------------------------


def test_failure_lists_same_type_records_closest_first_with_the_fields_that_differ(
    security_events: Capture,
) -> None:
    api.log_login(
        User(id=1, login="ada"), "failure", "203.0.113.1", reason="invalid_credentials", exists=True
    )
    api.log_login(User(id=2, login="bob"), "failure", "203.0.113.2", reason="unknown_user", exists=False)
    message = failure_message(
        lambda: security_events.assert_emitted("authn_login_fail", usr__id="2", usr__login=hashed("ada"))
    )
    lines = message.splitlines()
    assert lines[0].startswith("no authn_login_fail event matches {usr.id='2', usr.login='anon_")
    assert lines[0].endswith("2 authn_login_fail events were emitted, closest first:")
    # Each record differs in one field; ties keep the emission order.
    assert lines[1] == "  #1 usr.id: expected '2', got '1'"
    assert lines[2].startswith(
        '     {"status":"warning","evt":{"outcome":"failure","reason":"invalid_credentials"}'
    )
    assert (
        lines[3] == f"  #2 usr.login: expected {hashed('ada')!r}, got {hashed('bob')!r}"
    )  # hashes as written
    assert '"network":{"client":{"ip":"203.0.113.2"}}' in lines[4]


def test_failure_names_missing_fields(security_events: Capture) -> None:
    api.log_logout(1)
    message = failure_message(lambda: security_events.assert_emitted("session_logout", usr__login="ada"))
    assert "#1 usr.login: expected 'ada', missing" in message


def test_failure_truncates_long_records_and_shows_at_most_five(security_events: Capture) -> None:
    for uid in range(8):
        api.emit("sensitive_read", user=uid, object="report", note="x" * 900)
    message = failure_message(lambda: security_events.assert_emitted("sensitive_read", usr__id="nobody"))
    shown = [line for line in message.splitlines() if line.startswith("     {")]
    assert len(shown) == 5
    assert all(len(line) <= 5 + 300 and line.endswith("…") for line in shown)
    assert message.endswith("  ... and 3 more")


def test_failure_without_records_of_that_type_lists_the_emitted_types(security_events: Capture) -> None:
    api.log_logout(1)
    api.log_logout(2)
    api.log_access_denied(3, "/x")
    message = failure_message(lambda: security_events.assert_emitted("authn_login_fail", usr__id="3"))
    assert message == "no authn_login_fail event was emitted; emitted: authz_fail, session_logout (2)"


def test_failure_when_nothing_was_emitted_says_so(security_events: Capture) -> None:
    message = failure_message(lambda: security_events.assert_emitted("authn_login_fail"))
    assert message == "no authn_login_fail event was emitted; no event was emitted at all"


def test_failure_for_a_type_outside_the_catalog_suggests_the_closest(security_events: Capture) -> None:
    api.log_login(1, "failure", reason="invalid_credentials")
    message = failure_message(lambda: security_events.assert_emitted("authn_login_failure"))
    assert (
        "'authn_login_failure' is not an event type of the catalog; did you mean 'authn_login_fail' or 'authn_login_fail_max'?"
        in message
    )


def test_assert_not_emitted_passes_fails_and_refuses_unknown_types(security_events: Capture) -> None:
    api.log_access_denied(1, "/admin")
    security_events.assert_not_emitted("authn_login_success")
    security_events.assert_not_emitted("authz_fail", usr__id="2")
    message = failure_message(
        lambda: security_events.assert_not_emitted("authz_fail", evt__resource="/admin")
    )
    assert message.splitlines() == [
        "expected no authz_fail event matching {evt.resource='/admin'}, but 1 was emitted:",
        '  {"status":"critical","evt":{"outcome":"failure","resource":"/admin"},"usr":{"id":"1"}}',
    ]
    with pytest.raises(ValueError, match="did you mean 'authz_fail'"):
        security_events.assert_not_emitted("authz_failed")


# --- without pytest's fixture -------------------------------------------------------------------------------


def test_capture_events_works_in_a_unittest_test_case() -> None:
    class _LoginTest(unittest.TestCase):
        def setUp(self) -> None:
            self.events = self.enterContext(capture_events())

        def test_emits(self) -> None:
            api.log_login(None, "failure", login="ada", exists=False, reason="unknown_user")
            self.events.assert_emitted("authn_login_fail", usr__login=hashed("ada"), usr__exists=False)

        def test_fails(self) -> None:
            api.log_logout(1)
            self.events.assert_emitted("authn_login_fail")

    before = api.get_config()
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(_LoginTest)
    result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(suite)
    assert result.testsRun == 2
    assert result.errors == []
    assert [test.id().rsplit(".", 1)[1] for test, _tb in result.failures] == ["test_fails"]
    assert "emitted: session_logout" in result.failures[0][1]
    assert api.get_config() is before
