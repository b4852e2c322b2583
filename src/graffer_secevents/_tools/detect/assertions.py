"""What `Capture.assert_detected` and `Capture.assert_not_detected` check, and their failure messages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from .engine import TRAVEL_MIN_KM, TRAVEL_MIN_KMH, Replay, Signal, replay
from .geo import GeoLookup
from .report import describe_signal, safe

__all__ = ["detected", "not_detected"]

_SHOWN: Final = 5


def _wanted(group: Mapping[str, Any]) -> dict[str, str]:
    """`network__client__ip=...` keyword arguments as group-by fields (`network.client.ip`)."""
    return {
        key.replace("__", "."): value if isinstance(value, str) else str(value)
        for key, value in group.items()
    }


def _run(
    rule_id: str,
    records: list[dict[str, Any]],
    rules: Iterable[Mapping[str, Any]] | None,
    geo: GeoLookup | None,
) -> Replay:
    if rules is None:
        from graffer_secevents._tools.rules import build_rules

        rules = build_rules()
    result = replay(rules, records, geo=geo, explain=True)
    known = sorted({rule.rule_id for rule in result.rules})
    if rule_id not in known:
        raise AssertionError(
            f"no rule {rule_id!r} in the rules given; rule ids: {', '.join(known) or 'none'}"
        )
    return result


def _fits(signal: Signal, rule_id: str, wanted: Mapping[str, str]) -> bool:
    return signal.rule_id == rule_id and all(signal.group.get(k) == v for k, v in wanted.items())


def _describe(signal: Signal) -> str:
    return f"{describe_signal(signal)}: {signal.count} events ({signal.case})"


def _explained(signal: Signal) -> list[str]:
    """A signal and why it fired, as `secevents detect --explain` shows it."""
    return [f"  {_describe(signal)}", *(f"    {safe(line, 500)}" for line in signal.explain())]


def _fired(result: Replay) -> str:
    if not result.signals:
        return "no signal fired"
    shown = [f"  {_describe(s)}" for s in result.signals[:_SHOWN]]
    if len(result.signals) > _SHOWN:
        shown.append(f"  ... and {len(result.signals) - _SHOWN} more")
    return "signals that fired:\n" + "\n".join(shown)


def _nearest(result: Replay, rule_id: str, wanted: Mapping[str, str]) -> str:
    rule = next(r for r in result.rules if r.rule_id == rule_id)
    conditions = "; ".join(f"{c.text or 'any event'} -> {c.status}" for c in rule.cases)
    names = [name for name, _ in rule.queries[0].group_by]
    unknown = [key for key in wanted if key not in names]
    if unknown:
        return (
            f"the rule groups by {', '.join(names) or 'nothing'}: {', '.join(map(repr, unknown))} "
            f"{'is' if len(unknown) == 1 else 'are'} not among its group-by fields "
            "(a typo, or `__` for a dot?)"
        )
    best = result.best.get(rule_id)
    if best is None:
        return f"the rule is {rule.method}; its cases: {conditions}"
    groups = [
        (key, values)
        for key, values in best.items()
        if all(dict(zip(names, key, strict=True)).get(k) == v for k, v in wanted.items())
    ]
    if not groups:
        return f"no record matched the rule's queries for this group; its cases: {conditions}"
    key, values = max(groups, key=lambda item: max(item[1].values(), default=0.0))
    group = ", ".join(f"{n}={safe(v)}" for n, v in zip(names, key, strict=True)) or "(no group-by)"
    if rule.method == "impossible_travel":
        return (
            f"nearest miss: {group}: the farthest hop between successive events was "
            f"{values.get('km', 0):,.0f} "
            f"km, the fastest {values.get('km/h', 0):,.0f} km/h; the rule needs more "
            f"than {TRAVEL_MIN_KM:,.0f} "
            f"km at more than {TRAVEL_MIN_KMH:,.0f} km/h (and a location outside the learned baseline)"
        )
    if rule.method == "new_value":
        learning = rule.learning / 86400.0
        return (
            f"nearest miss: {group}: {values.get('records', 0):g} records, "
            f"{values.get('distinct values', 0):g} "
            f"distinct values over {values.get('days observed', 0):g} days; a value fires when "
            f"it is new after "
            f"the learning period ({learning:g} days"
            + (", the first value being learned" if learning == 0 else "")
            + f") and was not seen in the last {rule.forget_after / 86400.0:g} days"
        )
    reached = ", ".join(f"{alias} reached {value:g}" for alias, value in values.items())
    return f"nearest miss: {group}: {reached} in one window; the cases need: {conditions}"


def detected(
    rule_id: str,
    records: list[dict[str, Any]],
    *,
    rules: Iterable[Mapping[str, Any]] | None,
    geo: GeoLookup | None,
    group: Mapping[str, Any],
) -> Signal:
    """The first signal of `rule_id` whose group has every `group` value, else an AssertionError."""
    wanted = _wanted(group)
    result = _run(rule_id, records, rules, geo)
    for signal in result.signals:
        if _fits(signal, rule_id, wanted):
            return signal
    where = f" for {', '.join(f'{k}={safe(v)}' for k, v in wanted.items())}" if wanted else ""
    raise AssertionError(
        f"rule {rule_id!r} raised no signal{where} over {result.records} records\n"
        f"{_fired(result)}\n{_nearest(result, rule_id, wanted)}"
    )


def not_detected(
    rule_id: str,
    records: list[dict[str, Any]],
    *,
    rules: Iterable[Mapping[str, Any]] | None,
    geo: GeoLookup | None,
    group: Mapping[str, Any],
) -> None:
    """An AssertionError listing the signals of `rule_id` (for `group`) if any fired."""
    wanted = _wanted(group)
    result = _run(rule_id, records, rules, geo)
    hits = [s for s in result.signals if _fits(s, rule_id, wanted)]
    if hits:
        shown = "\n".join(line for s in hits[:_SHOWN] for line in _explained(s))
        raise AssertionError(f"rule {rule_id!r} raised {len(hits)} signal(s), expected none:\n{shown}")
