"""Assert security events in tests: :func:`capture_events` (any test runner) and the ``secevents`` pytest
fixture built on it.

Example::

    from graffer_secevents.testing import capture_events

    with capture_events() as events:
        client.post("/login", data={"username": "ada", "password": "wrong"})
    events.assert_emitted("authn_login_fail", usr__exists=True, evt__reason="invalid_credentials")
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import orjson

from ._config import get_config, set_config
from ._metrics import MemoryMetrics, MetricPoint
from ._output import make_logger

__all__ = ["Capture", "capture_events"]

_MISSING = object()


class _MemoryWriter:
    """Keeps the rendered lines, exactly as they would have been written."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self._lock = threading.Lock()

    def write(self, line: bytes) -> None:
        with self._lock:
            self.lines.append(line)

    info = warning = critical = write


class Capture:
    """The events and metric points captured by :func:`capture_events`."""

    def __init__(self, writer: _MemoryWriter, metrics: MemoryMetrics) -> None:
        self._writer = writer
        self._metrics = metrics

    @property
    def lines(self) -> list[bytes]:
        """The raw JSON lines, as they would have been written."""
        return list(self._writer.lines)

    @property
    def records(self) -> list[dict[str, Any]]:
        """The written records, parsed."""
        return [orjson.loads(line) for line in self._writer.lines]

    @property
    def metrics(self) -> list[MetricPoint]:
        """The metric points counted."""
        return list(self._metrics.points)

    def clear(self) -> None:
        """Forget what was captured so far."""
        with self._writer._lock:
            self._writer.lines.clear()
        self._metrics.clear()

    def find(self, evt_type: str, **match: Any) -> list[dict[str, Any]]:
        """The records of ``evt_type`` matching every ``key__sub=value`` in ``match``."""
        return [
            r for r in self.records if _get(r, ("evt", "type")) == evt_type and not _differences(r, match)
        ]

    def assert_emitted(self, evt_type: str, **match: Any) -> dict[str, Any]:
        """Assert one record of ``evt_type`` matches; return the first that does.

        Nested keys are written with double underscores (``usr__id="42"``). A value may be a plain value, a
        compiled regular expression (full match) or a callable returning true for a match.

        Raises:
            AssertionError: nothing matched; the message shows the closest records and what differed.
        """
        found = self.find(evt_type, **match)
        if found:
            return found[0]
        raise AssertionError(self._explain(evt_type, match))

    def assert_not_emitted(self, evt_type: str, **match: Any) -> None:
        """Assert no record of ``evt_type`` matches ``match``."""
        found = self.find(evt_type, **match)
        if found:
            raise AssertionError(
                f"expected no {evt_type} event matching {_describe(match)}, but {len(found)} were emitted:\n"
                + "\n".join(orjson.dumps(r).decode() for r in found[:5])
            )

    def _explain(self, evt_type: str, match: dict[str, Any]) -> str:
        records = self.records
        same_type = [r for r in records if _get(r, ("evt", "type")) == evt_type]
        head = f"no {evt_type} event matching {_describe(match)} was emitted"
        if not same_type:
            kinds = sorted({str(_get(r, ("evt", "type"))) for r in records})
            return f"{head}; emitted types: {', '.join(kinds) or 'none'}"
        lines = [f"{head}; the {len(same_type)} {evt_type} event(s) emitted differ:"]
        for i, record in enumerate(same_type[:10], 1):
            diffs = "; ".join(_differences(record, match))
            lines.append(f"  #{i}: {diffs}")
        return "\n".join(lines)


def _get(record: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(record, dict) or part not in record:
            return _MISSING
        record = record[part]
    return record


def _matches(expected: Any, actual: Any) -> bool:
    if actual is _MISSING:
        return False
    if isinstance(expected, re.Pattern):
        return isinstance(actual, str) and expected.fullmatch(actual) is not None
    if callable(expected):
        return bool(expected(actual))
    return bool(expected == actual)


def _differences(record: dict[str, Any], match: dict[str, Any]) -> list[str]:
    diffs = []
    for key, expected in match.items():
        path = tuple(key.split("__"))
        actual = _get(record, path)
        if not _matches(expected, actual):
            shown = "missing" if actual is _MISSING else repr(actual)
            diffs.append(f"{'.'.join(path)}: expected {_show(expected)}, got {shown}")
    return diffs


def _show(expected: Any) -> str:
    if isinstance(expected, re.Pattern):
        return f"/{expected.pattern}/"
    if callable(expected):
        return getattr(expected, "__name__", "a predicate")
    return repr(expected)


def _describe(match: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k.replace('__', '.')}={_show(v)}" for k, v in match.items()) + "}"


@contextmanager
def capture_events(*, strict: bool = True) -> Iterator[Capture]:
    """Capture every event and metric point emitted inside the ``with`` block, in memory.

    Output and metrics are swapped for in-memory ones and strict mode is on (``strict=False`` for tests that
    feed bad input on purpose); everything is restored on exit, even on error. Events emitted from other
    threads and tasks during the block are captured too.
    """
    previous = get_config()
    writer = _MemoryWriter()
    metrics = MemoryMetrics()
    set_config(replace(previous, strict=strict, writer=writer, logger=make_logger(writer), metrics=metrics))
    try:
        yield Capture(writer, metrics)
    finally:
        set_config(previous)


Matcher = Callable[[Any], bool] | re.Pattern[str] | Any
