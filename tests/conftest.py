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
    from graffer_secevents._config import set_config

    set_config(None)
    yield
    set_config(None)
