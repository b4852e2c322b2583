"""The pytest plugin, registered through the ``pytest11`` entry point: the ``secevents`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import Capture, capture_events

__all__ = ["secevents"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "secevents_lenient: run the secevents fixture in lenient mode (bad input is coerced, not raised)",
    )


@pytest.fixture
def secevents(request: pytest.FixtureRequest) -> Iterator[Capture]:
    """Capture the security events and metric points a test emits (strict mode unless marked lenient)."""
    lenient = request.node.get_closest_marker("secevents_lenient") is not None
    with capture_events(strict=not lenient) as capture:
        yield capture
