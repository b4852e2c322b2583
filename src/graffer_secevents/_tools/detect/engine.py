"""Replay detection rules over records in timestamp order and return the signals they raise.

The engine is push-based: `Engine.push` takes one record at a time, in timestamp order, and keeps only
what the rules' windows and baselines need (per group: the window's entries, the open signal, the learned
values or locations); groups that have gone quiet are swept away. `replay` sorts an in-memory list and pushes
it; `replay_stream` reads an iterator of any length through a bounded reordering buffer, so memory follows
the rules' windows and state, not the number of records.

Threshold rules keep, per group-by key, a sliding window of `evaluationWindow` seconds ending at each
matching event (an event exactly `evaluationWindow` seconds older has left it; a window of 0 holds the
events of the same instant); after every event of the group the cases are tried in order and the first that
holds raises or updates the group's signal. A signal stays open while matches keep coming within `keepAlive`
of its last event and for at most `maxSignalDuration` from its first. New-value and impossible-travel rules
keep per-group baselines.
"""

from __future__ import annotations

import gc
import heapq
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, cast

from .compiler import SEVERITIES, CompiledQuery, CompiledRule, compile_rule, rule_id_of
from .errors import DetectError
from .geo import GeoLookup, as_lookup, distance_km, geoip_attributes
from .query import Matcher, attribute_getter, hint_is_exact, index_hint, is_missing, text_of

__all__ = ["Engine", "Replay", "Signal", "evaluate", "replay", "replay_stream", "timestamp_of"]

TRAVEL_MIN_KM: Final = 500.0
TRAVEL_MIN_KMH: Final = 1000.0
LOCATION_MEMORY: Final = 30 * 86400.0
"""Impossible travel: a known location, and a transition already signalled, are forgotten after 30 days."""
NOT_AVAILABLE: Final = "N/A"
EXPLAIN_RECORDS: Final = 10
"""Contributing records kept per signal (the rest are counted)."""
DEFAULT_MAX_DELAY: Final = 600.0
"""`replay_stream`: how far (seconds) a record may arrive behind a later one and still be replayed in
order."""
_SWEEP_EVERY: Final = 60.0
_UNREAD: Final[Any] = object()
_GEO_CACHE: Final = 100_000
_MIN_TIME: Final = -62135596800.0  # 0001-01-01T00:00:00Z
_MAX_TIME: Final = 253402300799.0  # 9999-12-31T23:59:59Z
_LOWER_ENVS: Final = ("staging", "test", "dev")
_GEOIP: Final = attribute_getter("network.client.geoip")
_CLIENT_IP: Final = attribute_getter("network.client.ip")
_ENV: Final = attribute_getter("env")
_DATE_KEYS: Final = (
    "timestamp",
    "@timestamp",
    "_timestamp",
    "Timestamp",
    "eventTime",
    "date",
    "published_date",
    "syslog.timestamp",
)
"""Where a record's time is read, in order: the attributes Datadog's date remapper reads by default."""
_DATE_GETTERS: Final = tuple(attribute_getter(key) for key in _DATE_KEYS)


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
        values: each query's value when the signal opened (`{"failed_users": 12.0, "successes": 1.0}`).
        reason: for new-value and impossible-travel rules, what was new or how far and fast the user went.
        records: the contributing records (`file:line`, or `record #i` in the list given), at most
            `EXPLAIN_RECORDS`, oldest first.
        more_records: contributing records beyond those listed.
    """

    rule_id: str
    rule_name: str
    severity: str
    case: str
    group: Mapping[str, str] = field(hash=False)
    first_seen: datetime
    last_seen: datetime
    count: int
    values: Mapping[str, float] = field(default_factory=dict[str, float], hash=False, compare=False)
    reason: str = field(default="", compare=False)
    records: tuple[str, ...] = field(default=(), compare=False)
    more_records: int = field(default=0, compare=False)

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
            "values": dict(self.values),
            "reason": self.reason,
            "records": list(self.records),
            "more_records": self.more_records,
        }

    def explain(self) -> list[str]:
        """Why the signal fired, as lines: the case, the values when it opened, what was new or how far the
        user travelled, and the contributing records (`secevents detect --explain`, `assert_detected`)."""
        lines = [f"case: {self.case}"]
        if self.values:
            lines.append(
                "values when it opened: " + " ".join(f"{k}={_number(v)}" for k, v in self.values.items())
            )
        if self.reason:
            lines.append(self.reason)
        if self.records:
            more = f" (and {self.more_records} more)" if self.more_records else ""
            lines.append(f"records{more}: " + ", ".join(self.records))
        return lines


def _number(value: float) -> str:
    return f"{value:g}" if not float(value).is_integer() else str(int(value))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class Replay:
    """Everything a replay found: the signals, what was read, and per group the closest a rule came."""

    signals: list[Signal] = field(default_factory=list[Signal])
    records: int = 0
    no_timestamp: int = 0
    geo_unresolved: int = 0
    late: int = 0
    """Records that arrived more than the reordering delay behind a later one (`replay_stream`): skipped."""
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
    threshold query reached per group (`Replay.best`, for failure messages)."""
    engine = Engine(rules, geo=geo, explain=explain)
    timeline: list[tuple[float, int, Mapping[str, Any]]] = []
    for index, record in enumerate(records):
        moment = timestamp_of(record) if isinstance(record, Mapping) else None
        if moment is None:
            engine.result.no_timestamp += 1
            continue
        timeline.append((moment, index, record))
    timeline.sort(key=lambda item: item[0])  # stable: records of one instant keep their order
    with _no_cyclic_gc():
        for moment, index, record in timeline:
            engine.push(moment, record, index)
    return engine.finish()


