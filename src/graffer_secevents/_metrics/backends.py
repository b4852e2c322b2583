"""Metrics backends: where counts go (`NoMetrics`, `MemoryMetrics`, `OTelMetrics`, DogStatsD) and
`create_backend`, which builds one by name.

Importing this module imports neither `datadog` nor `opentelemetry`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from graffer_secevents._errors import ConfigurationError, MissingDependencyError

from .dogstatsd import dogstatsd_backend
from .names import DROPPED_METRIC, EVENTS_METRIC, LOGIN_ATTEMPTS_METRIC

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Meter

__all__ = [
    "METRIC_BACKENDS",
    "MemoryMetrics",
    "MetricPoint",
    "MetricsBackend",
    "NoMetrics",
    "OTelMetrics",
    "create_backend",
]

METRIC_BACKENDS: tuple[str, ...] = ("auto", "dogstatsd", "otel", "memory", "none")


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One count as a backend received it (what `MemoryMetrics` stores)."""

    name: str
    value: int
    tags: tuple[str, ...]


@runtime_checkable
class MetricsBackend(Protocol):
    """Where counts go. `count` is on the hot path; `flush`/`close` never raise."""

    def count(self, name: str, value: int, tags: tuple[str, ...]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class NoMetrics:
    """The `none` backend: every call does nothing."""

    __slots__ = ()

    def count(self, name: str, value: int, tags: tuple[str, ...]) -> None:
        """Do nothing."""

    def flush(self) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


class MemoryMetrics:
    """The `memory` backend: keeps every count in `points`, in order (tests, the demo).

    Example:
        >>> m = MemoryMetrics()
        >>> m.count("secevents.dropped", 1, ("reason:write_error",))
        >>> m.total("secevents.dropped", "reason:write_error")
        1
    """

    __slots__ = ("_lock", "points")

    def __init__(self) -> None:
        self.points: list[MetricPoint] = []
        self._lock = threading.Lock()

    def count(self, name: str, value: int, tags: tuple[str, ...]) -> None:
        """Append one `MetricPoint` (thread-safe)."""
        point = MetricPoint(name, value, tuple(tags))
        with self._lock:
            self.points.append(point)

    def total(self, name: str, *tags: str) -> int:
        """Sum of the values counted for `name` whose tags include every one of `tags`."""
        wanted = set(tags)
        with self._lock:
            return sum(p.value for p in self.points if p.name == name and wanted.issubset(p.tags))

    def clear(self) -> None:
        """Forget every point."""
        with self._lock:
            self.points.clear()

    def flush(self) -> None:
        """Nothing to flush."""

    def close(self) -> None:
        """Nothing to close; the points stay readable."""


_OTEL_DESCRIPTIONS: Mapping[str, tuple[str, str]] = {
    EVENTS_METRIC: ("{event}", "Security events emitted by graffer_secevents"),
    LOGIN_ATTEMPTS_METRIC: (
        "{attempt}",
        "Login attempts by outcome, bounded failure reason and account existence",
    ),
    DROPPED_METRIC: ("{event}", "Security events graffer_secevents could not write"),
}
_MAX_OTEL_ATTRIBUTE_SETS = 4096


class OTelMetrics:
    """The `otel` backend: OpenTelemetry counters with the same names; a tag `key:value` is an attribute.

    It uses only `opentelemetry-api`. Until the application installs an SDK `MeterProvider` the API's
    proxy meter drops every count; once one is installed (even after this backend was created) the proxies
    forward to it. `service`/`env`/`version` belong in the SDK's `Resource`, not in attributes.

    Args:
        meter: the meter to use; default `opentelemetry.metrics.get_meter("graffer_secevents")`.
    """

    __slots__ = ("_attributes", "_counters", "_lock", "_meter")

    def __init__(self, meter: Meter | None = None) -> None:
        if meter is None:
            from opentelemetry import metrics

            meter = metrics.get_meter("graffer_secevents")
        self._meter = meter
        self._counters: dict[str, Counter] = {}
        self._attributes: dict[tuple[str, ...], dict[str, str]] = {}
        self._lock = threading.Lock()

    def count(self, name: str, value: int, tags: tuple[str, ...]) -> None:
        """Add `value` to the counter `name` with `tags` as attributes."""
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counter(name)
        attributes = self._attributes.get(tags)
        if attributes is None:
            attributes = {key: value for key, _, value in (tag.partition(":") for tag in tags)}
            if len(self._attributes) < _MAX_OTEL_ATTRIBUTE_SETS:
                self._attributes[tags] = attributes
        counter.add(value, attributes)

    def _counter(self, name: str) -> Counter:
        with self._lock:
            counter = self._counters.get(name)
            if counter is None:
                unit, description = _OTEL_DESCRIPTIONS.get(name, ("1", ""))
                counter = self._meter.create_counter(name, unit=unit, description=description)
                self._counters[name] = counter
            return counter

    def flush(self) -> None:
        """Nothing to do: exporting is the SDK reader's job."""

    def close(self) -> None:
        """Nothing to do: the application owns the `MeterProvider`."""


def create_backend(
    name: str, *, service: str | None = None, env: str | None = None, version: str | None = None
) -> MetricsBackend:
    """Build the metrics backend called `name` (one of `METRIC_BACKENDS`).

    `dogstatsd` returns the process's shared client for the resolved address
    (`resolve_dogstatsd_address`), so calling this again does not open a second socket or thread.

    Args:
        name: `"auto"` (`dogstatsd` if the `datadog` package is importable, else `none`),
            `"dogstatsd"`, `"otel"`, `"memory"` or `"none"`.
        service, env, version: from `configure()`; sent as DogStatsD constant tags only when the matching
            `DD_SERVICE`/`DD_ENV`/`DD_VERSION` is unset (the client adds those itself, so nothing is
            sent twice). Ignored by the other backends (OpenTelemetry puts them in its `Resource`).

    Raises:
        ConfigurationError: an unknown `name` (the message lists the allowed values), or a malformed
            `DD_DOGSTATSD_URL`/`DD_DOGSTATSD_PORT`.
        MissingDependencyError: `"dogstatsd"` without the `datadog` package.

    Example:
        >>> create_backend("memory")  # doctest: +ELLIPSIS
        <graffer_secevents._metrics.backends.MemoryMetrics object at ...>
    """
    if name == "none":
        return NoMetrics()
    if name == "memory":
        return MemoryMetrics()
    if name == "otel":
        return OTelMetrics()
    if name == "dogstatsd":
        return dogstatsd_backend(service, env, version)
    if name == "auto":
        try:
            return dogstatsd_backend(service, env, version)
        except MissingDependencyError:
            return NoMetrics()
    raise ConfigurationError(f"metrics: unknown backend {name!r}; allowed: {', '.join(METRIC_BACKENDS)}")
