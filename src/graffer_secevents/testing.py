"""Assert security events in tests: `capture_events` (any test runner) and the `security_events`
pytest fixture built on it, plus matchers for the values a test cannot spell out (hashed logins, timestamps).

Usage::

    from graffer_secevents.testing import HASHED, capture_events, hashed

    with capture_events() as events:
        client.post("/login", data={"username": "ada", "password": "wrong"})
    events.assert_emitted("authn_login_fail", usr__login=hashed("ada"), evt__reason="invalid_credentials")

How a capture works:

- The configuration in force keeps everything (service, privacy, hash key, trusted proxies, bridges) except
  the output, the metrics backend and strict mode, which are swapped for in-memory ones and `strict=True`.
  A `configure()` call made while the capture is active (an application factory under test, say) takes
  effect but does not end the capture. On exit the configuration in force at entry comes back, even on error.
- Events from every thread and every asyncio task are captured: the configuration is process-wide.
- Captures nest: an event goes to the innermost capture *and* to every enclosing one, so an outer capture
  always sees everything emitted during its block. Strict mode is the innermost capture's. Start and end
  captures on one thread, in `with` order; a capture is not meant to be shared by concurrent tests in one
  process (pytest-xdist runs tests in separate processes, which is fine).
- The request context, the user bound with `graffer_secevents.set_user` and the actor or job bound inside
  the block are unbound on exit. The pytest fixture also starts every test with none bound.
"""

from __future__ import annotations

import difflib
import re
import threading
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final, cast

import orjson

from . import _config, _context
from ._catalog import CATALOG
from ._config import Config
from ._metrics import MemoryMetrics, MetricPoint
from ._pipeline import SCHEMA_VERSION

if TYPE_CHECKING:
    from .detect import GeoLookup, Signal

__all__ = [
    "ABSENT",
    "ANY",
    "HASHED",
    "TIMESTAMP",
    "Capture",
    "Matcher",
    "MetricPoint",
    "capture_events",
    "hashed",
]

_MISSING: Final[Any] = object()
_SHOWN_RECORDS: Final = 5
_RECORD_CHARS: Final = 300
_VALUE_CHARS: Final = 80


# --- matchers ----------------------------------------------------------------------------------------------


class _Named:
    """A matcher with a readable name in failure messages."""

    __slots__ = ("_name", "_test")

    def __init__(self, name: str, test: Callable[[Any], bool]) -> None:
        self._name = name
        self._test = test

    def __call__(self, actual: Any) -> bool:
        return self._test(actual)

    def __repr__(self) -> str:
        return self._name


ANY: Final = _Named("ANY", lambda _actual: True)
"""Matches any value, as long as the field is present: `assert_emitted("authz_fail", usr__id=ANY)`."""

ABSENT: Final = _Named("ABSENT", lambda _actual: False)
"""Matches only when the field is missing from the record: `assert_emitted(..., usr__name=ABSENT)`."""

HASHED: Final = re.compile(r"anon_[0-9a-f]{32}")
"""Any pseudonym the privacy rules produce (`anon_` + 32 hex): `usr__login=HASHED`."""

TIMESTAMP: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3,9}Z")
"""A record timestamp: ISO 8601 UTC with `Z` and at least millisecond precision."""

Matcher = Callable[[Any], bool] | re.Pattern[str] | Any
"""What a `**match` value may be: a plain value (compared with `==`), a compiled regular expression (full
match against a string field), or a predicate called with the field's value."""


def hashed(value: str) -> str:
    """Return the pseudonym `value` gets under the configuration in force (its `hash_key`).

    Use it to assert a hashed login or email without copying a hash into the test. Call it inside the test,
    after the application under test has been configured, so the same key is used.

    Args:
        value: the clear text, e.g. the login the user typed.

    Example:
        ```python
        security_events.assert_emitted("authn_login_fail", usr__login=hashed("ada@example.com"))
        ```
    """
    return _config.get_config().privacy.hash(value)


# --- what is captured --------------------------------------------------------------------------------------


