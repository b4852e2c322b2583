"""Replay Datadog Cloud SIEM detection rules over security records, offline: `evaluate` returns the signals.

The rules are Datadog's detection-rule API JSON (the body of `POST /api/v2/security_monitoring/rules`):
the library's own set (`default_rules`) or a team's custom rules (`load_rules`). The records are the dicts
the library writes (a capture's `.records`, or JSON lines read back). Threshold, new-value and
impossible-travel rules are evaluated; anything else is a `DetectError` naming the construct, never
skipped. Where the replay differs from Datadog's real-time evaluation is in `docs/detect.md`.

Example:
    ```python
    from graffer_secevents.detect import default_rules, evaluate

    signals = evaluate(default_rules(service="shop"), records)
    assert {s.rule_id for s in signals} == {"credential_stuffing"}
    ```

This module is tooling: `import graffer_secevents` does not import it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._tools.detect.engine import Signal, evaluate
from ._tools.detect.errors import DetectError
from ._tools.detect.geo import GeoLookup, GeoPoint, maxmind_lookup
from ._tools.detect.loading import load_rules

__all__ = [
    "DetectError",
    "GeoLookup",
    "GeoPoint",
    "Signal",
    "default_rules",
    "evaluate",
    "load_rules",
    "maxmind_lookup",
]

evaluate.__module__ = __name__
evaluate.__doc__ = """Replay detection rules over records and return the signals they raise.

    Records are sorted by `timestamp` first (those without one are skipped). Each rule's queries are
    matched once per record; threshold rules aggregate (`count`, `cardinality`, `sum`, `max`) per
    `groupByFields` key over a sliding `evaluationWindow`, join their queries on that key and try the
    cases in order; a signal stays open for `keepAlive` after its last matching event and at most
    `maxSignalDuration`. `new_value` rules learn per group for `learningDuration` days (default 0: the
    first value) and forget a value after `forgetAfter` days; `impossible_travel` rules flag more than
    500 km at more than 1,000 km/h between successive events of a group, forget baseline locations after
    30 days and signal a repeated transition once. Disabled rules (`isEnabled: false`) are skipped. Each
    rule is first checked as `secevents rules --check` checks it. Each signal carries its explanation
    (`Signal.values`, `reason`, `records`, `Signal.explain()`).

    Args:
        rules: rule API JSON objects (`default_rules`, `load_rules`), or one rule.
        records: log records: the library's (nested dicts) or any other JSON logs (CloudTrail, ...); the
            time is read from `timestamp` or another of Datadog's default date attributes.
        geo: where an IP is, for rules on `@network.client.geoip`: a mapping of IP to `GeoPoint`, a
            function, or `maxmind_lookup`. Records without `network.client.geoip` get it from
            `network.client.ip` through this lookup, as Datadog's GeoIP parser would.

    Returns:
        The signals, ordered by first event, then rule id.

    Raises:
        DetectError: a rule Datadog would refuse, or a rule, query or condition the engine cannot
            evaluate, naming it.

    Example:
        ```python
        signals = evaluate(load_rules("rules/team.json"), capture.records, geo={"203.0.113.7": paris})
        ```
    """
for _public in (DetectError, GeoPoint, Signal, load_rules, maxmind_lookup):
    _public.__module__ = __name__


def default_rules(
    *, service: str | None = None, env: str | None = None, only: Iterable[str] | None = None, **params: Any
) -> list[dict[str, Any]]:
    """The library's rule set as API JSON, the same `secevents rules` writes.

    Args:
        service: scope every query to this `service:`.
        env: scope every query to this `env:`.
        only: rule ids to keep (default: all).
        **params: per-rule thresholds, windows and severities (see `docs/detection-rules.md`).

    Returns:
        One rule object per rule, each tagged `secevents_rule:<id>`.

    Example:
        ```python
        evaluate(default_rules(only=["credential_stuffing"]), records)
        ```
    """
    from ._tools.rules import build_rules

    return build_rules(service=service, env=env, only=only, **params)
