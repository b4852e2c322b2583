"""Request ids: accept a safe upstream `X-Request-ID` or make a new one (unique, not secret)."""

from __future__ import annotations

import os
import random
import re
from typing import Final

from ._fork import check as _check_fork
from ._fork import in_child
from ._privacy import secret_kinds

__all__ = [
    "REQUEST_ID_PATTERN",
    "ReplacedRequestId",
    "accept_request_id",
    "new_request_id",
    "screen_request_id",
]

REQUEST_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9._-]{1,128}")
"""What an upstream request id must fully match to be kept (`X-Request-ID` and friends)."""
_valid_request_id: Final = REQUEST_ID_PATTERN.fullmatch
_HEX_DASH: Final = "0123456789abcdefABCDEF-"
_UUID_LENGTH: Final = 36
_MIN_SECRET: Final = 16  # every secret shape (docs/privacy.md) is a run of at least 16 characters


class ReplacedRequestId(str):
    """A new request id that replaced an upstream one shaped like a secret (a JWT, an API key): the
    pipeline notes the replacement in `secevents.errors` of every record of the request."""

    kinds: tuple[str, ...] = ()


def _replaced(kinds: tuple[str, ...]) -> ReplacedRequestId:
    _check_fork()
    replaced = ReplacedRequestId(_getrandbits(128).to_bytes(16, "little").hex())
    replaced.kinds = kinds
    return replaced


def _maybe_secret(value: str) -> bool:
    """Cheap: ids shorter than any secret shape, UUIDs and our own hex ids are not checked further."""
    return len(value) >= _MIN_SECRET and (len(value) > _UUID_LENGTH or bool(value.strip(_HEX_DASH)))


def screen_request_id(value: str, notes: list[str]) -> str:
    """`value` as a record's `http.request_id`: a secret-shaped id is replaced by a new one, noted in `notes`.

    Integrations never hand over such an id (`accept_request_id` replaced it, marked); a context bound by
    hand may.
    """
    if type(value) is ReplacedRequestId:
        notes.append(f"http.request_id: the upstream id held {', '.join(value.kinds)}; replaced by a new id")
        return str.__str__(value)
    if not _maybe_secret(value):
        return value
    kinds = secret_kinds(value)
    if "@" in value:
        kinds = (*kinds, "an e-mail address")
    if not kinds:
        return value
    notes.append(f"http.request_id: the id held {', '.join(kinds)}; replaced by a new id")
    return _replaced(kinds)


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
    _check_fork()  # a worker forked in C (uWSGI) must not repeat its master's (and siblings') ids
    return _getrandbits(128).to_bytes(16, "little").hex()


def _reseed_after_fork() -> None:
    _generator.seed(os.urandom(32))


in_child(_reseed_after_fork)


def accept_request_id(value: str | None) -> str:
    """Return `value` if it is a safe request id, else a new one (32 random hex characters).

    Upstream ids are client-controlled; only 1-128 characters of `[A-Za-z0-9._-]` are kept, so an id
    can never carry log-injection payloads or unbounded length into events. An id shaped like a secret (a
    JWT, an API key, a long random token: docs/privacy.md) is replaced by a new one, never echoed or
    written; records note the replacement.

    Example:
        >>> accept_request_id("req-42")
        'req-42'
        >>> len(accept_request_id("bad id\\n"))
        32
    """
    if value is not None and type(value) is str and _valid_request_id(value):
        if _maybe_secret(value) and (kinds := secret_kinds(value)):
            return _replaced(kinds)
        return value
    _check_fork()  # new_request_id(), inlined
    return _getrandbits(128).to_bytes(16, "little").hex()