class _MemoryWriter:
    """Keeps the rendered lines, exactly as they would have been written; also hands them to an enclosing
    capture's writer."""

    __slots__ = ("_lock", "_parent", "key", "lines")
    end_records: Final = False  # a capture is not an output that a process ends: no end record

    def __init__(self, parent: _MemoryWriter | None) -> None:
        self.key = object()  # its own numbers (secevents.seq from 1), whatever object had its address before
        self.lines: list[bytes] = []
        self._lock = threading.Lock()
        self._parent = parent

    def write_lines(self, lines: Sequence[bytes], levels: Sequence[str], patient: bool) -> None:
        with self._lock:
            self.lines.extend(lines)
        if self._parent is not None:
            self._parent.write_lines(lines, levels, patient)

    def snapshot(self) -> list[bytes]:
        with self._lock:
            return list(self.lines)

    def clear(self) -> None:
        with self._lock:
            self.lines.clear()


class _MemoryMetrics(MemoryMetrics):
    """The in-memory metrics backend, also counting into an enclosing capture's backend."""

    __slots__ = ("_parent",)

    def __init__(self, parent: MemoryMetrics | None) -> None:
        super().__init__()
        self._parent = parent

    def count(self, name: str, value: int, tags: tuple[str, ...]) -> None:
        super().count(name, value, tags)
        if self._parent is not None:
            self._parent.count(name, value, tags)


class _Overlay:
    """The parts of the configuration a capture replaces, applied to whatever configuration is installed."""

    __slots__ = ("metrics", "strict", "writer")

    def __init__(self, writer: _MemoryWriter, metrics: _MemoryMetrics, strict: bool) -> None:
        self.writer = writer
        self.metrics = metrics
        self.strict = strict

    def apply(self, cfg: Config) -> Config:
        same = cfg.writer is self.writer and cfg.metrics is self.metrics and cfg.strict == self.strict
        if same and cfg.delivery == "sync":
            return cfg
        # Written on the caller's thread, so a test sees its events as soon as the call returns.
        return replace(cfg, strict=self.strict, writer=self.writer, metrics=self.metrics, delivery="sync")


# The active captures, innermost last. While there is one, installing a configuration (configure(),
# set_config(), the lazy default) goes through the innermost overlay, so the capture survives it.
_active: list[_Overlay] = []
_active_lock = threading.RLock()


def _overlaid(cfg: Config | None) -> Config | None:
    with _active_lock:
        top = _active[-1] if _active else None
    return cfg if cfg is None or top is None else top.apply(cfg)


def _overlay_innermost(cfg: Config) -> Config:
    result = _overlaid(cfg)
    return cfg if result is None else result


def _push(overlay: _Overlay) -> None:
    with _active_lock:
        _active.append(overlay)
        _config.set_overlay(_overlay_innermost)


def _pop(overlay: _Overlay) -> None:
    with _active_lock:
        if overlay in _active:
            _active.remove(overlay)
        if not _active:
            _config.set_overlay(None)


def _reapply() -> None:
    """Install the innermost overlay over the configuration in force (after its strict flag changed)."""
    _config.set_config(_config.get_config())


