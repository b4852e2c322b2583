"""Property-based hostile input over every public helper and ``emit``, in every argument and in ``**context``.

Lenient mode: no exception, exactly one JSON line, ``usr``/IP/``evt`` kept whenever they were valid, no
string over Datadog's limit, a note for every change, no secret in the output, and the guard never reached.
Strict mode: nothing but ``EventValidationError``.

``SECEVENTS_FUZZ_EXAMPLES`` sets the examples per helper and property. The default, 100, is what
`make test` (and so CI) runs: 400 hostile calls per helper, about 8,300 in all, some 50 CPU-seconds.
A longer run: ``SECEVENTS_FUZZ_EXAMPLES=1000 .venv/bin/python -m pytest tests/test_hostile_properties.py``.
"""

from __future__ import annotations

import array
import dataclasses
import io
import itertools
import json
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graffer_secevents as api
from graffer_secevents import EventValidationError
from graffer_secevents._guard import internal_errors
from graffer_secevents._limits import MAX_KEY, MAX_STRING
from graffer_secevents._privacy import is_secret_key

EXAMPLES = int(os.environ.get("SECEVENTS_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MARKER = "hunter2-SECRET-marker"
USER_ID = "u-42"
IP = "203.0.113.7"


# --- hostile values ----------------------------------------------------------------------------------------


class Boom(RuntimeError):
    """What every hostile dunder raises."""


def _boom(*_args: Any) -> Any:
    raise Boom("hostile")


class HostileStr(str):
    __eq__ = __ne__ = __hash__ = __len__ = __iter__ = __getitem__ = __str__ = __repr__ = _boom
    __format__ = __bool__ = __contains__ = lower = encode = _boom


class HostileInt(int):
    __eq__ = __ne__ = __hash__ = __bool__ = __str__ = __repr__ = __index__ = __int__ = __lt__ = _boom
    __le__ = __gt__ = __ge__ = __format__ = _boom


class HostileObject:
    __eq__ = __ne__ = __hash__ = __bool__ = __len__ = __iter__ = __str__ = __repr__ = _boom  # type: ignore[assignment]
    __format__ = __int__ = __float__ = __index__ = _boom


class NoAttributes:
    """Every attribute access raises, ``__class__`` included (so ``isinstance`` on it raises too)."""

    def __getattribute__(self, name: str) -> Any:
        raise Boom(name)


class HostileMapping(dict[str, Any]):
    items = keys = values = __iter__ = __len__ = __getitem__ = __bool__ = __contains__ = _boom  # type: ignore[assignment]


@dataclasses.dataclass
class Credentials:
    username: str = "ada"
    password: str = MARKER
    api_token: str = MARKER


class Account(pydantic.BaseModel):
    name: str = "ada"
    password: str = MARKER
    session_cookie: str = MARKER


def _cyclic() -> dict[str, Any]:
    data: dict[str, Any] = {"a": 1}
    data["self"] = data
    return data


def _deep_secret(depth: int) -> dict[str, Any]:
    data: dict[str, Any] = {"password": MARKER, "ok": "x"}
    for _ in range(depth):
        data = {"d": data}
    return data


def _generator() -> Iterator[int]:
    yield from itertools.count()


surrogates = st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1)
texts = st.one_of(
    st.text(max_size=40),
    surrogates,
    st.text(alphabet=st.characters(max_codepoint=31), max_size=10),
    st.integers(MAX_STRING - 2, MAX_STRING + 2).map(lambda n: "é" * n),
    st.just("x" * 5_000),
    st.just('203.0.113.7\n{"evt":{"type":"forged"}}'),
)
_HUGE = (2**63, -(2**63) - 1, 2**64 + 5, 10**1100, -(10**5000))  # the last has no str(): past 4,300 digits
huge_ints = st.integers(0, len(_HUGE) - 1).map(_HUGE.__getitem__)
scalars = st.one_of(
    texts,
    st.integers(),
    huge_ints,
    st.floats(),
    st.booleans(),
    st.none(),
    st.binary(max_size=16),
)
objects = st.one_of(
    st.builds(HostileStr, st.sampled_from(["success", "failure", "complete", "read", "authz_fail", IP])),
    st.builds(HostileInt, st.integers(-5, 5)),
    st.builds(HostileObject),
    st.builds(NoAttributes),
    st.builds(HostileMapping),
    st.builds(_generator),
    st.builds(itertools.count),
    st.builds(lambda: array.array("i", [1, 2, 3])),
    st.builds(lambda: memoryview(b"\xff\xfeabc")),
    st.builds(Credentials),
    st.builds(Account),
    st.builds(_cyclic),
    st.builds(_deep_secret, st.integers(0, 40)),
    st.builds(object),
)
keys = st.one_of(
    st.text(max_size=12),
    surrogates,
    st.sampled_from(["password", "X-Api-Key", "sessionid", "Authorization", "refresh_token"]),
    st.integers(55, 80).map(lambda n: ("k" * n)[: n - 9] + "_token_xx"),
    st.integers(50, 70).map(lambda n: "a" * n),
)
values = st.recursive(
    st.one_of(scalars, objects),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=4),
        st.tuples(children, children),
    ),
    max_leaves=12,
)
contexts = st.dictionaries(
    st.text(min_size=1, max_size=10).map(lambda k: "c_" + k),
    values,
    max_size=4,
)


