"""Datadog's documented semantics, one hand-computed scenario each, through the Python API and the CLI.

Each scenario states the records, what Datadog's documentation says should happen, and the signals that
follow by hand; `both` runs `evaluate` and `secevents detect --format json` over the same rules and records
and checks that they agree before the scenario checks the signals.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from graffer_secevents._tools.cli import main
from graffer_secevents.detect import GeoPoint, evaluate

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = 3600.0
DAY = 86400.0
PARIS = GeoPoint(48.8566, 2.3522, "FR", "Paris")
NEW_YORK = GeoPoint(40.7128, -74.0060, "US", "New York")


def iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def out(seconds: float) -> str:
    """A time as signals show it."""
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="microseconds").replace("+00:00", "Z")


def login(
    seconds: float, user: str = "42", ip: str = "203.0.113.7", outcome: str = "failure", **extra: Any
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "timestamp": iso(seconds),
        "evt": {"name": "authentication", "outcome": outcome},
        "usr": {"id": user},
        "network": {"client": {"ip": ip}},
    }
    record.update(extra)
    return record


def rule(queries: list[dict[str, Any]], cases: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    return {
        "name": "scenario",
        "message": "m",
        "tags": ["secevents_rule:scenario"],
        "queries": queries,
        "cases": cases,
        "options": {"evaluationWindow": 300, "keepAlive": 3600, "maxSignalDuration": 86400, **options},
    }


def _key(signal: dict[str, Any]) -> tuple[Any, ...]:
    return (
        signal["rule_id"],
        signal["severity"],
        tuple(sorted(signal["group"].items())),
        signal["first_seen"],
        signal["last_seen"],
        signal["count"],
    )


def both(
    tmp_path: Path,
    rules: list[dict[str, Any]],
    records: list[dict[str, Any]],
    geo: dict[str, GeoPoint] | None = None,
    capsys: pytest.CaptureFixture[str] | None = None,
) -> list[dict[str, Any]]:
    """The signals of `evaluate` (as JSON data), after checking `secevents detect` finds the same."""
    api = [s.as_dict() for s in evaluate(rules, records, geo=geo)]
    log = tmp_path / "logs.jsonl"
    log.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps(rules))
    argv = ["detect", str(log), "--rules", str(rules_file), "--format", "json"]
    if geo is not None:
        geo_file = tmp_path / "geo.json"
        geo_file.write_text(
            json.dumps(
                {
                    ip: {"lat": p.lat, "lon": p.lon, "country": p.country, "city": p.city}
                    for ip, p in geo.items()
                }
            )
        )
        argv += ["--geo", str(geo_file)]
    assert capsys is not None
    capsys.readouterr()
    assert main(argv) == 0
    cli = json.loads(capsys.readouterr().out)["signals"]
    assert sorted(map(_key, cli)) == sorted(map(_key, api))
    return api


def test_a_path_through_an_array_of_objects_reaches_every_element(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Datadog searches `@a.b` in every object of the array `a`: a CloudTrail `AttachUserPolicy` whose
    second parameter names the admin policy matches `@requestParameters.policies.name:AdministratorAccess`."""
    attach = {
        "eventTime": iso(10),
        "eventName": "AttachUserPolicy",
        "userIdentity": {"arn": "arn:aws:iam::1:user/mallory"},
        "requestParameters": {"policies": [{"name": "ReadOnly"}, {"name": "AdministratorAccess"}]},
    }
    harmless = {**attach, "eventTime": iso(20), "requestParameters": {"policies": [{"name": "ReadOnly"}]}}
    admin = rule(
        [
            {
                "query": "@eventName:AttachUserPolicy @requestParameters.policies.name:AdministratorAccess",
                "groupByFields": ["@userIdentity.arn"],
            }
        ],
        [{"status": "high", "condition": "a > 0"}],
    )
    [signal] = both(tmp_path, [admin], [attach, harmless], capsys=capsys)
    assert signal["group"] == {"userIdentity.arn": "arn:aws:iam::1:user/mallory"}
    assert signal["count"] == 1