class Capture:
    """The events and metric points captured by `capture_events` (the `security_events` fixture).

    Example:
        ```python
        def test_wrong_password_is_a_login_failure(security_events, client):
            client.post("/login", data={"username": "ada", "password": "wrong"})
            record = security_events.assert_emitted("authn_login_fail", usr__login=hashed("ada"))
            assert record["network"]["client"]["ip"] == "127.0.0.1"
            security_events.assert_not_emitted("authn_login_success")
        ```
    """

    __slots__ = ("_overlay",)

    def __init__(self, overlay: _Overlay) -> None:
        self._overlay = overlay

    def __repr__(self) -> str:
        kinds = _type_counts(self.records)
        return f"<Capture of {sum(kinds.values())} record(s): {_show_counts(kinds) or 'none'}>"

    @property
    def lines(self) -> list[bytes]:
        """The raw JSON lines (with their newline), exactly as they would have been written."""
        return self._overlay.writer.snapshot()

    @property
    def records(self) -> list[dict[str, Any]]:
        """The written records, parsed, in the order they were written."""
        return [orjson.loads(line) for line in self._overlay.writer.snapshot()]

    @property
    def metrics(self) -> list[MetricPoint]:
        """The metric points counted, in order (`MetricPoint(name, value, tags)`)."""
        with self._overlay.metrics._lock:
            return list(self._overlay.metrics.points)

    def metric_total(self, name: str, *tags: str) -> int:
        """The sum counted for metric `name` over the points carrying every one of `tags`.

        Example:
            ```python
            assert security_events.metric_total("secevents.login.attempts", "outcome:failure") == 3
            ```
        """
        return self._overlay.metrics.total(name, *tags)

    def clear(self) -> None:
        """Forget the records and metric points captured so far (enclosing captures keep theirs)."""
        self._overlay.writer.clear()
        self._overlay.metrics.clear()

    @contextmanager
    def lenient(self) -> Generator[None, None, None]:
        """Turn strict mode off for a block: bad input is coerced and noted in `secevents.errors`.

        For a whole test, mark it `@pytest.mark.secevents_lenient` instead (or use
        `capture_events(strict=False)`).

        Example:
            ```python
            with security_events.lenient():
                api.emit("authz_fail", user=b"\\xff", outcome="failure", resource="/x")
            assert security_events.records[-1]["secevents"]["errors"]
            ```
        """
        before = self._overlay.strict
        self._overlay.strict = False
        _reapply()
        try:
            yield
        finally:
            self._overlay.strict = before
            _reapply()

    def find(self, evt_type: str, **match: Matcher) -> list[dict[str, Any]]:
        """The records of `evt_type` that match every `key__sub=value` in `match`, in order."""
        return [r for r in self.records if _type_of(r) == evt_type and not _differences(r, match)]

    def assert_emitted(self, evt_type: str, **match: Matcher) -> dict[str, Any]:
        """Assert a record of `evt_type` matching `match` was written; return the first that does.

        Nested keys are written with double underscores: `usr__id="42"` checks `record["usr"]["id"]`.
        A value may be a plain value (`==`), a compiled regular expression (full match against a string),
        a predicate (`lambda v: v > 2`), or one of `ANY`, `ABSENT`, `HASHED`,
        `TIMESTAMP`, `hashed`.

        Raises:
            AssertionError: nothing matched. The message lists the records of that type with the fields
                that differed (closest first), or the types that were emitted if none was of that type.

        Example:
            ```python
            record = security_events.assert_emitted(
                "authn_login_fail", usr__id=HASHED, usr__exists=False, evt__reason="unknown_user"
            )
            ```
        """
        __tracebackhide__ = True
        found = self.find(evt_type, **match)
        if found:
            return found[0]
        raise AssertionError(self._explain_missing(evt_type, match))

    def assert_not_emitted(self, evt_type: str, **match: Matcher) -> None:
        """Assert no record of `evt_type` matching `match` was written (no `match`: none of that type).

        Raises:
            AssertionError: a record matched; the message shows the matching records.
            ValueError: `evt_type` is not in the catalog (the assertion could never fail).

        Example:
            ```python
            security_events.assert_not_emitted("authn_login_success", usr__id="42")
            ```
        """
        __tracebackhide__ = True
        found = self.find(evt_type, **match)
        if found:
            shown = "\n".join(f"  {_brief(r)}" for r in found[:_SHOWN_RECORDS])
            more = f"\n  ... and {len(found) - _SHOWN_RECORDS} more" if len(found) > _SHOWN_RECORDS else ""
            raise AssertionError(
                f"expected no {evt_type} event{' matching ' + _describe(match) if match else ''}, "
                f"but {len(found)} {'was' if len(found) == 1 else 'were'} emitted:\n{shown}{more}"
            )
        if evt_type not in CATALOG:
            raise ValueError(f"{evt_type!r} is not an event type of the catalog{_suggest(evt_type)}")

    def assert_detected(
        self,
        rule_id: str,
        *,
        rules: Iterable[Mapping[str, Any]] | None = None,
        geo: GeoLookup | None = None,
        **group: Any,
    ) -> Signal:
        """Assert that replaying the captured records through the rules raises a signal of `rule_id`.

        The records are replayed with `graffer_secevents.detect.evaluate` (windows, cases, keep-alive, as
        `secevents detect` does). `group` narrows to a group-by value, with `__` for dots.

        Args:
            rule_id: the rule's `secevents_rule:<id>` tag (e.g. `credential_stuffing`), else its name.
            rules: rule API JSON to replay (default: the library's `default_rules`).
            geo: the IP-to-location lookup for geo rules (a mapping of IP to `GeoPoint`).
            **group: group-by values the signal must have, e.g. `network__client__ip="203.0.113.7"`.

        Returns:
            The first matching `Signal`.

        Raises:
            AssertionError: no such signal; the message lists the signals that did fire and the nearest
                miss (the group's highest value per query against the cases' conditions).

        Example:
            ```python
            for n in range(30):
                client.post("/login", data={"username": f"user{n}", "password": "x"})
            signal = security_events.assert_detected("credential_stuffing", network__client__ip="127.0.0.1")
            assert signal.severity == "medium"
            ```
        """
        from ._tools.detect.assertions import detected

        return detected(rule_id, self.records, rules=rules, geo=geo, group=group)

    def assert_not_detected(
        self,
        rule_id: str,
        *,
        rules: Iterable[Mapping[str, Any]] | None = None,
        geo: GeoLookup | None = None,
        **group: Any,
    ) -> None:
        """Assert that replaying the captured records raises no signal of `rule_id` (for `group`).

        Args:
            rule_id: the rule's id, as in `assert_detected`.
            rules: rule API JSON to replay (default: the library's `default_rules`).
            geo: the IP-to-location lookup for geo rules.
            **group: only signals with these group-by values count, e.g. `usr__id="42"`.

        Raises:
            AssertionError: such a signal fired; the message lists them.

        Example:
            ```python
            client.post("/login", data={"username": "ada", "password": "right"})
            security_events.assert_not_detected("brute_force")
            ```
        """
        from ._tools.detect.assertions import not_detected

        not_detected(rule_id, self.records, rules=rules, geo=geo, group=group)

    def _explain_missing(self, evt_type: str, match: dict[str, Any]) -> str:
        records = self.records
        unknown = (
            f" ({evt_type!r} is not an event type of the catalog{_suggest(evt_type)})"
            if evt_type not in CATALOG
            else ""
        )
        same_type = [r for r in records if _type_of(r) == evt_type]
        if not same_type:
            head = f"no {evt_type} event was emitted{unknown}"
            if not records:
                return f"{head}; no event was emitted at all"
            return f"{head}; emitted: {_show_counts(_type_counts(records))}"
        scored = sorted(((_differences(r, match), r) for r in same_type), key=lambda pair: len(pair[0]))
        lines = [
            f"no {evt_type} event matches {_describe(match)}; "
            f"{len(same_type)} {evt_type} event{'s were' if len(same_type) > 1 else ' was'} emitted"
            + (", closest first:" if len(same_type) > 1 else ":")
        ]
        for number, (diffs, record) in enumerate(scored[:_SHOWN_RECORDS], 1):
            lines.append(f"  #{number} " + "; ".join(diffs))
            lines.append(f"     {_brief(record)}")
        if len(scored) > _SHOWN_RECORDS:
            lines.append(f"  ... and {len(scored) - _SHOWN_RECORDS} more")
        return "\n".join(lines)