def replay_stream(
    engine: Engine,
    records: Iterable[tuple[Mapping[str, Any], Any]],
    *,
    max_delay: float = DEFAULT_MAX_DELAY,
) -> Replay:
    """Push `(record, ref)` pairs of any number through `engine` in timestamp order, holding at most the
    records of the last `max_delay` seconds to put them in order. A record older than that behind the
    newest one already replayed is counted in `Replay.late` and skipped (its windows have moved on)."""
    buffer: list[tuple[float, int, Mapping[str, Any], Any]] = []
    newest = -math.inf
    done = -math.inf
    result = engine.result
    with _no_cyclic_gc():
        for sequence, (record, ref) in enumerate(records):
            moment = timestamp_of(record)
            if moment is None:
                result.no_timestamp += 1
                continue
            if moment < done:
                result.late += 1
                continue
            heapq.heappush(buffer, (moment, sequence, record, ref))
            newest = max(newest, moment)
            while buffer and buffer[0][0] <= newest - max_delay:
                ready, _, held, held_ref = heapq.heappop(buffer)
                done = ready
                engine.push(ready, held, held_ref)
        while buffer:
            ready, _, held, held_ref = heapq.heappop(buffer)
            engine.push(ready, held, held_ref)
    return engine.finish()


class _no_cyclic_gc:  # noqa: N801 - a context manager used like a function
    """The cyclic collector off while replaying: the engine allocates per-group state and makes no cycles,
    and the collector walking every live record again and again tripled the run time."""

    def __enter__(self) -> None:
        self.was = gc.isenabled()
        gc.disable()

    def __exit__(self, *_: object) -> None:
        if self.was:
            gc.enable()


