"""Replay detection rules over records in timestamp order and return the signals they raise.

Threshold rules keep, per group-by key, a sliding window of `evaluationWindow` seconds ending at each
matching event (an event exactly `evaluationWindow` seconds older has left it); after every event of the
group the cases are tried in order and the first that holds raises or updates the group's signal. A signal
stays open while matches keep coming within `keepAlive` of its last event and for at most
`maxSignalDuration` from its first. New-value and impossible-travel rules keep per-group baselines.
"""

from __future__ import annotations

import gc
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, cast

from .compiler import SEVERITIES, CompiledQuery, CompiledRule, compile_rule
from .errors import DetectError
from .geo import GeoLookup, as_lookup, distance_km, geoip_attributes
from .query import attribute_getter, hint_is_exact, index_hint, is_missing, text_of

__all__ = ["Replay", "Signal", "evaluate", "replay"]

TRAVEL_MIN_KM: Final = 500.0
TRAVEL_MIN_KMH: Final = 1000.0
NOT_AVAILABLE: Final = "N/A"
_LOWER_ENVS: Final = ("staging", "test", "dev")
_GEOIP: Final = attribute_getter("network.client.geoip")
_CLIENT_IP: Final = attribute_getter("network.client.ip")
_ENV: Final = attribute_getter("env")