@contextmanager
def capture_events(*, strict: bool = True) -> Generator[Capture, None, None]:
    """Capture every event and metric point emitted inside the `with` block, in memory.

    The output and the metrics backend are swapped for in-memory ones and strict mode is on, so invalid
    event input raises `graffer_secevents.EventValidationError` (`strict=False` for tests that
    feed bad input on purpose). Everything is restored on exit, even on error: the configuration in force at
    entry (undoing `configure()` calls made inside), the request context and the user bound with
    `set_user()`. Events from other threads and asyncio tasks are captured too. Works with any test runner.

    Args:
        strict: raise on invalid event input (default) instead of coercing it.

    Example:
        ```python
        import unittest
        from graffer_secevents.testing import capture_events

        class LoginTest(unittest.TestCase):
            def setUp(self) -> None:
                self.events = self.enterContext(capture_events())

            def test_wrong_password(self) -> None:
                log_in("ada", "wrong")
                self.events.assert_emitted("authn_login_fail", usr__exists=True)
        ```
    """
    with _active_lock:
        enclosing = _active[-1] if _active else None
    overlay = _Overlay(
        _MemoryWriter(enclosing.writer if enclosing else None),
        _MemoryMetrics(enclosing.metrics if enclosing else None),
        strict,
    )
    request, user, scope = _context._request.get(), _context._user.get(), _context._scope.get()
    previous = _config.get_config()
    _push(overlay)
    try:
        _config.set_config(previous)  # installed through the overlay
        yield Capture(overlay)
    finally:
        _pop(overlay)
        _config.set_config(previous)
        _context._request.set(request)
        _context._user.set(user)
        _context._scope.set(scope)