def _secret_context() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "password": st.just(MARKER),
            "nested": st.builds(_deep_secret, st.integers(0, 12)),
            "creds": st.builds(Credentials),
            "account": st.builds(Account),
            "k" * 44 + "_token_abc": st.just(MARKER),
        }
    )


# --- every public entry point, each argument fed by ``v`` (``u``/``ip`` where a user or IP goes) ----------

Call = Callable[[Any, Any, Any, dict[str, Any]], None]
HELPERS: dict[str, Call] = {
    "log_login": lambda v, u, ip, m: api.log_login(u, v, ip, login=v, exists=v, reason=v, retries=v, **m),
    "log_logout": lambda v, u, ip, m: api.log_logout(u, ip, session_id=v, **m),
    "log_signup": lambda v, u, ip, m: api.log_signup(u, ip, login=v, **m),
    "log_password_change": lambda v, u, ip, m: api.log_password_change(u, v, ip, reason=v, **m),
    "log_password_reset": lambda v, u, ip, m: api.log_password_reset(u, ip, stage=v, login=v, exists=v, **m),
    "log_mfa_challenge": lambda v, u, ip, m: api.log_mfa_challenge(u, v, ip, method=v, reason=v, **m),
    "log_account_locked": lambda v, u, ip, m: api.log_account_locked(u, ip, reason=v, **m),
    "log_token_created": lambda v, u, ip, m: api.log_token_created(u, ip, token_id=v, entitlements=v, **m),
    "log_token_revoked": lambda v, u, ip, m: api.log_token_revoked(u, ip, token_id=v, **m),
    "log_access_denied": lambda v, u, ip, m: api.log_access_denied(u, v, ip, **m),
    "log_privilege_change": lambda v, u, ip, m: api.log_privilege_change(
        u, v, from_role=v, to_role=v, ip=ip, **m
    ),
    "log_admin_action": lambda v, u, ip, m: api.log_admin_action(u, v, ip, resource=v, **m),
    "log_user_created": lambda v, u, ip, m: api.log_user_created(u, v, attributes=v, ip=ip, **m),
    "log_user_deleted": lambda v, u, ip, m: api.log_user_deleted(u, v, ip=ip, **m),
    "log_rate_limited": lambda v, u, ip, m: api.log_rate_limited(u, ip, max_limit=v, resource=v, **m),
    "log_input_validation_failed": lambda v, u, ip, m: api.log_input_validation_failed(u, ip, fields=v, **m),
    "log_sensitive_access": lambda v, u, ip, m: api.log_sensitive_access(u, v, action=v, ip=ip, **m),
    "log_data_export": lambda v, u, ip, m: api.log_data_export(
        u, v, record_count=v, export_format=v, ip=ip, **m
    ),
    "emit": lambda v, u, ip, m: api.emit(
        "authz_admin", u, v, ip=ip, login=v, exists=v, target_user=v, context=v, action=v, **m
    ),
    "emit(evt_type)": lambda v, u, ip, m: api.emit(v, u, v, ip=ip, resource=v, **m),
}


def _written(out: io.StringIO) -> tuple[str, dict[str, Any]]:
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1, text[:300]
    return text, json.loads(text)


def _within_limits(value: Any, where: str = "") -> None:
    if isinstance(value, str):
        assert len(value) <= MAX_STRING, (where, len(value))
    elif isinstance(value, dict):
        for key, item in value.items():
            assert len(key) <= MAX_KEY, (where, key)
            _within_limits(item, f"{where}.{key}")
    elif isinstance(value, list):
        for item in value:
            _within_limits(item, where)


def _configure(strict: bool) -> io.StringIO:
    out = io.StringIO()
    api.configure(output=out, strict=strict, metrics="memory")
    return out