@dataclass(frozen=True)
class Signal:
    """A signal a rule raised during a replay.

    Attributes:
        rule_id: the id in the rule's `secevents_rule:<id>` tag, else the rule's name.
        rule_name: the rule's `name`.
        severity: the matching case's status (`info` … `critical`).
        case: the case's name, else its condition.
        group: the group-by values, keyed by attribute without `@` (`{"network.client.ip": "…"}`).
        first_seen: the oldest event in the window when the signal opened.
        last_seen: the last event folded into the signal.
        count: the events in the signal.
    """

    rule_id: str
    rule_name: str
    severity: str
    case: str
    group: Mapping[str, str] = field(hash=False)
    first_seen: datetime
    last_seen: datetime
    count: int

    def as_dict(self) -> dict[str, Any]:
        """The signal as JSON-ready data (`secevents detect --format json`)."""
        return {
            "rule_id": self.rule_id,
            "rule_name": self.rule_name,
            "severity": self.severity,
            "case": self.case,
            "group": dict(self.group),
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "count": self.count,
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class Replay:
    """Everything a replay found: the signals, what was read, and per group the closest a rule came."""

    signals: list[Signal] = field(default_factory=list[Signal])
    records: int = 0
    no_timestamp: int = 0
    geo_unresolved: int = 0
    best: dict[str, dict[tuple[str, ...], dict[str, float]]] = field(
        default_factory=dict[str, dict[tuple[str, ...], dict[str, float]]]
    )
    """rule id -> group values -> the highest value each query reached in one window (threshold rules)."""
    rules: list[CompiledRule] = field(default_factory=list[CompiledRule])
    explain: bool = False


def evaluate(
    rules: Iterable[Mapping[str, Any]],
    records: Iterable[Mapping[str, Any]],
    *,
    geo: GeoLookup | None = None,
) -> list[Signal]:
    """Replay `rules` over `records` and return the signals, ordered by first event then rule.

    See `graffer_secevents.detect.evaluate` for the full description.
    """
    return replay(rules, records, geo=geo).signals


def replay(
    rules: Iterable[Mapping[str, Any]],
    records: Iterable[Mapping[str, Any]],
    *,
    geo: GeoLookup | None = None,
    explain: bool = False,
) -> Replay:
    """Like `evaluate`, returning the whole `Replay`: the counts, and with `explain` the highest value each
    threshold query reached per group (`Replay.best`, for failure messages; it costs time)."""
    # The replay allocates per-group state while every record stays alive; the cyclic collector would walk
    # all of them again and again (measured: 3x the run time at 100,000 records). Nothing here makes cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _replay(rules, records, geo, explain)
    finally:
        if collecting:
            gc.enable()


def _replay(
    rules: Iterable[Mapping[str, Any]],
    records: Iterable[Mapping[str, Any]],
    geo: GeoLookup | None,
    explain: bool,
) -> Replay:
    compiled = [c for c in (compile_rule(rule) for rule in _rule_list(rules)) if c is not None]
    result = Replay(rules=compiled, explain=explain)
    timeline = _timeline(records, result)
    if geo is not None and _needs_geo(compiled):
        timeline = _with_geo(timeline, as_lookup(geo), result)
    matches = _matches(compiled, timeline)
    for rule in compiled:
        runner = _RUNNERS[rule.method]
        result.signals.extend(runner(rule, timeline, matches, result))
    result.signals.sort(key=lambda s: (s.first_seen, s.rule_id, sorted(s.group.items())))
    return result


def _rule_list(rules: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    if isinstance(rules, Mapping):
        return [cast("Mapping[str, Any]", rules)]  # one rule given bare
    if isinstance(rules, str | bytes):
        raise DetectError("rules must be rule objects; use load_rules() for JSON text or a file")
    return list(rules)


# --- records -----------------------------------------------------------------------------------------------


Timeline = list[tuple[float, Mapping[str, Any]]]


def timestamp_of(record: Mapping[str, Any]) -> float | None:
    """A record's `timestamp` as POSIX seconds: ISO 8601 (`Z` or an offset) or epoch milliseconds."""
    value = record.get("timestamp")
    if isinstance(value, str):
        moment: datetime | None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = _iso_nanoseconds(value)
        if moment is None:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value / 1000.0 if abs(value) > 1e11 else float(value)
    return None


def _iso_nanoseconds(value: str) -> datetime | None:
    """Python 3.11 reads at most 6 fractional digits; OpenTelemetry and Go write 9."""
    head, dot, rest = value.partition(".")
    if not dot:
        return None
    digits = len(rest) - len(rest.lstrip("0123456789"))
    try:
        return datetime.fromisoformat(f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}")
    except ValueError:
        return None


def _timeline(records: Iterable[Mapping[str, Any]], result: Replay) -> Timeline:
    timeline: Timeline = []
    for record in records:
        if not isinstance(record, Mapping):
            result.no_timestamp += 1
            continue
        moment = timestamp_of(record)
        if moment is None:
            result.no_timestamp += 1
            continue
        timeline.append((moment, record))
    timeline.sort(key=lambda item: item[0])  # stable: records of one instant keep their order
    result.records = len(timeline)
    return timeline


def _needs_geo(rules: list[CompiledRule]) -> bool:
    return any(
        rule.method == "impossible_travel"
        or any("geoip" in q.text for q in rule.queries)
        or _reads_geoip(rule)
        for rule in rules
    )


def _reads_geoip(rule: CompiledRule) -> bool:
    return any("geoip" in name for q in rule.queries for name, _ in q.group_by) or rule.method == "new_value"


def _as_dict(value: object) -> dict[str, Any] | None:
    """`value` as a JSON object read from a record, `None` when it is not a `dict`."""
    return cast("dict[str, Any]", value) if isinstance(value, dict) else None


def _with_geo(timeline: Timeline, lookup: Any, result: Replay) -> Timeline:
    """Add `network.client.geoip` from `network.client.ip` as Datadog's GeoIP parser would (records that
    already carry one keep it)."""
    cache: dict[str, dict[str, Any] | None] = {}
    out: Timeline = []
    for moment, record in timeline:
        ip = _CLIENT_IP(record)
        if not isinstance(ip, str) or not is_missing(_GEOIP(record)):
            out.append((moment, record))
            continue
        if ip not in cache:
            point = lookup(ip)
            cache[ip] = geoip_attributes(point) if point is not None else None
        attributes = cache[ip]
        if attributes is None:
            result.geo_unresolved += 1
            out.append((moment, record))
            continue
        # Nested as the library writes it; a flattened record gets the nested object beside its dotted keys.
        nested = _as_dict(record.get("network"))
        network = dict(nested) if nested is not None else {}
        client = _as_dict(network.get("client"))
        network["client"] = {**(client if client is not None else {}), "geoip": attributes}
        out.append((moment, {**record, "network": network}))
    return out


def _matches(rules: list[CompiledRule], timeline: Timeline) -> dict[str, list[int]]:
    """For every distinct query text, the indices of the records it matches (each query run once).

    A query that needs one of a few exact values of an attribute (`@evt.type:x`, `@a:(x OR y)`, an
    `AND` with such a term) is run only on the records an index of that attribute lists: most rule
    queries select a few event types out of many records.
    """
    found: dict[str, list[int]] = {}
    indexes: dict[str, dict[str, list[int]]] = {}
    for rule in rules:
        for query in rule.queries:
            if query.text in found:
                continue
            matcher = query.matcher
            hint = index_hint(matcher)
            if hint is None:
                found[query.text] = [i for i, (_, record) in enumerate(timeline) if matcher(record)]
                continue
            chosen: set[int] | None = None
            for path, values in sorted(hint, key=lambda pair: len(pair[1])):
                index = indexes.get(path)
                if index is None:
                    index = indexes[path] = _index(timeline, path)
                having = {i for value in values for i in index.get(value, ())}
                chosen = having if chosen is None else chosen & having
            if hint_is_exact(matcher):
                found[query.text] = sorted(chosen or ())
            else:
                found[query.text] = [i for i in sorted(chosen or ()) if matcher(timeline[i][1])]
    return found


def _index(timeline: Timeline, path: str) -> dict[str, list[int]]:
    """Record indices by the text of attribute `path` (each element of an array)."""
    get = attribute_getter(path)
    index: dict[str, list[int]] = {}
    for i, (_, record) in enumerate(timeline):
        value = get(record)
        if is_missing(value):
            continue
        for item in cast("Sequence[Any]", value) if isinstance(value, list) else (value,):
            if item is not None:
                index.setdefault(item if item.__class__ is str else text_of(item), []).append(i)
    return index


def _candidates(rule: CompiledRule, timeline: Timeline, matches: dict[str, list[int]]) -> list[int]:
    """Indices of the records any query of the rule matches, in time order, after the rule's filters."""
    if len(rule.queries) == 1:
        indices = matches[rule.queries[0].text]
    else:
        indices = sorted(set[int]().union(*(matches[q.text] for q in rule.queries)))
    if not rule.filters:
        return indices
    return [i for i in indices if _passes(rule, timeline[i][1])]


def _passes(rule: CompiledRule, record: Mapping[str, Any]) -> bool:
    return all(matcher(record) == (action == "require") for action, matcher in rule.filters)


def _group_key(query: CompiledQuery, record: Mapping[str, Any]) -> tuple[str, ...] | None:
    values: list[str] = []
    for _, get in query.group_by:
        value = get(record)
        if value.__class__ is str and value:
            values.append(value)
        elif is_missing(value) or value == "":
            if not query.optional_group_by:
                return None
            values.append(NOT_AVAILABLE)
        else:
            values.append(_key_text(value))
    return tuple(values)


def _key_text(value: Any) -> str:
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, sort_keys=True, default=str)
    return text_of(value)


# --- signals -----------------------------------------------------------------------------------------------


class _Open:
    """A signal still accepting events."""

    __slots__ = ("case", "count", "env", "first", "last")

    def __init__(self, first: float, last: float, count: int, case: int, env: Any) -> None:
        self.first = first
        self.last = last
        self.count = count
        self.case = case
        self.env = env


class _Signals:
    """Opens, folds and closes the signals of one rule, per group."""

    def __init__(self, rule: CompiledRule) -> None:
        self.rule = rule
        self.open: dict[tuple[str, ...], _Open] = {}
        self.done: list[Signal] = []

    def expire(self, key: tuple[str, ...], now: float) -> None:
        current = self.open.get(key)
        if current is not None and (
            now - current.last > self.rule.keep_alive or now - current.first > self.rule.max_duration
        ):
            self.done.append(self._close(key, self.open.pop(key)))

    def hit(self, key: tuple[str, ...], now: float, case: int, first: float, count: int, env: Any) -> None:
        """A case held for `key` at `now`: fold into the open signal or open one."""
        self.expire(key, now)
        current = self.open.get(key)
        if current is None:
            self.open[key] = _Open(first, now, count, case, env)
        else:
            current.last = now
            current.count += 1
            current.case = min(current.case, case)  # an earlier (more severe) case escalates the signal

    def finish(self) -> list[Signal]:
        for key, current in self.open.items():
            self.done.append(self._close(key, current))
        self.open.clear()
        return self.done

    def _close(self, key: tuple[str, ...], current: _Open) -> Signal:
        rule = self.rule
        case = rule.cases[current.case]
        severity = case.status
        if (
            rule.decrease_on_env
            and isinstance(current.env, str)
            and current.env.lower().startswith(_LOWER_ENVS)
        ):
            severity = SEVERITIES[max(0, SEVERITIES.index(severity) - 1)]
        names = [name for name, _ in rule.queries[0].group_by]
        return Signal(
            rule_id=rule.rule_id,
            rule_name=rule.name,
            severity=severity,
            case=case.label,
            group=dict(zip(names, key, strict=True)),
            first_seen=datetime.fromtimestamp(current.first, UTC),
            last_seen=datetime.fromtimestamp(current.last, UTC),
            count=current.count,
        )


# --- threshold ---------------------------------------------------------------------------------------------


class _Window:
    """One query's aggregate over the sliding window of one group."""

    __slots__ = ("aggregation", "distinct", "entries", "peak", "total")

    def __init__(self, aggregation: str) -> None:
        self.aggregation = aggregation
        self.entries: deque[tuple[float, Any]] = deque()
        self.distinct: dict[Any, int] | None = {} if aggregation == "cardinality" else None
        self.total = 0.0
        # max: (time, value) with decreasing values, oldest first, so the front is the window's maximum
        self.peak: deque[tuple[float, float]] | None = deque() if aggregation == "max" else None

    def add(self, moment: float, value: Any) -> None:
        self.entries.append((moment, value))
        if self.distinct is not None:
            self.distinct[value] = self.distinct.get(value, 0) + 1
        elif self.peak is not None:
            while self.peak and self.peak[-1][1] <= value:
                self.peak.pop()
            self.peak.append((moment, value))
        elif self.aggregation == "sum":
            self.total += value

    def trim(self, cutoff: float) -> None:
        entries = self.entries
        while entries and entries[0][0] <= cutoff:
            _, value = entries.popleft()
            if self.distinct is not None:
                left = self.distinct[value] - 1
                if left:
                    self.distinct[value] = left
                else:
                    del self.distinct[value]
            elif self.aggregation == "sum":
                self.total -= value
        while self.peak and self.peak[0][0] <= cutoff:
            self.peak.popleft()

    def value(self) -> float | None:
        if not self.entries:
            return None
        if self.distinct is not None:
            return float(len(self.distinct))
        if self.peak is not None:
            return self.peak[0][1]
        if self.aggregation == "sum":
            return self.total
        return float(len(self.entries))


def _entry(query: CompiledQuery, record: Mapping[str, Any]) -> tuple[tuple[str, ...], Any] | None:
    """(group key, value) a matching record adds to the query's window, or None if it adds nothing."""
    key = _group_key(query, record)
    if key is None:
        return None
    counts, value = _contribution(query, record)
    return (key, value) if counts else None


def _contribution(query: CompiledQuery, record: Mapping[str, Any]) -> tuple[bool, Any]:
    """(counts, value) of one matching record for one query."""
    if query.aggregation == "count":
        return True, None
    if query.aggregation == "cardinality":
        values = tuple(get(record) for get in query.distinct)
        if any(is_missing(v) for v in values):
            return False, None
        return True, values[0] if len(values) == 1 and values[0].__class__ is str else tuple(
            map(_key_text, values)
        )
    value = query.metrics[0](record)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False, None
    return True, float(value)


class _Threshold:
    """The state of one threshold rule: per group, one window per query and the records in the window."""

    def __init__(self, rule: CompiledRule, result: Replay) -> None:
        self.rule = rule
        self.signals = _Signals(rule)
        self.windows: dict[tuple[str, ...], list[_Window]] = {}
        self.seen: dict[tuple[str, ...], deque[float]] = {}  # multi-query rules: times of the group's records
        self.best: dict[tuple[str, ...], dict[str, float]] | None = None
        if result.explain:
            self.best = result.best[rule.rule_id] = {}

    def group(self, key: tuple[str, ...]) -> list[_Window]:
        windows = self.windows.get(key)
        if windows is None:
            windows = self.windows[key] = [_Window(q.aggregation) for q in self.rule.queries]
        return windows

    def evaluate(
        self, key: tuple[str, ...], now: float, first: float, count: int, record: Mapping[str, Any]
    ) -> None:
        """Try the cases for `key` after a record at `now` (windows already trimmed)."""
        values = {q.alias: w.value() for q, w in zip(self.rule.queries, self.windows[key], strict=True)}
        if self.best is not None:
            peak = self.best.setdefault(key, {})
            for alias, value in values.items():
                if value is not None and value > peak.get(alias, -math.inf):
                    peak[alias] = value
        for c, case in enumerate(self.rule.cases):
            if case.condition is not None and case.condition(values):
                self.signals.hit(key, now, c, first, count, _ENV(record))
                return


def _run_threshold(
    rule: CompiledRule, timeline: Timeline, matches: dict[str, list[int]], result: Replay
) -> list[Signal]:
    state = _Threshold(rule, result)
    if len(rule.queries) == 1:
        _one_query(state, rule.queries[0], timeline, _candidates(rule, timeline, matches))
    else:
        _joined_queries(state, timeline, matches, _candidates(rule, timeline, matches))
    return state.signals.finish()


def _one_query(state: _Threshold, query: CompiledQuery, timeline: Timeline, candidates: list[int]) -> None:
    window = state.rule.window
    for index in candidates:
        now, record = timeline[index]
        entry = _entry(query, record)
        if entry is None:
            continue
        key, value = entry
        [aggregate] = state.group(key)
        aggregate.add(now, value)
        aggregate.trim(now - window)
        state.evaluate(key, now, aggregate.entries[0][0], len(aggregate.entries), record)


def _joined_queries(
    state: _Threshold, timeline: Timeline, matches: dict[str, list[int]], candidates: list[int]
) -> None:
    rule = state.rule
    members = [set(matches[q.text]) for q in rule.queries]
    for index in candidates:
        now, record = timeline[index]
        cutoff = now - rule.window
        touched: set[tuple[str, ...]] = set()
        for q, query in enumerate(rule.queries):
            if index not in members[q]:
                continue
            entry = _entry(query, record)
            if entry is None:
                continue
            key, value = entry
            state.group(key)[q].add(now, value)
            touched.add(key)
        for key in touched:
            times = state.seen.get(key)
            if times is None:
                times = state.seen[key] = deque()
            times.append(now)
            while times and times[0] <= cutoff:
                times.popleft()
            for aggregate in state.windows[key]:
                aggregate.trim(cutoff)
            state.evaluate(key, now, times[0], len(times), record)


# --- new value ---------------------------------------------------------------------------------------------


def _run_new_value(
    rule: CompiledRule, timeline: Timeline, matches: dict[str, list[int]], result: Replay
) -> list[Signal]:
    query = rule.queries[0]
    signals = _Signals(rule)
    started: dict[tuple[str, ...], float] = {}
    known: dict[tuple[str, ...], dict[tuple[str, ...], float]] = {}
    for index in _candidates(rule, timeline, matches):
        now, record = timeline[index]
        key = _group_key(query, record)
        if key is None:
            continue
        raw = tuple(get(record) for get in query.metrics)
        if any(is_missing(v) for v in raw):
            continue
        value = tuple(_key_text(v) for v in raw)
        first = started.setdefault(key, now)
        values = known.setdefault(key, {})
        last = values.get(value)
        is_new = last is None or now - last > rule.forget_after
        values[value] = now
        if is_new and now - first > rule.learning:
            signals.hit(key, now, 0, now, 1, _ENV(record))
    return signals.finish()


# --- impossible travel -------------------------------------------------------------------------------------


def _location(record: Mapping[str, Any]) -> tuple[float, float] | None:
    geoip = _as_dict(_GEOIP(record))
    location = _as_dict(geoip.get("location")) if geoip is not None else None
    if location is None:
        return None
    lat, lon = location.get("latitude"), location.get("longitude")
    if not (_is_number(lat) and _is_number(lon)):
        return None
    return float(lat or 0.0), float(lon or 0.0)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _run_travel(
    rule: CompiledRule, timeline: Timeline, matches: dict[str, list[int]], result: Replay
) -> list[Signal]:
    query = rule.queries[0]
    signals = _Signals(rule)
    previous: dict[tuple[str, ...], tuple[float, tuple[float, float]]] = {}
    started: dict[tuple[str, ...], float] = {}
    baseline: dict[tuple[str, ...], set[tuple[float, float]]] = {}
    for index in _candidates(rule, timeline, matches):
        now, record = timeline[index]
        key = _group_key(query, record)
        point = _location(record)
        if key is None or point is None:
            continue
        first = started.setdefault(key, now)
        known = baseline.setdefault(key, set())
        rounded = (round(point[0], 1), round(point[1], 1))
        learning = rule.baseline > 0 and now - first <= rule.baseline
        if learning:
            known.add(rounded)
        before = previous.get(key)
        previous[key] = (now, point)
        if before is None or learning or rounded in known:
            continue
        then, where = before
        km = distance_km(where, point)
        hours = (now - then) / 3600.0
        if km > TRAVEL_MIN_KM and (hours <= 0 or km / hours > TRAVEL_MIN_KMH):
            signals.hit(key, now, 0, then, 2, _ENV(record))
    return signals.finish()


_RUNNERS: Final = {"threshold": _run_threshold, "new_value": _run_new_value, "impossible_travel": _run_travel}
