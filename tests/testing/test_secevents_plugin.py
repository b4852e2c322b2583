"""The ``secevents`` pytest plugin, run the way users run it: pytest's own ``pytester`` starts pytest on
small test files, and the plugin comes from the installed ``pytest11`` entry point (nothing names it).

Inline runs (same process, ~0.1 s each) wherever possible; one subprocess run for pytest-xdist.
"""

from __future__ import annotations

import pytest

from graffer_secevents import _config, testing

# Plugins that have nothing to do with ours and cost time: hypothesis' re-imports and assertion-rewrites
# hypothesis on every inline run (~0.8 s); ddtrace's takes ~2 s per xdist worker.
INI = """
[pytest]
addopts = --strict-markers -p no:cacheprovider -p no:hypothesispytest -p no:ddtrace
filterwarnings = error
"""

# Every test checks it starts clean, then leaves as much behind as it can: records, metrics, a bound user,
# a request context bound and never reset, a configure() call, a background thread's and a task's events.
ISOLATION = """
import asyncio
import threading

import pytest

import graffer_secevents as api
from graffer_secevents._context import RequestContext, bind_request, current_request, current_user


def starts_clean(security_events):
    assert security_events.records == []
    assert security_events.metrics == []
    assert current_user() is None
    assert current_request() is None
    assert api.get_config().service is None
    assert api.get_config().strict is True


def test_binds_a_user_and_emits(security_events):
    starts_clean(security_events)
    api.set_user(api.User(id=1))
    api.log_logout()
    security_events.assert_emitted("session_logout", usr__id="1")


def test_binds_a_request_and_never_resets_it(security_events):
    starts_clean(security_events)
    bind_request(RequestContext(client_ip="192.0.2.1", user=api.User(id=2)))
    api.log_access_denied(None, "/admin")
    security_events.assert_emitted("authz_fail", usr__id="2", network__client__ip="192.0.2.1")


def test_configures_the_library(security_events):
    starts_clean(security_events)
    api.configure(service="leaky", strict=False)
    api.log_logout(3)
    security_events.assert_emitted("session_logout", service="leaky")


def test_emits_from_a_thread(security_events):
    starts_clean(security_events)
    thread = threading.Thread(target=api.log_logout, args=(4,))
    thread.start()
    thread.join(timeout=10)
    security_events.assert_emitted("session_logout", usr__id="4")


def test_emits_from_asyncio_tasks(security_events):
    starts_clean(security_events)

    async def handler(uid):
        api.set_user(api.User(id=uid))
        await asyncio.sleep(0)
        api.log_logout()

    async def main():
        await asyncio.gather(handler(5), handler(6))

    asyncio.run(main())
    assert sorted(r["usr"]["id"] for r in security_events.records) == ["5", "6"]


@pytest.mark.anyio
async def test_is_itself_async(security_events):  # anyio's pytest plugin, installed with Starlette
    starts_clean(security_events)
    api.set_user(api.User(id=8))
    await asyncio.sleep(0)
    api.log_logout()
    security_events.assert_emitted("session_logout", usr__id="8")


def test_without_the_fixture_binds_a_user():
    api.set_user(api.User(id=7))


def test_sees_nothing_of_the_others(security_events):
    starts_clean(security_events)
    security_events.assert_not_emitted("session_logout")
"""


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    return pytester