def _rule_list(rules: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    if isinstance(rules, Mapping):
        return [cast("Mapping[str, Any]", rules)]  # one rule given bare
    if isinstance(rules, str | bytes):
        raise DetectError("rules must be rule objects; use load_rules() for JSON text or a file")
    return list(rules)


def check_and_compile(rules: Iterable[Mapping[str, Any]]) -> list[CompiledRule]:
    """The rules checked as `secevents rules --check` checks them (what Datadog would refuse, then what the
    engine cannot evaluate), then compiled; a `DetectError` names every problem of the first bad rule."""
    from graffer_secevents._tools.rule_check import datadog_problems

    compiled: list[CompiledRule] = []
    for index, rule in enumerate(_rule_list(rules)):
        if not isinstance(rule, Mapping):
            raise DetectError(f"rule #{index}: a rule must be a JSON object, got {type(rule).__name__}")
        rule_id = rule_id_of(rule)
        problems = [f"{p.path}: {p.message}" for p in datadog_problems(rule, path=f"$[{index}]")]
        one: CompiledRule | None = None
        try:
            one = compile_rule(rule)
        except DetectError as exc:
            text = str(exc)
            prefix = f"rule {rule_id!r}: "
            problems.append(text[len(prefix) :] if text.startswith(prefix) else text)
        if problems:
            raise DetectError(f"rule {rule_id!r}: " + "; ".join(problems))
        if one is not None:
            compiled.append(one)
    return compiled


# --- records -----------------------------------------------------------------------------------------------


def timestamp_of(record: Mapping[str, Any]) -> float | None:
    """A record's time as POSIX seconds, from the first of Datadog's default date attributes it has
    (`timestamp`, `@timestamp`, `eventTime`, `date`, …): ISO 8601 (`Z` or an offset), epoch seconds or
    epoch milliseconds. `None` when there is none or it is outside years 1-9999 (`1e300`)."""
    value = record.get("timestamp")
    if isinstance(value, str) and len(value) <= 32 and value.endswith("Z"):
        try:  # the common case first: an ISO 8601 UTC text at the top level
            seconds = datetime.fromisoformat(value).timestamp()
        except (ValueError, OverflowError, OSError):
            pass
        else:
            return seconds if _MIN_TIME <= seconds <= _MAX_TIME else None
    for get in _DATE_GETTERS:
        value = get(record)
        if not is_missing(value):
            return _moment(value)
    return None


def _moment(value: Any) -> float | None:
    if isinstance(value, str):
        if len(value) > 64:
            return None
        moment: datetime | None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = _iso_nanoseconds(value)
        if moment is None:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        try:
            seconds = moment.timestamp()
        except (OverflowError, ValueError, OSError):
            return None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:
            return None
        if not math.isfinite(seconds):
            return None
        seconds = seconds / 1000.0 if abs(seconds) > 1e11 else seconds
    else:
        return None
    return seconds if _MIN_TIME <= seconds <= _MAX_TIME else None


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


def _as_dict(value: object) -> dict[str, Any] | None:
    """`value` as a JSON object read from a record, `None` when it is not a `dict`."""
    return cast("dict[str, Any]", value) if isinstance(value, dict) else None


def _needs_geo(rules: list[CompiledRule]) -> bool:
    return any(
        rule.method in ("impossible_travel", "new_value")
        or any("geoip" in q.text for q in rule.queries)
        or any("geoip" in name for q in rule.queries for name, _ in q.group_by)
        for rule in rules
    )


def _key_text(value: Any) -> str:
    return text_of(value)


def _group_key(query: CompiledQuery, record: Mapping[str, Any]) -> tuple[str, ...] | None:
    values: list[str] = []
    for _, get in query.group_by:
        value = get(record)
        if value.__class__ is str and value:
            values.append(value)
        elif is_missing(value) or value in ("", []):
            if not query.optional_group_by:
                return None
            values.append(NOT_AVAILABLE)
        else:
            values.append(_key_text(value))
    return tuple(values)


# --- the engine --------------------------------------------------------------------------------------------


class _Query:
    """One distinct query text of the rule set, run once per record."""

    __slots__ = ("exact", "hint", "matcher")

    def __init__(self, matcher: Matcher) -> None:
        self.matcher = matcher
        self.hint = index_hint(matcher)
        self.exact = self.hint is not None and hint_is_exact(matcher)


class Engine:
    """The rules' state, fed one record at a time in timestamp order (`push`), read out by `finish`.

    Raises (at construction):
        DetectError: a rule Datadog would refuse, or one the engine cannot evaluate, naming it.
    """

    def __init__(
        self,
        rules: Iterable[Mapping[str, Any]],
        *,
        geo: GeoLookup | None = None,
        explain: bool = False,
        describe: Callable[[Any], str] | None = None,
    ) -> None:
        compiled = check_and_compile(rules)
        self.result = Replay(rules=compiled, explain=explain)
        self.describe = describe or _describe_index
        texts: dict[str, int] = {}
        self.queries: list[_Query] = []
        for rule in compiled:
            for query in rule.queries:
                if query.text not in texts:
                    texts[query.text] = len(self.queries)
                    self.queries.append(_Query(query.matcher))
        self.paths = {path: attribute_getter(path) for q in self.queries for path, _ in q.hint or ()}
        self.runners: list[_Runner] = [
            _RUNNERS[rule.method](rule, [texts[q.text] for q in rule.queries], self) for rule in compiled
        ]
        self.geo = as_lookup(geo) if geo is not None and _needs_geo(compiled) else None
        self.geo_cache: dict[str, dict[str, Any] | None] = {}
        self.sweep_at = -math.inf

    def push(self, moment: float, record: Mapping[str, Any], ref: Any = None) -> None:
        """Replay one record at `moment` (POSIX seconds, never before the previous record's)."""
        self.result.records += 1
        if self.geo is not None:
            record = self._with_geo(record)
        hits = self._match(record)
        for runner in self.runners:
            runner.push(moment, record, ref, hits)
        if moment >= self.sweep_at:
            for runner in self.runners:
                if moment >= runner.sweep_at:
                    runner.sweep(moment)
                    runner.sweep_at = moment + runner.sweep_every
            self.sweep_at = min(runner.sweep_at for runner in self.runners) if self.runners else math.inf

    def finish(self) -> Replay:
        """Close every open signal and return the replay, signals ordered by first event then rule."""
        signals = self.result.signals
        for runner in self.runners:
            signals.extend(runner.signals.finish())
        signals.sort(key=lambda s: (s.first_seen, s.rule_id, sorted(s.group.items())))
        return self.result

    def _match(self, record: Mapping[str, Any]) -> list[bool]:
        """Whether each distinct query matches the record. A query that needs one of a few exact values at
        some attributes (`@evt.type:x`, `@a:(x OR y)`) is answered from those attributes, read once per
        record, and its matcher runs only when the hint cannot decide."""
        seen: dict[str, Any] = {}
        hits: list[bool] = []
        for query in self.queries:
            hint = query.hint
            if hint is not None:
                ok = True
                for path, values in hint:
                    value = seen.get(path, _UNREAD)
                    if value is _UNREAD:
                        value = seen[path] = self.paths[path](record)
                    if value.__class__ is str:
                        if value not in values:
                            ok = False
                            break
                    elif not any(text in values for text in _texts(value)):
                        ok = False
                        break
                if not ok or query.exact:
                    hits.append(ok)
                    continue
            hits.append(query.matcher(record))
        return hits

    def _with_geo(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        """Add `network.client.geoip` from `network.client.ip` as Datadog's GeoIP parser would (records that
        already carry one keep it)."""
        ip = _CLIENT_IP(record)
        if not isinstance(ip, str) or not is_missing(_GEOIP(record)):
            return record
        cache = self.geo_cache
        if ip not in cache:
            if len(cache) >= _GEO_CACHE:
                cache.clear()
            assert self.geo is not None
            point = self.geo(ip)
            cache[ip] = geoip_attributes(point) if point is not None else None
        attributes = cache[ip]
        if attributes is None:
            self.result.geo_unresolved += 1
            return record
        # Nested as the library writes it; a flattened record gets the nested object beside its dotted keys.
        nested = _as_dict(record.get("network"))
        network = dict(nested) if nested is not None else {}
        client = _as_dict(network.get("client"))
        network["client"] = {**(client if client is not None else {}), "geoip": attributes}
        return {**record, "network": network}


def _texts(value: Any) -> tuple[str, ...]:
    if value.__class__ is str:
        return (value,)
    if is_missing(value):
        return ()
    if isinstance(value, list):
        items = cast("list[object]", value)
        return tuple(text_of(item) for item in items if item is not None)
    return (text_of(value),)


def _describe_index(ref: Any) -> str:
    return f"record #{ref}" if isinstance(ref, int) else str(ref)


# --- signals -----------------------------------------------------------------------------------------------


class _Open:
    """A signal still accepting events."""

    __slots__ = ("case", "count", "env", "first", "last", "more", "reason", "refs", "values")

    def __init__(
        self,
        first: float,
        last: float,
        count: int,
        case: int,
        env: Any,
        values: dict[str, float],
        refs: list[Any],
        reason: str,
    ) -> None:
        self.first = first
        self.last = last
        self.count = count
        self.case = case
        self.env = env
        self.values = values
        self.refs = refs[:EXPLAIN_RECORDS]
        self.more = max(0, count - len(self.refs))
        self.reason = reason


class _Signals:
    """Opens, folds and closes the signals of one rule, per group."""

    def __init__(self, rule: CompiledRule, describe: Callable[[Any], str]) -> None:
        self.rule = rule
        self.describe = describe
        self.names = [name for name, _ in rule.queries[0].group_by]
        self.open: dict[tuple[str, ...], _Open] = {}
        self.done: list[Signal] = []

    def _expired(self, current: _Open, now: float) -> bool:
        return now - current.last > self.rule.keep_alive or now - current.first > self.rule.max_duration

    def sweep(self, now: float) -> None:
        """Close the signals no later event can extend."""
        ended = [key for key, current in self.open.items() if self._expired(current, now)]
        for key in ended:
            self.done.append(self._close(key, self.open.pop(key)))

    def hit(
        self,
        key: tuple[str, ...],
        now: float,
        case: int,
        first: float,
        count: int,
        env: Any,
        explain: Callable[[], tuple[dict[str, float], list[Any], str]],
        ref: Any,
    ) -> None:
        """A case held for `key` at `now`: fold into the open signal or open one (`explain` gives the values,
        the contributing records and the reason, read only when a signal opens)."""
        current = self.open.get(key)
        if current is not None and self._expired(current, now):
            self.done.append(self._close(key, self.open.pop(key)))
            current = None
        if current is None:
            values, refs, reason = explain()
            self.open[key] = _Open(first, now, count, case, env, values, refs, reason)
            return
        current.last = now
        current.count += 1
        current.case = min(current.case, case)  # an earlier (more severe) case escalates the signal
        if len(current.refs) < EXPLAIN_RECORDS:
            current.refs.append(ref)
        else:
            current.more += 1

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
        return Signal(
            rule_id=rule.rule_id,
            rule_name=rule.name,
            severity=severity,
            case=case.label,
            group=dict(zip(self.names, key, strict=True)),
            first_seen=datetime.fromtimestamp(current.first, UTC),
            last_seen=datetime.fromtimestamp(current.last, UTC),
            count=current.count,
            values=current.values,
            reason=current.reason,
            records=tuple(self.describe(ref) for ref in current.refs),
            more_records=current.more,
        )


class _Runner:
    """One rule's state. `sweep` drops what no later record can use; it runs every `sweep_every` seconds of
    log time (a window's length at least, so each quiet group is visited about twice before it goes)."""

    signals: _Signals
    sweep_at: float = -math.inf
    sweep_every: float = _SWEEP_EVERY

    def push(self, now: float, record: Mapping[str, Any], ref: Any, hits: list[bool]) -> None:
        raise NotImplementedError

    def sweep(self, now: float) -> None:
        raise NotImplementedError


def _passes(rule: CompiledRule, record: Mapping[str, Any]) -> bool:
    return all(matcher(record) == (action == "require") for action, matcher in rule.filters)


# --- threshold ---------------------------------------------------------------------------------------------


class _Window:
    """One query's aggregate over the sliding window of one group: entries are (time, value, ref)."""

    __slots__ = ("aggregation", "distinct", "entries", "peak", "total")

    def __init__(self, aggregation: str) -> None:
        self.aggregation = aggregation
        self.entries: deque[tuple[float, Any, Any]] = deque()
        self.distinct: dict[Any, int] | None = {} if aggregation == "cardinality" else None
        self.total = 0.0
        # max: (time, value) with decreasing values, oldest first, so the front is the window's maximum
        self.peak: deque[tuple[float, float]] | None = deque() if aggregation == "max" else None

    def add(self, moment: float, value: Any, ref: Any) -> None:
        self.entries.append((moment, value, ref))
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
        removed = False
        while entries and entries[0][0] <= cutoff:
            _, value, _ = entries.popleft()
            removed = True
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
        if removed and self.aggregation == "sum" and not math.isfinite(self.total):
            self.total = sum(value for _, value, _ in entries)  # an overflow leaves nothing to subtract from

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


def _contribution(query: CompiledQuery, record: Mapping[str, Any]) -> tuple[bool, Any]:
    """(counts, value) of one matching record for one query."""
    if query.aggregation == "count":
        return True, None
    if query.aggregation == "cardinality":
        values = tuple(get(record) for get in query.distinct)
        if any(is_missing(v) for v in values):
            return False, None
        if len(values) == 1 and values[0].__class__ is str:
            return True, values[0]
        return True, tuple(map(_key_text, values))
    value = query.metrics[0](record)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False, None
    try:
        number = float(value)
    except OverflowError:
        number = math.inf if value > 0 else -math.inf
    if math.isnan(number):
        return False, None
    return True, number


class _Group:
    """One group-by key of a threshold rule: one window per query (made when the query first adds to it),
    (joined queries) the group's records, and when it last received one."""

    __slots__ = ("last", "seen", "windows")

    def __init__(self, size: int) -> None:
        self.windows: list[_Window | None] = [None] * size
        self.seen: deque[tuple[float, Any]] = deque()
        self.last = -math.inf


def _required(rule: CompiledRule) -> tuple[int, ...]:
    """The queries every case needs events from: with no event a comparison is false, so a case that holds
    when one query has none and every other is huge does not need it. A group whose required windows are
    empty cannot raise anything: its cases are not tried."""
    aliases = [q.alias for q in rule.queries]
    needed: list[int] = []
    for index, alias in enumerate(aliases):
        values: dict[str, float | None] = dict.fromkeys(aliases, math.inf)
        values[alias] = None
        if not any(case.condition is None or case.condition(values) for case in rule.cases):
            needed.append(index)
    return tuple(needed)


class _Threshold(_Runner):
    def __init__(self, rule: CompiledRule, indices: list[int], engine: Engine) -> None:
        self.rule = rule
        self.indices = indices
        self.pairs = tuple(enumerate(indices))
        self.signals = _Signals(rule, engine.describe)
        self.groups: dict[tuple[str, ...], _Group] = {}
        self.touches: deque[tuple[float, tuple[str, ...]]] = deque()
        self.joined = len(rule.queries) > 1
        self.required = _required(rule)
        self.sweep_every = max(_SWEEP_EVERY, rule.window)
        self.best: dict[tuple[str, ...], dict[str, float]] | None = None
        if engine.result.explain:
            self.best = engine.result.best[rule.rule_id] = {}
            self.required = ()  # the nearest miss needs every group's values

    def cutoff(self, now: float) -> float:
        # A window of 0 holds the events of the same instant: everything strictly older has left it.
        window = self.rule.window
        return now - window if window > 0 else math.nextafter(now, -math.inf)

    def push(self, now: float, record: Mapping[str, Any], ref: Any, hits: list[bool]) -> None:
        rule = self.rule
        touched: list[tuple[str, ...]] | None = None
        checked = False
        for q, index in self.pairs:
            if not hits[index]:
                continue
            if not checked:
                if rule.filters and not _passes(rule, record):
                    return
                checked = True
            query = rule.queries[q]
            key = _group_key(query, record)
            if key is None:
                continue
            counts, value = _contribution(query, record)
            if not counts:
                continue
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = _Group(len(rule.queries))
            window = group.windows[q]
            if window is None:
                window = group.windows[q] = _Window(query.aggregation)
            window.add(now, value, ref)
            if touched is None:
                touched = [key]
            elif key not in touched:
                touched.append(key)
        if touched is None:
            return
        cutoff = self.cutoff(now)
        for key in touched:
            group = self.groups[key]
            group.last = now
            self.touches.append((now, key))
            windows = group.windows
            for window in windows:
                if window is not None:
                    window.trim(cutoff)
            if self.joined:
                seen = group.seen
                seen.append((now, ref))
                while seen and seen[0][0] <= cutoff:
                    seen.popleft()
            if any((window := windows[i]) is None or not window.entries for i in self.required):
                continue  # a query every case needs has no event in the window: no case can hold
            if self.joined:
                first, count = group.seen[0][0], len(group.seen)
            else:
                entries = cast("_Window", windows[0]).entries
                first, count = entries[0][0], len(entries)
            self.evaluate(key, group, now, first, count, record, ref)

    def evaluate(
        self,
        key: tuple[str, ...],
        group: _Group,
        now: float,
        first: float,
        count: int,
        record: Mapping[str, Any],
        ref: Any,
    ) -> None:
        """Try the cases for `key` after a record at `now` (windows already trimmed)."""
        values = {
            q.alias: (w.value() if w is not None else None)
            for q, w in zip(self.rule.queries, group.windows, strict=True)
        }
        if self.best is not None:
            peak = self.best.setdefault(key, {})
            for alias, value in values.items():
                if value is not None and value > peak.get(alias, -math.inf):
                    peak[alias] = value
        for c, case in enumerate(self.rule.cases):
            if case.condition is not None and case.condition(values):

                def explain() -> tuple[dict[str, float], list[Any], str]:
                    shown = {alias: value if value is not None else 0.0 for alias, value in values.items()}
                    entries = sorted(
                        (entry for window in group.windows if window is not None for entry in window.entries),
                        key=lambda e: e[0],
                    )
                    refs: list[Any] = []
                    for _, _, one in entries:
                        if one not in refs:
                            refs.append(one)
                    return shown, refs, ""

                self.signals.hit(key, now, c, first, count, _ENV(record), explain, ref)
                return

    def sweep(self, now: float) -> None:
        """Close the signals no event can extend, and forget the groups no event touched for a window (their
        windows are empty: every entry is older than the cutoff). Cost: the touches that expired."""
        self.signals.sweep(now)
        cutoff = self.cutoff(now)
        touches = self.touches
        groups = self.groups
        while touches and touches[0][0] <= cutoff:
            _, key = touches.popleft()
            group = groups.get(key)
            if group is not None and group.last <= cutoff:
                del groups[key]


# --- new value ---------------------------------------------------------------------------------------------


class _NewValue(_Runner):
    """Per group: when it was first seen, whether a value was learned, and each value's last sighting."""

    def __init__(self, rule: CompiledRule, indices: list[int], engine: Engine) -> None:
        self.rule = rule
        self.index = indices[0]
        self.query = rule.queries[0]
        self.signals = _Signals(rule, engine.describe)
        self.started: dict[tuple[str, ...], float] = {}
        self.known: dict[tuple[str, ...], dict[tuple[str, ...], float]] = {}

    def push(self, now: float, record: Mapping[str, Any], ref: Any, hits: list[bool]) -> None:
        rule = self.rule
        if not hits[self.index] or (rule.filters and not _passes(rule, record)):
            return
        query = self.query
        key = _group_key(query, record)
        if key is None:
            return
        raw = tuple(get(record) for get in query.metrics)
        if any(is_missing(v) for v in raw):
            return
        value = tuple(_key_text(v) for v in raw)
        seen_before = key in self.started
        first = self.started.setdefault(key, now)
        values = self.known.setdefault(key, {})
        last = values.pop(value, None)  # put back last: the dict stays ordered by last sighting
        forget = rule.forget_after
        is_new = last is None or now - last > forget
        # What the group knows now, whenever the sweep last ran: the values seen within `forgetAfter` (the
        # oldest first, so dropping the forgotten ones costs what they are).
        while values:
            oldest = next(iter(values))
            if now - values[oldest] <= forget:
                break
            del values[oldest]
        learned = len(values)
        values[value] = now
        # Datadog: after `learningDuration` days; with 0, "for all new values after the first value is
        # learned": the group's first value, however long ago (forgetting values does not unlearn it).
        past_learning = now - first > rule.learning if rule.learning > 0 else seen_before
        if not (is_new and past_learning):
            return

        def explain() -> tuple[dict[str, float], list[Any], str]:
            shown = ", ".join(value)
            why = "forgotten after forgetAfter" if last is not None else "never seen"
            return (
                {"known_values": float(learned)},
                [ref],
                f"new value {shown!r} for this group ({why}; {learned} other value"
                f"{'s' if learned != 1 else ''} known)",
            )

        self.signals.hit(key, now, 0, now, 1, _ENV(record), explain, ref)

    def sweep(self, now: float) -> None:
        self.signals.sweep(now)
        forget = self.rule.forget_after
        for values in self.known.values():
            old = [value for value, last in values.items() if now - last > forget]
            for value in old:
                del values[value]


# --- impossible travel -------------------------------------------------------------------------------------


def _location(record: Mapping[str, Any]) -> tuple[tuple[float, float], str] | None:
    geoip = _as_dict(_GEOIP(record))
    location = _as_dict(geoip.get("location")) if geoip is not None else None
    if geoip is None or location is None:
        return None
    lat, lon = location.get("latitude"), location.get("longitude")
    if not (_is_number(lat) and _is_number(lon)):
        return None
    point = (float(lat or 0.0), float(lon or 0.0))
    if not (
        math.isfinite(point[0]) and math.isfinite(point[1]) and abs(point[0]) <= 90 and abs(point[1]) <= 180
    ):
        return None
    city = _as_dict(geoip.get("city"))
    country = _as_dict(geoip.get("country"))
    names = [
        str(part)
        for part in (
            city.get("name") if city is not None else None,
            (country.get("iso_code") or country.get("name")) if country is not None else None,
        )
        if isinstance(part, str) and part
    ]
    label = ", ".join(names) if names else f"{point[0]:.2f},{point[1]:.2f}"
    return point, label[:80]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Travel(_Runner):
    """Per group: the previous location, the learned (baseline) locations with when each was last seen, and
    the transitions already signalled."""

    def __init__(self, rule: CompiledRule, indices: list[int], engine: Engine) -> None:
        self.rule = rule
        self.index = indices[0]
        self.query = rule.queries[0]
        self.signals = _Signals(rule, engine.describe)
        self.previous: dict[tuple[str, ...], tuple[float, tuple[float, float], str, Any]] = {}
        self.sweep_every = 86400.0
        self.started: dict[tuple[str, ...], float] = {}
        self.baseline: dict[tuple[str, ...], dict[tuple[float, float], float]] = {}
        self.transitions: dict[
            tuple[str, ...], dict[tuple[tuple[float, float], tuple[float, float]], float]
        ] = {}
        self.best: dict[tuple[str, ...], dict[str, float]] | None = None
        if engine.result.explain:
            self.best = engine.result.best[rule.rule_id] = {}

    def push(self, now: float, record: Mapping[str, Any], ref: Any, hits: list[bool]) -> None:
        rule = self.rule
        if not hits[self.index] or (rule.filters and not _passes(rule, record)):
            return
        key = _group_key(self.query, record)
        found = _location(record)
        if key is None or found is None:
            return
        point, label = found
        rounded = (round(point[0], 1), round(point[1], 1))
        first = self.started.setdefault(key, now)
        before = self.previous.get(key)
        self.previous[key] = (now, point, label, ref)
        if rule.baseline > 0:
            known = self.baseline.setdefault(key, {})
            seen = known.get(rounded)
            familiar = seen is not None and now - seen <= LOCATION_MEMORY
            known[rounded] = now
            if now - first <= rule.baseline or familiar:
                return  # learning the user's usual locations, or a location the baseline knows
        if before is None:
            return
        then, where, where_label, where_ref = before
        km = distance_km(where, point)
        hours = (now - then) / 3600.0
        if self.best is not None:
            peak = self.best.setdefault(key, {"km": 0.0, "km/h": 0.0})
            peak["km"] = max(peak["km"], round(km, 1))
            kmh = km / hours if hours > 0 else (math.inf if km > 0 else 0.0)
            peak["km/h"] = max(peak["km/h"], round(kmh, 1))
        if not (km > TRAVEL_MIN_KM and (hours <= 0 or km / hours > TRAVEL_MIN_KMH)):
            return
        origin = (round(where[0], 1), round(where[1], 1))
        done = self.transitions.setdefault(key, {})
        signalled = done.get((origin, rounded))
        if signalled is not None and now - signalled <= LOCATION_MEMORY:
            return  # the same transition again: Datadog suppresses repeated transitions
        done[(origin, rounded)] = now
        speed = "instantly" if hours <= 0 else f"{km / hours:,.0f} km/h"

        def explain() -> tuple[dict[str, float], list[Any], str]:
            return (
                {"km": round(km, 1), "hours": round(hours, 3)},
                [where_ref, ref],
                f"{where_label} -> {label}: {km:,.0f} km in {hours * 60:,.0f} min ({speed})",
            )

        self.signals.hit(key, now, 0, then, 2, _ENV(record), explain, ref)

    def sweep(self, now: float) -> None:
        self.signals.sweep(now)
        for known in self.baseline.values():
            for place in [place for place, last in known.items() if now - last > LOCATION_MEMORY]:
                del known[place]
        for done in self.transitions.values():
            for hop in [hop for hop, last in done.items() if now - last > LOCATION_MEMORY]:
                del done[hop]


_RUNNERS: Final[dict[str, Callable[[CompiledRule, list[int], Engine], _Runner]]] = {
    "threshold": _Threshold,
    "new_value": _NewValue,
    "impossible_travel": _Travel,
}


def iter_refs(records: Iterable[Mapping[str, Any]]) -> Iterator[tuple[Mapping[str, Any], int]]:
    """`(record, index)` pairs for `replay_stream` over an in-memory list (refs are list positions)."""
    return ((record, index) for index, record in enumerate(records))
