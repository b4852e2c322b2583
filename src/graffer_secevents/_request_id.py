"""Request ids: accept a safe upstream `X-Request-ID` or make a new one (unique, not secret)."""

from __future__ import annotations

import os
import random
import re
from typing import Final

__all__ = ["REQUEST_ID_PATTERN", "accept_request_id", "new_request_id"]

REQUEST_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9._-]{1,128}")
"""What an upstream request id must fully match to be kept (`X-Request-ID` and friends)."""
_valid_request_id: Final = REQUEST_ID_PATTERN.fullmatch


# Fresh ids are 128 bits from a per-process generator seeded with 256 bits from os.urandom, and seeded again
# in a forked child (gunicorn --preload, multiprocessing), which must never repeat its parent's ids. A
# getrandom() syscall per request costs 0.5-2 µs on a VM (uuid4() as much), and a pool refilled by one big
# os.urandom call evicts the application's data from the CPU caches every few hundred requests; this costs
# ~0.15 µs and touches no other memory. Request ids are correlation ids, echoed to the client: they must be
# unique, not secret (anyone may send an upstream X-Request-ID anyway). getrandbits() runs under the GIL, so
# threads share the generator without a lock.
_generator: Final = random.Random(os.urandom(32))  # noqa: S311 - unique, not secret
_getrandbits: Final = _generator.getrandbits


def new_request_id() -> str:
    """Return a new request id: 32 lowercase hex characters, 128 random bits (unique, not secret)."""
    return _getrandbits(128).to_bytes(16, "little").hex()


def _reseed_after_fork() -> None:
    _generator.seed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed_after_fork)


def accept_request_id(value: str | None) -> str:
    """Return `value` if it is a safe request id, else a new one (32 random hex characters).

    Upstream ids are client-controlled; only 1-128 characters of `[A-Za-z0-9._-]` are kept, so an id
    can never carry log-injection payloads or unbounded length into events.

    Example:
        >>> accept_request_id("req-42")
        'req-42'
        >>> len(accept_request_id("bad id\\n"))
        32
    """
    if value is not None and type(value) is str and _valid_request_id(value):
        return value
    return _getrandbits(128).to_bytes(16, "little").hex()  # new_request_id(), inlined