# --- matching and messages ---------------------------------------------------------------------------------


def _type_of(record: dict[str, Any]) -> Any:
    return _get(record, ("evt", "type"))


def _get(record: Any, path: tuple[str, ...]) -> Any:
    node: Any = record
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = cast("dict[str, Any]", node)[part]
    return node


def _difference(expected: Any, actual: Any) -> str | None:
    """Why `actual` does not match `expected`, or `None` if it does."""
    if expected is ABSENT:
        return None if actual is _MISSING else f"expected ABSENT, got {_clip(repr(actual))}"
    if actual is _MISSING:
        return f"expected {_show(expected)}, missing"
    if isinstance(expected, re.Pattern):
        pattern: re.Pattern[str] = expected  # pyright: ignore[reportUnknownVariableType]
        ok = isinstance(actual, str) and pattern.fullmatch(actual) is not None
    elif callable(expected):
        try:
            ok = bool(expected(actual))
        except Exception as exc:  # noqa: BLE001 - a predicate that cannot take this value does not match
            return f"{_show(expected)} raised {type(exc).__name__} on {_clip(repr(actual))}"
    else:
        ok = bool(expected == actual)
    return None if ok else f"expected {_show(expected)}, got {_clip(repr(actual))}"


def _differences(record: dict[str, Any], match: dict[str, Any]) -> list[str]:
    diffs: list[str] = []
    for key, expected in match.items():
        path = tuple(key.split("__"))
        why = _difference(expected, _get(record, path))
        if why is not None:
            diffs.append(f"{'.'.join(path)}: {why}")
    return diffs


def _show(expected: Any) -> str:
    if isinstance(expected, re.Pattern):
        pattern: re.Pattern[str] = expected  # pyright: ignore[reportUnknownVariableType]
        return f"/{pattern.pattern}/"
    if isinstance(expected, _Named):
        return repr(expected)
    if callable(expected) and not isinstance(expected, type):
        name = getattr(expected, "__qualname__", None) or ""
        return "a predicate" + ("" if not name or "<lambda>" in name else f" ({name})")
    return _clip(repr(expected))


def _clip(text: str, limit: int = _VALUE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(match: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k.replace('__', '.')}={_show(v)}" for k, v in match.items()) + "}"


def _brief(record: dict[str, Any]) -> str:
    """One short line for a record: its JSON without what every record has or the type implies, truncated."""
    shown = {k: v for k, v in record.items() if k not in ("timestamp", "logger", "message")}
    if isinstance(evt := shown.get("evt"), dict):
        fields = cast("dict[str, Any]", evt)
        shown["evt"] = {k: v for k, v in fields.items() if k not in ("type", "name", "category")}
    if isinstance(meta := shown.get("secevents"), dict):
        meta = {k: v for k, v in cast("dict[str, Any]", meta).items() if k not in ("writer", "seq", "chain")}
        if meta == {"schema": SCHEMA_VERSION}:
            del shown["secevents"]
        else:
            shown["secevents"] = meta
    return _clip(orjson.dumps(shown).decode(), _RECORD_CHARS)


def _type_counts(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(str(_type_of(r)) for r in records)


def _show_counts(counts: Counter[str]) -> str:
    return ", ".join(f"{kind} ({n})" if n > 1 else kind for kind, n in sorted(counts.items()))


def _suggest(evt_type: str) -> str:
    """`; did you mean ...?` with the one or two closest catalog types (a shared last word counts extra, so
    `authn_logout` suggests `session_logout`), or nothing."""
    last = evt_type.rsplit("_", 1)[-1]

    def score(candidate: str) -> float:
        bonus = 0.3 if len(last) >= 4 and candidate.rsplit("_", 1)[-1] == last else 0.0
        return difflib.SequenceMatcher(None, evt_type, candidate).ratio() + bonus

    ranked = sorted(CATALOG, key=score, reverse=True)[:2]
    close = [repr(c) for c in ranked if score(c) >= 0.6]
    return f"; did you mean {' or '.join(close)}?" if close else ""