def test_fixture_comes_from_the_entry_point_and_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_uses_it(security_events):
            assert security_events.records == []
        """
    )
    pytester.runpytest_inprocess("-p", "no:randomly").assert_outcomes(passed=1)
    disabled = pytester.runpytest_inprocess("-p", "no:secevents", "-p", "no:randomly")
    disabled.assert_outcomes(errors=1)
    disabled.stdout.fnmatch_lines(["*fixture 'security_events' not found*"])


def test_fixture_and_marker_are_documented_in_pytest_help(pytester: pytest.Pytester) -> None:
    fixtures = pytester.runpytest_inprocess("--fixtures")
    fixtures.stdout.fnmatch_lines(["security_events -- *_pytest_plugin.py*", "*Capture the security events*"])
    markers = pytester.runpytest_inprocess("--markers")
    markers.stdout.fnmatch_lines(
        ["@pytest.mark.secevents_lenient: run the secevents fixture in lenient mode*"]
    )


def test_passing_and_failing_assertions_with_a_readable_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import graffer_secevents as api
        from graffer_secevents.testing import HASHED, hashed


        def test_login_failure_is_asserted(security_events):
            api.log_login(None, "failure", "203.0.113.5", login="ada", exists=False, reason="unknown_user")
            record = security_events.assert_emitted(
                "authn_login_fail", usr__id=HASHED, usr__login=hashed("ada"), network__client__ip="203.0.113.5"
            )
            assert record["usr"]["exists"] is False
            security_events.assert_not_emitted("authn_login_success")


        def test_wrong_expectation(security_events):
            api.log_login(None, "failure", "203.0.113.5", login="ada", exists=False, reason="unknown_user")
            security_events.assert_emitted("authn_login_fail", usr__exists=True, evt__reason="unknown_user")


        def test_wrong_type(security_events):
            api.log_logout(1)
            security_events.assert_emitted("authn_logout")


        def test_unexpected_event(security_events):
            api.log_logout(1)
            security_events.assert_not_emitted("session_logout")
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*_ test_wrong_expectation _*",
            ">*security_events.assert_emitted(*usr__exists=True*",
            "E       AssertionError: no authn_login_fail event matches {usr.exists=True, evt.reason='unknown_user'};"
            " 1 authn_login_fail event was emitted:",
            "E         #1 usr.exists: expected True, got False",
            'E            {"status":"warning","evt":{"outcome":"failure","reason":"unknown_user"},'
            '"usr":{"id":"anon_*","login":"anon_*","exists":false},"network":{"client":{"ip":"203.0.113.5"}}}',
            "*_ test_wrong_type _*",
            "E       AssertionError: no authn_logout event was emitted ('authn_logout' is not an event type of "
            "the catalog; did you mean 'session_logout' or *?); emitted: session_logout",
            "*_ test_unexpected_event _*",
            "E       AssertionError: expected no session_logout event, but 1 was emitted:",
            'E         {"status":"info","evt":{"outcome":"success"},"usr":{"id":"1"}}',
        ]
    )
    # __tracebackhide__: the failure points at the test's line, not into graffer_secevents/testing.py.
    assert "testing.py:" not in result.stdout.str()


def test_records_context_and_configuration_never_leak_between_tests_in_any_order(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_isolation=ISOLATION)
    pytester.runpytest_inprocess("-p", "no:randomly").assert_outcomes(passed=8)  # file order
    for seed in (1, 2, 3, 4):
        result = pytester.runpytest_inprocess("-p", "randomly", f"--randomly-seed={seed}")
        result.assert_outcomes(passed=8)
    assert not testing._active  # every capture ended, configure()/set_config are the library's own again
    assert _config.set_config.__module__ == "graffer_secevents._config"


def test_isolation_holds_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_isolation=ISOLATION, test_isolation_again=ISOLATION)
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2", "-p", "randomly")
    result.assert_outcomes(passed=16)


def test_lenient_marker_and_block(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        import graffer_secevents as api


        def emit_bad_input():
            api.emit("excess_rate_limit_exceeded", user=1, max_limit="ten", window_seconds=60)


        def test_strict_by_default(security_events):
            emit_bad_input()


        @pytest.mark.secevents_lenient
        def test_marked_lenient(security_events):
            emit_bad_input()
            record = security_events.assert_emitted("excess_rate_limit_exceeded", usr__id="1")
            assert any(e.startswith("evt.max_limit") for e in record["secevents"]["errors"])


        @pytest.mark.secevents_lenient
        class TestWholeClass:
            def test_lenient_too(self, security_events):
                emit_bad_input()


        def test_lenient_block(security_events):
            with security_events.lenient():
                emit_bad_input()
            with pytest.raises(api.EventValidationError):
                emit_bad_input()
            assert len(security_events.records) == 1
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:randomly")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_strict_by_default _*",
            "E *EventValidationError: excess_rate_limit_exceeded: evt.max_limit: *",
        ]
    )


def test_the_old_fixture_name_still_works_and_warns_that_it_was_renamed(pytester: pytest.Pytester) -> None:
    """``secevents`` shadowed ``import graffer_secevents as secevents``; it is kept for one release."""
    pytester.makepyfile(
        """
        import pytest
        import graffer_secevents

        @pytest.mark.filterwarnings("ignore::DeprecationWarning")
        def test_old_name(secevents):
            graffer_secevents.log_logout(7)
            secevents.assert_emitted("session_logout", usr__id="7")

        @pytest.mark.filterwarnings("error")
        def test_old_name_warns(secevents):
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*FixtureRenamedWarning*renamed 'security_events'*"])