@pytest.mark.parametrize("helper", list(HELPERS))
@FUZZ
@given(value=values, metadata=contexts)
def test_every_argument_hostile_writes_one_line_within_limits(
    helper: str, value: Any, metadata: dict[str, Any]
) -> None:
    """Hostile values everywhere, the user and IP included: one JSON line, no error, no string over 1,024."""
    out = _configure(strict=False)
    before = internal_errors()
    HELPERS[helper](value, value, value, {**metadata, "meta": value})
    assert internal_errors() == before
    _, record = _written(out)
    assert isinstance(record["evt"]["type"], str)
    _within_limits(record)


@pytest.mark.parametrize("helper", list(HELPERS))
@FUZZ
@given(value=values, metadata=contexts)
def test_valid_user_ip_and_type_survive_any_other_argument(
    helper: str, value: Any, metadata: dict[str, Any]
) -> None:
    """Whatever else is passed, a valid user id and IP are written, and the event keeps its type."""
    out = _configure(strict=False)
    HELPERS[helper](value, USER_ID, IP, {**metadata, "meta": value})
    text, record = _written(out)
    assert record["usr"]["id"] == USER_ID
    assert record["network"]["client"]["ip"] == IP
    assert record["evt"]["type"] in api.CATALOG or helper == "emit(evt_type)"
    assert MARKER not in text


@pytest.mark.parametrize("helper", list(HELPERS))
@FUZZ
@given(value=values, secrets=_secret_context())
def test_secret_values_never_reach_the_output(helper: str, value: Any, secrets: dict[str, Any]) -> None:
    """Secret keys at any depth, long secret keys, dataclasses and pydantic models with secret fields."""
    out = _configure(strict=False)
    HELPERS[helper](value, USER_ID, IP, {**secrets, "wrapped": [secrets], "meta": value})
    text, _ = _written(out)
    assert MARKER not in text


@pytest.mark.parametrize("helper", list(HELPERS))
@FUZZ
@given(value=values, metadata=contexts)
def test_strict_mode_raises_nothing_but_our_error(helper: str, value: Any, metadata: dict[str, Any]) -> None:
    out = _configure(strict=True)
    try:
        HELPERS[helper](value, value, value, {**metadata, "meta": value})
    except EventValidationError:
        assert out.getvalue() == ""
    else:
        _written(out)


# --- a note for every change -------------------------------------------------------------------------------

json_leaves = st.one_of(
    texts,
    st.integers(),
    huge_ints,
    st.floats(),
    st.booleans(),
    st.none(),
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
    max_leaves=20,
)


def _escaped(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _changes(given: Any, written: Any, where: str) -> Iterator[str]:
    """The places where the written context differs from what was given (secret keys aside)."""
    if isinstance(given, dict):
        if not isinstance(written, dict):
            yield where
            return
        for key, item in given.items():
            if is_secret_key(key):
                continue
            if len(key) > MAX_KEY or key not in written:
                yield where
                continue
            yield from _changes(item, written[key], f"{where}.{key}")
    elif isinstance(given, list):
        if not isinstance(written, list) or len(given) != len(written):
            yield where
            return
        for g, w in zip(given, written, strict=True):
            yield from _changes(g, w, where)
    elif isinstance(given, float) and math.isnan(given):
        if not (isinstance(written, float) and math.isnan(written)):
            yield where
    elif type(given) is not type(written) or given != written:
        yield where


@pytest.mark.parametrize("helper", ["log_login", "log_admin_action", "emit"])
@FUZZ
@given(metadata=st.dictionaries(keys, json_values, min_size=1, max_size=5))
def test_every_change_to_metadata_is_noted(helper: str, metadata: dict[str, Any]) -> None:
    out = _configure(strict=False)
    HELPERS[helper]("x", USER_ID, IP, {"context": metadata} if helper != "emit" else {})
    if helper == "emit":
        out = _configure(strict=False)
        api.emit("authz_admin", USER_ID, ip=IP, action="x", context=metadata)
    _, record = _written(out)
    written = record.get("context", {}).get("context", {}) if helper != "emit" else record.get("context", {})
    where = "context.context" if helper != "emit" else "context"
    errors = record.get("secevents", {}).get("errors", [])
    notes = [n.split(": ", 1)[0] for n in errors]
    budget_spent = any("over its limit" in n for n in errors)  # noted once, where the walk stopped
    for change in _changes(metadata, written, where):
        place = _escaped(change)
        # a missing key is noted under its own path (where.key), a changed value under its path or a parent's
        noted = any(place.startswith(note) or note.startswith(place + ".") for note in notes)
        assert noted or budget_spent or len(notes) > 20, (place, notes)
