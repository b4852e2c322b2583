"""The suite's own shared setup (tests/conftest.py) keeps tests independent of the tests that ran before them
in the same process (pytest-randomly shuffles them; pytest-xdist deals them to workers by timing).

Run with pytester on two small tests in a fixed order: the first leaves behind what a test can leave on
pytest's thread without the ``security_events`` fixture (a bound user, request, actor, impersonator; records
still queued for the writer thread), the second checks it starts clean. Each check is also run with the
conftest's part removed, to show it is what the second test relies on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()
INI = """
[pytest]
addopts = --strict-markers -p no:cacheprovider -p no:hypothesispytest -p no:ddtrace -p no:randomly
filterwarnings = error
"""
LEAVES_AND_CHECKS = """
import graffer_secevents as api
from graffer_secevents._context import RequestContext, bind_request, current_actor, current_request
from graffer_secevents._context import current_user
from graffer_secevents._impersonation import current_impersonator


def test_1_leaves_a_user_a_request_an_actor_and_an_impersonator_bound():
    api.set_user(api.User(id="left-behind"))
    bind_request(RequestContext(client_ip="192.0.2.9", request_id="left-behind"))
    api.actor("left-behind").__enter__()
    api.impersonating("left-behind").__enter__()
    assert current_user() is not None and current_request() is not None and current_actor() is not None


def test_2_starts_with_nothing_bound():
    assert current_user() is None
    assert current_request() is None
    assert current_actor() is None
    assert current_impersonator(None) is None
"""


# The output writes a moment after it is given a record, on the writer thread: without the conftest's flush the
# record lands in whatever sys.stdout is by then, the next test's capsys.
QUEUES_AND_CHECKS = """
import io
import sys
import time

import graffer_secevents as api


class Late(io.StringIO):
    def write(self, text):
        if '"end":true' in text:  # the writer's end record, at the process's exit: not this test's
            return len(text)
        time.sleep(0.2)
        return sys.stdout.write(text)


def test_1_queues_a_record_for_the_writer_thread():
    api.configure(output=Late(), delivery="queue")
    api.log_logout(1)


def test_2_captures_only_its_own_output(capsys):
    out, deadline = "", time.monotonic() + 1.5
    while not out and time.monotonic() < deadline:
        time.sleep(0.05)
        out = capsys.readouterr().out
    assert out == ""
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.makepyfile(test_order=LEAVES_AND_CHECKS)
    return pytester


@pytest.fixture
def queued(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.makepyfile(test_order=QUEUES_AND_CHECKS)
    return pytester


def test_what_a_test_binds_on_pytests_thread_is_gone_for_the_next(suite: pytest.Pytester) -> None:
    suite.makeconftest(CONFTEST)
    suite.runpytest_inprocess().assert_outcomes(passed=2)


def test_without_the_conftests_unbinding_the_next_test_inherits_it(suite: pytest.Pytester) -> None:
    """The check above proves something: with the fixture not applied, the second test fails."""
    autouse = "@pytest.fixture(autouse=True)\ndef _nothing_bound()"
    assert autouse in CONFTEST
    suite.makeconftest(CONFTEST.replace(autouse, "@pytest.fixture\ndef _nothing_bound()"))
    result = suite.runpytest_inprocess()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_2_starts_with_nothing_bound*"])


def test_records_a_test_queued_are_written_before_the_next_test_starts(queued: pytest.Pytester) -> None:
    queued.makeconftest(CONFTEST)
    queued.runpytest_inprocess().assert_outcomes(passed=2)


def test_without_the_conftests_flush_they_land_in_the_next_tests_capture(queued: pytest.Pytester) -> None:
    flush = "    flush(timeout=10)\n"
    assert flush in CONFTEST
    queued.makeconftest(CONFTEST.replace(flush, ""))
    result = queued.runpytest_inprocess()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_2_captures_only_its_own_output*", "*session_logout*"])


def test_the_order_s_seed_is_printed_even_under_q(suite: pytest.Pytester) -> None:
    """A failure that depends on the order can be run again in that order from the CI log alone."""
    suite.makeconftest(CONFTEST)
    result = suite.runpytest_inprocess("-q", "-p", "randomly", "--randomly-seed=4242", "-k", "test_2")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["test order: -p randomly --randomly-seed=4242"])
    plain = suite.runpytest_inprocess("-q")  # pytest-randomly off: no order to repeat, nothing said
    assert "randomly-seed" not in plain.stdout.str()