def test_custom_query_extension_is_appended_to_the_query(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`customQueryExtension` narrows the query (Datadog appends it): 3 failures from .7 and 3 from .8 for
    user 42 count 3, not 6; `a >= 4` then never holds and `a >= 3` does, with 3 events."""
    records = [login(t, ip="203.0.113.7") for t in (0, 1, 2)] + [
        login(t, ip="203.0.113.8") for t in (3, 4, 5)
    ]
    query = {
        "query": "@evt.outcome:failure",
        "groupByFields": ["@usr.id"],
        "customQueryExtension": "@network.client.ip:203.0.113.7",
    }
    assert (
        both(tmp_path, [rule([query], [{"status": "low", "condition": "a >= 4"}])], records, capsys=capsys)
        == []
    )
    [signal] = both(
        tmp_path, [rule([query], [{"status": "low", "condition": "a >= 3"}])], records, capsys=capsys
    )
    assert (signal["count"], signal["first_seen"], signal["last_seen"]) == (3, out(0), out(2))


def _new_country(**new_value_options: Any) -> dict[str, Any]:
    """A new-value rule on each user's `@geo` of successful logins."""
    return rule(
        [
            {
                "query": "@evt.outcome:success",
                "aggregation": "new_value",
                "groupByFields": ["@usr.id"],
                "metrics": ["@geo"],
            }
        ],
        [{"status": "info"}],
        detectionMethod="new_value",
        evaluationWindow=0,
        newValueOptions=new_value_options,
    )


def test_new_value_learning_defaults_to_zero_days(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Datadog's API: `learningDuration` defaults to 0, and then "a signal will be generated for all new values
    after the first value is learned". User 42: FR (learned), FR (known), DE (new: signal). User 43's first
    value is learned, no signal."""
    records = [
        login(0, outcome="success", geo="FR"),
        login(HOUR, outcome="success", geo="FR"),
        login(2 * HOUR, outcome="success", geo="DE"),
        login(3 * HOUR, user="43", outcome="success", geo="US"),
    ]
    country = _new_country(forgetAfter=7)
    [signal] = both(tmp_path, [country], records, capsys=capsys)
    assert (signal["group"], signal["first_seen"]) == ({"usr.id": "42"}, out(2 * HOUR))
    assert "new value 'DE'" in signal["reason"]


def test_a_forgotten_value_does_not_depend_on_when_the_engine_tidies_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """forgetAfter 1 day, learning 0: user 42 from FR, then 3 days later from DE. FR is forgotten by then
    (none of the group's values is known), but the group learned its first value: DE is new, one signal.
    The answer must be the same whether or not another record (here a failure, which the query does not
    match) came in between and made the engine forget FR in its periodic sweep; before, it was not (a sweep
    in between emptied the group and DE was taken as a first value)."""
    country = _new_country(forgetAfter=1, learningDuration=0)
    alone = [login(0, outcome="success", geo="FR"), login(3 * DAY, outcome="success", geo="DE")]
    between = [alone[0], login(2 * DAY, user="7"), alone[1]]
    [signal] = both(tmp_path, [country], alone, capsys=capsys)
    assert (signal["group"], signal["first_seen"]) == ({"usr.id": "42"}, out(3 * DAY))
    assert "0 other values known" in signal["reason"]
    [again] = both(tmp_path, [country], between, capsys=capsys)
    assert (_key(again), again["reason"]) == (_key(signal), signal["reason"])


def test_the_deprecated_singular_metric_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Datadog's own default rules still carry `metric` (singular): it is the watched field when `metrics`
    is absent. User 42 from .7 (learned) then from .8: one new-value signal."""
    records = [login(0, outcome="success"), login(60, outcome="success", ip="203.0.113.8")]
    new_ip = rule(
        [
            {
                "query": "@evt.outcome:success",
                "aggregation": "new_value",
                "groupByFields": ["@usr.id"],
                "metric": "@network.client.ip",
            }
        ],
        [{"status": "info"}],
        detectionMethod="new_value",
        evaluationWindow=0,
        newValueOptions={"forgetAfter": 7, "learningDuration": 0},
    )
    [signal] = both(tmp_path, [new_ip], records, capsys=capsys)
    assert signal["first_seen"] == out(60)


def _travel(**travel: Any) -> dict[str, Any]:
    return rule(
        [
            {
                "query": "@evt.outcome:success",
                "aggregation": "geo_data",
                "groupByFields": ["@usr.id"],
                "metrics": ["@network.client.geoip"],
            }
        ],
        [{"status": "medium"}],
        detectionMethod="impossible_travel",
        evaluationWindow=0,
        **({"impossibleTravelOptions": travel} if travel else {}),
    )


GEO = {"192.0.2.1": PARIS, "192.0.2.3": NEW_YORK}


def test_a_repeated_transition_is_suppressed_for_30_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Paris -> New York in 1 h (5,837 km/h) fires; the same hop two days later does not (a repeated
    transition); 31 days after the first it fires again. The New York -> Paris hops take a day: no signal."""
    hops = [0, HOUR, DAY, 2 * DAY, 2 * DAY + HOUR, 31 * DAY, 32 * DAY, 32 * DAY + HOUR]
    places = [
        "192.0.2.1",
        "192.0.2.3",
        "192.0.2.1",
        "192.0.2.1",
        "192.0.2.3",
        "192.0.2.1",
        "192.0.2.1",
        "192.0.2.3",
    ]
    records = [login(t, outcome="success", ip=ip) for t, ip in zip(hops, places, strict=True)]
    signals = both(tmp_path, [_travel()], records, geo=GEO, capsys=capsys)
    assert [(s["first_seen"], s["last_seen"]) for s in signals] == [
        (out(0), out(HOUR)),
        (out(32 * DAY), out(32 * DAY + HOUR)),
    ]
    assert "Paris, FR -> New York, US: 5,837 km in 60 min" in signals[0]["reason"]


def test_baseline_locations_are_forgotten_after_30_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With `baselineUserLocations`, the first day learns Paris and New York: hops between them on day 4 are
    known, no signal. On day 40 both were last seen 36 days ago, so forgotten: Paris -> New York in 1 h
    fires again."""
    hops = [0, 12 * HOUR, 4 * DAY, 4 * DAY + HOUR, 40 * DAY, 40 * DAY + HOUR]
    places = ["192.0.2.1", "192.0.2.3", "192.0.2.1", "192.0.2.3", "192.0.2.1", "192.0.2.3"]
    records = [login(t, outcome="success", ip=ip) for t, ip in zip(hops, places, strict=True)]
    [signal] = both(tmp_path, [_travel(baselineUserLocations=True)], records, geo=GEO, capsys=capsys)
    assert (signal["first_seen"], signal["last_seen"]) == (out(40 * DAY), out(40 * DAY + HOUR))


def test_cidr_matches_addresses_inside_the_blocks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`CIDR(@network.client.ip, 203.0.113.0/24)`: two failures from 203.0.113.7 count, two from
    198.51.100.1 do not: one signal for 203.0.113.7."""
    records = [login(0), login(1), login(2, ip="198.51.100.1"), login(3, ip="198.51.100.1")]
    inside = rule(
        [
            {
                "query": "CIDR(@network.client.ip, 203.0.113.0/24, 2001:db8::/32)",
                "groupByFields": ["@network.client.ip"],
            }
        ],
        [{"status": "low", "condition": "a > 1"}],
    )
    [signal] = both(tmp_path, [inside], records, capsys=capsys)
    assert signal["group"] == {"network.client.ip": "203.0.113.7"}


def test_queries_join_on_differently_named_group_by_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Datadog's "EBS snapshot created then shared" joins `@responseElements.snapshotId` and
    `@requestParameters.snapshotId` by value: snap-1 is created and shared (signal), snap-2 only shared."""
    created = {
        "eventTime": iso(0),
        "eventName": "CreateSnapshot",
        "responseElements": {"snapshotId": "snap-1"},
    }
    shared = {
        "eventTime": iso(60),
        "eventName": "ModifySnapshotAttribute",
        "requestParameters": {"snapshotId": "snap-1"},
    }
    other = {
        "eventTime": iso(90),
        "eventName": "ModifySnapshotAttribute",
        "requestParameters": {"snapshotId": "snap-2"},
    }
    snapshot = rule(
        [
            {
                "name": "created",
                "query": "@eventName:CreateSnapshot",
                "groupByFields": ["@responseElements.snapshotId"],
            },
            {
                "name": "shared",
                "query": "@eventName:ModifySnapshotAttribute",
                "groupByFields": ["@requestParameters.snapshotId"],
            },
        ],
        [{"status": "high", "condition": "created > 0 && shared > 0"}],
        evaluationWindow=3600,
    )
    [signal] = both(tmp_path, [snapshot], [created, shared, other], capsys=capsys)
    assert signal["group"] == {"responseElements.snapshotId": "snap-1"}
    assert signal["values"] == {"created": 1.0, "shared": 1.0}


def test_a_window_of_zero_holds_the_events_of_one_instant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`evaluationWindow: 0` (allowed by Datadog): two failures at the same instant make `a >= 2`; two failures
    a second apart never do. The engine's reading of 0 is written in docs/detect.md."""
    zero = rule(
        [{"query": "@evt.outcome:failure", "groupByFields": ["@usr.id"]}],
        [{"status": "low", "condition": "a >= 2"}],
        evaluationWindow=0,
        keepAlive=0,
        maxSignalDuration=0,
    )
    [signal] = both(
        tmp_path, [zero], [login(5), login(5), login(7, user="43"), login(8, user="43")], capsys=capsys
    )
    assert (signal["group"], signal["count"]) == ({"usr.id": "42"}, 2)
