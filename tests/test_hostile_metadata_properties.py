"""Property-based hostile caller metadata: shared sub-structures, deep and wide sequences, huge mappings,
mappings whose ``items()`` yields malformed pairs or raises part-way, and objects with hostile dunders.

Each property: no exception, exactly one line, ``usr``/IP/``evt`` kept, caller metadata within its byte
budget, the caller's containers read no further than the walk's budget (bounded work, counted rather than
timed), every change noted, and nothing but ``EventValidationError`` in strict mode.
``SECEVENTS_FUZZ_EXAMPLES`` sets the examples per property (default 100).
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graffer_secevents as api
from graffer_secevents import EventValidationError
from graffer_secevents._guard import internal_errors
from graffer_secevents._limits import (
    MAX_CONTEXT_ATTRIBUTES,
    MAX_CONTEXT_BYTES,
    MAX_CONTEXT_NODES,
    MAX_FLAT_DEPTH,
    MAX_KEY,
    MAX_LIST,
    MAX_STRING,
)
from graffer_secevents._privacy import is_secret_key

EXAMPLES = int(os.environ.get("SECEVENTS_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
USER_ID = "u-42"
IP = "203.0.113.7"
# Each container on the path being walked is read up to MAX_LIST + 1 items before its first item is walked,
# and at most MAX_FLAT_DEPTH containers are on that path; past that, reads follow the node budget.
READ_BOUND = MAX_FLAT_DEPTH * (MAX_LIST + 1) + 2 * MAX_CONTEXT_NODES


class Reads:
    """Counts every item a caller container hands out, across one event."""

    count = 0


class CountingMapping(Mapping[Any, Any]):
    """A mapping that counts the pairs its ``items()`` yields; ``pairs`` may be endless or malformed."""

    def __init__(self, pairs: Any, fail_after: int | None = None) -> None:
        self._pairs = pairs
        self._fail_after = fail_after

    def items(self) -> Any:  # type: ignore[override]
        def pairs() -> Iterator[Any]:
            for n, pair in enumerate(self._pairs()):
                if self._fail_after is not None and n == self._fail_after:
                    raise RuntimeError("items() failed part-way")
                Reads.count += 1
                yield pair

        return pairs()

    def __getitem__(self, key: Any) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        raise RuntimeError("not iterable")

    def __len__(self) -> int:
        raise RuntimeError("no len")


class CountingIterable:
    """An iterable (not a list) that counts the items it hands out; may be endless."""

    def __init__(self, items: Any) -> None:
        self._items = items

    def __iter__(self) -> Iterator[Any]:
        for item in self._items():
            Reads.count += 1
            yield item


def _endless_pairs() -> Iterator[tuple[str, int]]:
    n = 0
    while True:
        yield f"k{n}", n
        n += 1


malformed_pairs = st.lists(
    st.one_of(
        st.tuples(st.text(max_size=8), st.integers()),
        st.tuples(st.integers(), st.integers(), st.integers()),
        st.just(("lonely",)),
        st.just("ab"),  # a 2-character string unpacks as a pair: still not a (key, value) tuple
        st.just(None),
        st.just(42),
        st.lists(st.integers(), min_size=2, max_size=2),
    ),
    max_size=12,
)


def _shared(levels: int, width: int, kind: str) -> Any:
    """``levels`` of one container referenced ``width`` times: walked naively, ``width ** levels`` leaves."""
    node: Any = ["leaf", 1]
    for n in range(levels):
        if kind == "list":
            node = [node] * width
        elif kind == "tuple":
            node = (node,) * width
        elif kind == "dict":
            node = {f"k{n}_{i}": node for i in range(width)}
        else:
            node = CountingIterable(lambda node=node, width=width: iter([node] * width))
    return node


def _deep(depth: int, kind: str) -> Any:
    node: Any = "bottom"
    for _ in range(depth):
        node = [node] if kind == "list" else {"d": node} if kind == "dict" else (node,)
    return node


hostile_metadata = st.one_of(
    st.builds(
        _shared, st.integers(1, 25), st.integers(2, 64), st.sampled_from(["list", "tuple", "dict", "iter"])
    ),
    st.builds(_deep, st.integers(1, 400), st.sampled_from(["list", "dict", "tuple"])),
    st.integers(0, 5_000).map(lambda n: {f"key-{i}": i for i in range(n)}),
    st.integers(0, 300).map(lambda n: [[i, str(i)] for i in range(n)]),
    st.integers(0, 300).map(lambda n: dict.fromkeys(range(n), "x" * 100)),
    st.integers(1, 2_000).map(lambda n: "\x01" * n),
    st.builds(lambda: CountingMapping(_endless_pairs)),
    st.builds(lambda: CountingIterable(lambda: iter(range(10**12)))),
    st.builds(
        lambda p, f: CountingMapping(lambda: iter(p), f), malformed_pairs, st.none() | st.integers(0, 12)
    ),
    st.sets(st.integers(), max_size=100),
    st.frozensets(st.text(max_size=5), max_size=100),
)


def _configure(strict: bool) -> io.StringIO:
    out = io.StringIO()
    api.configure(output=out, strict=strict, metrics="memory")
    return out


def _one_line(out: io.StringIO) -> tuple[str, dict[str, Any]]:
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1, text[:300]
    return text, json.loads(text)


def _emit(metadata: Any, shape: str) -> None:
    if shape == "kwargs":
        api.log_admin_action(
            USER_ID, "disable_user", IP, resource="/users/7", meta=metadata, other=[metadata]
        )
    else:
        api.emit("authz_admin", USER_ID, ip=IP, action="x", context={"a": metadata, "b": metadata})


@pytest.mark.parametrize("shape", ["kwargs", "context"])
@FUZZ
@given(metadata=hostile_metadata)
def test_hostile_metadata_writes_one_bounded_line_keeping_user_ip_and_type(metadata: Any, shape: str) -> None:
    out = _configure(strict=False)
    before = internal_errors()
    Reads.count = 0
    _emit(metadata, shape)
    assert internal_errors() == before
    assert Reads.count <= READ_BOUND
    _, record = _one_line(out)
    assert record["usr"]["id"] == USER_ID
    assert record["network"]["client"]["ip"] == IP
    assert record["evt"]["type"] in {"authz_admin"}
    context = record.get("context", {})
    assert len(orjson.dumps(context)) <= MAX_CONTEXT_BYTES
    assert _count_values(context) <= MAX_CONTEXT_ATTRIBUTES


@pytest.mark.parametrize("shape", ["kwargs", "context"])
@FUZZ
@given(metadata=hostile_metadata)
def test_hostile_metadata_in_strict_mode_raises_nothing_but_our_error(metadata: Any, shape: str) -> None:
    out = _configure(strict=True)
    try:
        _emit(metadata, shape)
    except EventValidationError:
        assert out.getvalue() == ""
    else:
        _one_line(out)


def _count_values(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_count_values(v) for v in value.values())
    if isinstance(value, list):
        return sum(_count_values(v) for v in value)
    return 1


# --- every change noted -----------------------------------------------------------------------------------

json_leaves = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(max_codepoint=31), max_size=5),
    st.integers(MAX_STRING - 2, MAX_STRING + 2).map(lambda n: "é" * n),
    st.integers(),
    st.sampled_from([2**63, -(2**63) - 1, 10**30]),
    st.floats(),
    st.booleans(),
    st.none(),
)
keys = st.one_of(
    st.text(max_size=12),
    st.integers(-5, 5),
    st.sampled_from(["password", "X-Api-Key", "session"]),
    st.integers(50, 70).map(lambda n: "a" * n),
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=70),
        st.tuples(children, children),
        st.dictionaries(keys, children, max_size=6),
    ),
    max_leaves=150,
)


def _changes(given: Any, written: Any, where: str) -> Iterator[str]:
    """Where the written metadata differs from what was given (secret keys and tuples-as-lists aside)."""
    if isinstance(given, dict):
        if not isinstance(written, dict):
            yield where
            return
        for key, item in given.items():
            name = key if isinstance(key, str) else str(key)
            if type(key) is not str:
                yield where  # a key written as text
            if is_secret_key(name):
                continue
            if len(name) > MAX_KEY or name not in written:
                yield where
                continue
            yield from _changes(item, written[name], f"{where}.{name}")
    elif isinstance(given, list | tuple):
        if not isinstance(written, list) or len(given) != len(written):
            yield where
            return
        for g, w in zip(given, written, strict=True):
            yield from _changes(g, w, where)
    elif isinstance(given, float) and math.isnan(given):
        if written is not None:
            yield where
    elif type(given) is not type(written) or given != written:
        yield where


@FUZZ
@given(
    metadata=st.dictionaries(st.text(min_size=1, max_size=8).map(lambda k: "c_" + k), json_values, max_size=5)
)
def test_every_change_to_wide_and_deep_metadata_is_noted(metadata: dict[str, Any]) -> None:
    out = _configure(strict=False)
    api.emit("authz_admin", USER_ID, ip=IP, action="x", context=metadata)
    _, record = _one_line(out)
    written = record.get("context", {})
    notes = record.get("secevents", {}).get("errors", [])
    places = [n.split(": ", 1)[0] for n in notes]
    budget_spent = next((p for p, n in zip(places, notes, strict=True) if "over its limit" in n), None)
    for change in _changes(metadata, written, "context"):
        place = change.encode("utf-8", "backslashreplace").decode("utf-8")
        noted = any(place.startswith(p) or p.startswith(place) for p in places)
        assert noted or budget_spent is not None or len(notes) > 20, (place, notes)


def test_a_mapping_yielding_malformed_pairs_keeps_the_event_and_its_good_pairs() -> None:
    out = _configure(strict=False)
    bad = CountingMapping(
        lambda: iter([("ok", 1), ("a", "b", "c"), None, "xy", ("fine", 2)]), fail_after=None
    )
    api.log_admin_action(USER_ID, "x", IP, meta=bad)
    _, record = _one_line(out)
    assert record["context"]["meta"] == {"ok": 1, "fine": 2}
    notes = record["secevents"]["errors"]
    assert (
        notes.count("context.meta: an item of the CountingMapping is not a (key, value) pair; dropped") == 3
    )


def test_a_mapping_failing_part_way_keeps_what_it_yielded_before() -> None:
    out = _configure(strict=False)
    api.log_admin_action(USER_ID, "x", IP, meta=CountingMapping(_endless_pairs, fail_after=3))
    _, record = _one_line(out)
    assert record["context"]["meta"] == {"k0": 0, "k1": 1, "k2": 2}
    assert any("failed after 3 items" in n for n in record["secevents"]["errors"])


def test_shared_lists_cost_what_they_write_not_what_they_expand_to() -> None:
    """The issue's case: 21 levels of one list referenced 64 times (64**21 leaves when walked naively)."""
    out = _configure(strict=False)
    Reads.count = 0
    api.log_admin_action(USER_ID, "x", IP, meta=_shared(21, 64, "iter"))
    text, record = _one_line(out)
    assert Reads.count <= READ_BOUND
    assert len(orjson.dumps(record["context"])) <= MAX_CONTEXT_BYTES
    notes = record["secevents"]["errors"]
    assert any("over its limit" in n for n in notes) or notes[-1].startswith("... and ")
    assert len(text) < 4096


def test_a_million_keys_are_read_only_up_to_the_budget() -> None:
    out = _configure(strict=False)
    Reads.count = 0
    api.log_admin_action(USER_ID, "x", IP, meta=CountingMapping(_endless_pairs))
    _, record = _one_line(out)
    assert Reads.count <= MAX_CONTEXT_ATTRIBUTES + 2
    assert len(record["context"]["meta"]) <= MAX_CONTEXT_ATTRIBUTES
    out = _configure(strict=False)
    api.log_admin_action(USER_ID, "x", IP, meta={str(i): i for i in range(1_000_000)})
    text, record = _one_line(out)
    assert len(text) < 4096
    assert record["secevents"]["errors"][-1].endswith("this and the rest dropped")
