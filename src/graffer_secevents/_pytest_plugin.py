"""The pytest plugin, registered through the `pytest11` entry point (no conftest needed): the
`security_events` fixture and the `secevents_lenient` marker. See `graffer_secevents.testing` and
`docs/testing.md`.

Disable it with `-p no:secevents`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from . import _context
from ._errors import SecEventsWarning
from .testing import Capture, capture_events

__all__ = ["secevents", "security_events"]


class FixtureRenamedWarning(SecEventsWarning, DeprecationWarning):
    """The `secevents` fixture was renamed `security_events`; the old name goes in the next release."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "secevents_lenient: run the secevents fixture in lenient mode: invalid event input is coerced and "
        "noted in secevents.errors instead of raising EventValidationError",
    )


@pytest.fixture
def security_events(request: pytest.FixtureRequest) -> Iterator[Capture]:
    """Capture the security events and metric points the test emits, from any thread or asyncio task.

    Strict mode is on (invalid event input raises `EventValidationError`) unless the test is marked
    `@pytest.mark.secevents_lenient`; `security_events.lenient()` turns it off for a block. Every test
    starts with no request context, no `set_user()` user and no actor or job bound, and whatever it binds
    or configures is undone when it ends.

    Example:
        ```python
        def test_wrong_password_is_a_login_failure(security_events, client):
            client.post("/login", data={"username": "ada", "password": "wrong"})
            security_events.assert_emitted("authn_login_fail", usr__login=hashed("ada"), usr__exists=True)
        ```
    """
    lenient = request.node.get_closest_marker("secevents_lenient") is not None
    # A test that bound a user or a request without the fixture must not hand it to this one.
    _context._request.set(None)
    _context._user.set(None)
    _context._scope.set(None)
    try:
        with capture_events(strict=not lenient) as capture:
            yield capture
    finally:
        _context._request.set(None)
        _context._user.set(None)
        _context._scope.set(None)


@pytest.fixture
def secevents(request: pytest.FixtureRequest, security_events: Capture) -> Capture:
    """Deprecated name of `security_events` (it shadowed `import graffer_secevents as secevents`)."""
    warnings.warn(
        "the 'secevents' fixture is renamed 'security_events' (it shadowed `import graffer_secevents as "
        "secevents`); the old name will be removed in the next release",
        FixtureRenamedWarning,
        stacklevel=2,
    )
    return security_events
