"""Shared test setup: a known hash key and no real metrics client unless a test asks for one."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

pytest_plugins = ["pytester"]

# Set before any configuration is built, so no test depends on the developer's environment.
os.environ["SECEVENTS_HASH_KEY"] = "test-hash-key-of-32-bytes-length"
os.environ.setdefault("SECEVENTS_METRICS", "memory")
# Records written on the caller's thread, so a test reads its output right after the call; the queued
# writer has its own tests (tests/test_delivery*.py), which configure delivery="queue" explicitly.
os.environ.setdefault("SECEVENTS_DELIVERY", "sync")
for _name in ("DD_SERVICE", "DD_ENV", "DD_VERSION", "SECEVENTS_STRICT", "SECEVENTS_TRUSTED_PROXIES"):
    os.environ.pop(_name, None)


@pytest.fixture(autouse=True)
def _fresh_configuration() -> Iterator[None]:
    """Every test starts from the environment's configuration; configure() calls never leak between tests."""
    from graffer_secevents import flush
    from graffer_secevents._config import set_config

    set_config(None)
    yield
    # What the test queued is written now, into its own capture, not into the next test's (capsys included)
    # while the writer thread catches up; a no-op when nothing is queued (the default delivery is "sync").
    flush(timeout=10)
    set_config(None)


@pytest.fixture(autouse=True)
def _nothing_bound() -> Iterator[None]:
    """Every test starts with no request, no `set_user()` user and no actor or job bound on its thread, as
    the `security_events` fixture does for the tests that use it: pytest runs all the tests of a process on
    one thread, in one context, so a `set_user()` or a `bind_request()` a test leaves behind would otherwise
    name the user (or the request, or the actor) of every event the next tests emit."""
    _unbind()
    yield
    _unbind()


def _unbind() -> None:
    from graffer_secevents import _context, _impersonation

    _context._request.set(None)
    _context._user.set(None)
    _context._scope.set(None)
    _impersonation._impersonator.set(None)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The test order's seed, under ``-q`` too (which hides pytest-randomly's header, and ``make test`` runs
    ``-q``): a run that failed in one order is run again in that order with ``-p randomly --randomly-seed=N``
    (and ``-n 2``, as ``make test`` deals the tests to two workers)."""
    seed = getattr(config.option, "randomly_seed", None)
    if isinstance(seed, int) and config.pluginmanager.has_plugin("randomly"):
        terminalreporter.write_line(f"test order: -p randomly --randomly-seed={seed}")
