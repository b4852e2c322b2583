"""The replay engine against results computed by hand: windows, joins, cases, keep-alive, new value, travel."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graffer_secevents import MissingDependencyError
from graffer_secevents._tools.detect.engine import replay
from graffer_secevents._tools.detect.geo import distance_km
from graffer_secevents.detect import DetectError, GeoPoint, Signal, default_rules, evaluate, maxmind_lookup

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = 86400.0
PARIS = GeoPoint(48.8566, 2.3522, "FR", "Paris")
LYON = GeoPoint(45.7640, 4.8357, "FR", "Lyon")
NEW_YORK = GeoPoint(40.7128, -74.0060, "US", "New York")
BERLIN = GeoPoint(52.5200, 13.4050, "DE", "Berlin")
TOKYO = GeoPoint(35.6762, 139.6503, "JP", "Tokyo")
GEO = {"192.0.2.1": PARIS, "192.0.2.2": LYON, "192.0.2.3": NEW_YORK, "192.0.2.4": BERLIN, "192.0.2.5": TOKYO}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def record(
    seconds: float,
    outcome: str = "failure",
    *,
    ip: str | None = "203.0.113.7",
    user: str | None = "42",
    evt_type: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A record shaped as the library writes it, ``seconds`` after T0."""
    kind = evt_type or ("authn_login_success" if outcome == "success" else "authn_login_fail")
    out: dict[str, Any] = {
        "timestamp": at(seconds).isoformat().replace("+00:00", "Z"),
        "status": "info",
        "message": f"{kind}: login",
        "service": "shop",
        "env": "prod",
        "evt": {"type": kind, "name": "authentication", "category": "authentication", "outcome": outcome},
        "usr": {},
        "network": {"client": {}},
    }
    if user is not None:
        out["usr"]["id"] = user
    if ip is not None:
        out["network"]["client"]["ip"] = ip
    for key, value in extra.items():
        section, _, name = key.partition("__")
        out.setdefault(section, {})[name] = value
    return out


def rule(
    queries: list[dict[str, Any]],
    cases: list[dict[str, Any]],
    *,
    window: int = 300,
    keep_alive: int = 3600,
    max_duration: int = 86400,
    **options: Any,
) -> dict[str, Any]:
    return {
        "name": "test rule",
        "type": "log_detection",
        "isEnabled": True,
        "message": "m",
        "tags": ["secevents_rule:test"],
        "queries": queries,
        "cases": cases,
        "options": {
            "detectionMethod": "threshold",
            "evaluationWindow": window,
            "keepAlive": keep_alive,
            "maxSignalDuration": max_duration,
            **options,
        },
    }


def failures_by_ip(threshold: int, **kw: Any) -> dict[str, Any]:
    query = {
        "name": "a",
        "query": "@evt.outcome:failure",
        "aggregation": "count",
        "groupByFields": ["@network.client.ip"],
    }
    return rule([query], [{"name": "many", "status": "medium", "condition": f"a >= {threshold}"}], **kw)


def spans(signals: list[Signal]) -> list[tuple[float, float, int]]:
    return [
        ((s.first_seen - T0).total_seconds(), (s.last_seen - T0).total_seconds(), s.count) for s in signals
    ]


# --- windows ------------------------------------------------------------------------------------------------


def test_an_attack_spread_over_two_windows_raises_no_signal() -> None:
    """8 failures, but never 5 within 300 s: 4 at 0-30 s, 4 at 400-430 s."""
    records = [record(t) for t in (0, 10, 20, 30, 400, 410, 420, 430)]
    assert evaluate([failures_by_ip(5)], records) == []


def test_the_window_slides_instead_of_tumbling() -> None:
    """3 failures at 250-270 s and 2 at 310-320 s: 5 within 70 s although they straddle 300 s."""
    records = [record(t) for t in (250, 260, 270, 310, 320)]
    assert spans(evaluate([failures_by_ip(5)], records)) == [(250, 320, 5)]


def test_a_burst_just_inside_the_windows_edge_fires() -> None:
    """t=0 and four at t=299.999: all five within 300 s."""
    records = [record(0)] + [record(299.999) for _ in range(4)]
    assert spans(evaluate([failures_by_ip(5)], records)) == [(0, 299.999, 5)]


def test_an_event_exactly_one_window_older_has_left_it() -> None:
    """t=0 and four at t=300: the first is out of (0, 300], so only four count."""
    records = [record(0)] + [record(300) for _ in range(4)]
    assert evaluate([failures_by_ip(5)], records) == []


def test_records_are_replayed_in_timestamp_order() -> None:
    records = [record(t) for t in (320, 250, 310, 270, 260)]
    assert spans(evaluate([failures_by_ip(5)], records)) == [(250, 320, 5)]


def test_groups_are_counted_apart() -> None:
    records = [record(t, ip="198.51.100.1") for t in range(4)] + [
        record(t, ip="198.51.100.2") for t in range(5)
    ]
    signals = evaluate([failures_by_ip(5)], records)
    assert [dict(s.group) for s in signals] == [{"network.client.ip": "198.51.100.2"}]


# --- queries ------------------------------------------------------------------------------------------------


def test_or_and_negation_queries_pick_the_hand_counted_records() -> None:
    query = {
        "name": "a",
        "query": "@evt.type:authz_fail OR (@evt.outcome:failure -@usr.exists:true)",
        "groupByFields": ["@network.client.ip"],
    }
    records = [
        record(0, evt_type="authz_fail", outcome="failure"),  # yes: authz_fail
        record(1, usr__exists=True),  # no: the account exists
        record(2, usr__exists=False),  # yes
        record(3),  # yes: no usr.exists at all
        record(4, "success"),  # no
        record(5, usr__exists=True),  # no
    ]
    three = rule([query], [{"status": "low", "condition": "a >= 3"}])
    four = rule([query], [{"status": "low", "condition": "a >= 4"}])
    assert spans(evaluate([three], records)) == [(0, 3, 3)]  # records 0, 2 and 3
    assert evaluate([four], records) == []


# --- group-by -----------------------------------------------------------------------------------------------


def _by_user(optional: bool) -> dict[str, Any]:
    query: dict[str, Any] = {"name": "a", "query": "@evt.outcome:failure", "groupByFields": ["@usr.id"]}
    query["hasOptionalGroupByFields"] = optional
    return rule([query], [{"status": "low", "condition": "a >= 3"}])


def test_records_missing_the_group_by_are_ignored_by_default() -> None:
    records = [record(t, user=None) for t in range(5)] + [record(9, user="7")]
    assert evaluate([_by_user(False)], records) == []


def test_with_optional_group_by_missing_values_group_as_na() -> None:
    records = [record(t, user=None) for t in range(3)] + [record(9, user="7")]
    signals = evaluate([_by_user(True)], records)
    assert [(dict(s.group), s.count) for s in signals] == [({"usr.id": "N/A"}, 3)]


def test_a_query_without_events_for_the_group_cannot_satisfy_its_comparison() -> None:
    """Datadog: a group-by value missing from one query means a case on that query cannot match."""
    queries = [
        {"name": "a", "query": "@evt.outcome:failure", "groupByFields": ["@usr.id"]},
        {"name": "b", "query": "@evt.outcome:success", "groupByFields": ["@usr.id"]},
    ]
    records = [record(t) for t in range(5)]
    assert evaluate([rule(queries, [{"status": "low", "condition": "a >= 5 && b >= 0"}])], records) == []
    assert len(evaluate([rule(queries, [{"status": "low", "condition": "a >= 5 || b >= 0"}])], records)) == 1


# --- joins and cases ----------------------------------------------------------------------------------------


def test_credential_stuffing_joins_failures_and_success_on_the_ip() -> None:
    rules = default_rules(only=["credential_stuffing"])
    stuffing = [record(i, user=f"u{i}", ip="203.0.113.7") for i in range(25)]
    success_elsewhere = [record(30, "success", user="u1", ip="198.51.100.9")]
    success_here = [record(31, "success", user="u2", ip="203.0.113.7")]
    [attempt] = evaluate(rules, stuffing + success_elsewhere)
    assert (attempt.severity, attempt.case, dict(attempt.group)) == (
        "medium",
        "credential stuffing attempt",
        {"network.client.ip": "203.0.113.7"},
    )
    assert attempt.rule_id == "credential_stuffing"
    [attack] = evaluate(rules, stuffing + success_here)
    assert attack.severity == "high"  # the same signal, escalated when the success joined
    assert attack.count == 26


def _tiered(first: str, second: str) -> dict[str, Any]:
    query = {"name": "a", "query": "@evt.outcome:failure", "groupByFields": ["@usr.id"]}
    cases = {"high": {"name": "ten", "status": "high", "condition": "a >= 10"}}
    cases["medium"] = {"name": "five", "status": "medium", "condition": "a >= 5"}
    return rule([query], [cases[first], cases[second]])


def test_cases_are_tried_in_order_and_the_first_that_holds_wins() -> None:
    seven = [record(t) for t in range(7)]
    twelve = [record(t) for t in range(12)]
    assert [s.case for s in evaluate([_tiered("high", "medium")], seven)] == ["five"]
    assert [s.severity for s in evaluate([_tiered("high", "medium")], twelve)] == ["high"]
    # `a >= 5` first: it holds at 12 too, so the signal stays medium.
    assert [s.severity for s in evaluate([_tiered("medium", "high")], twelve)] == ["medium"]


def test_sum_and_max_aggregate_a_metric_over_the_window() -> None:
    def big(aggregation: str, threshold: int) -> dict[str, Any]:
        query = {"name": "a", "query": "*", "aggregation": aggregation, "metrics": ["@http.bytes"]}
        return rule([query], [{"status": "low", "condition": f"a > {threshold}"}], window=60)

    records = [record(t, http__bytes=n) for t, n in ((0, 40), (10, 50), (100, 30), (110, 20))]
    assert spans(evaluate([big("sum", 80)], records)) == [(0, 10, 2)]  # 90 at t=10; 50 at t=110
    assert evaluate([big("max", 50)], records) == []
    assert spans(evaluate([big("max", 45)], records)) == [(0, 10, 2)]  # 50 at t=10, with t=0 in the window


# --- signal lifetime ----------------------------------------------------------------------------------------


def test_keep_alive_folds_later_matches_and_max_duration_splits_the_signal() -> None:
    """Each failure fires (a >= 1). keepAlive 300 s, maxSignalDuration 600 s, failures at 0, 250, 500, 700,
    1200 s: 250 and 500 fold into the first signal; 700 is 700 s after its start (> 600) so a new signal
    opens; 1200 is 500 s after 700 (> 300) so a third."""
    records = [record(t) for t in (0, 250, 500, 700, 1200)]
    signals = evaluate([failures_by_ip(1, window=60, keep_alive=300, max_duration=600)], records)
    assert spans(signals) == [(0, 500, 3), (700, 700, 1), (1200, 1200, 1)]


def test_a_disabled_rule_is_not_evaluated() -> None:
    disabled = failures_by_ip(1) | {"isEnabled": False}
    assert evaluate([disabled], [record(0)]) == []


# --- new value ----------------------------------------------------------------------------------------------


def new_country(learning_days: float = 1, forget_days: float = 7) -> dict[str, Any]:
    query = {
        "name": "logins",
        "query": "@evt.outcome:success",
        "aggregation": "new_value",
        "groupByFields": ["@usr.id"],
        "metrics": ["@network.client.geoip.country.iso_code"],
    }
    learning = {"learningDuration": learning_days, "forgetAfter": forget_days}
    return rule(
        [query],
        [{"name": "new country", "status": "low"}],
        detectionMethod="new_value",
        newValueOptions=learning,
    )


def test_new_value_learns_then_flags_unseen_and_forgotten_values() -> None:
    """User 1: FR at day 0 and DE at day 0.5 are learned; FR at day 2 is known; US at day 3 is new; DE at
    day 10 was last seen 9.5 days before (> 7): forgotten, so new again. User 2 starts at day 5: its own
    learning day, so JP and BR raise nothing."""
    records = [
        record(0, "success", user="1", ip="192.0.2.1"),
        record(0.5 * DAY, "success", user="1", ip="192.0.2.4"),
        record(2 * DAY, "success", user="1", ip="192.0.2.1"),
        record(3 * DAY, "success", user="1", ip="192.0.2.3"),
        record(10 * DAY, "success", user="1", ip="192.0.2.4"),
        record(5 * DAY, "success", user="2", ip="192.0.2.5"),
        record(5.5 * DAY, "success", user="2", ip="192.0.2.1"),
    ]
    signals = evaluate([new_country()], records, geo=GEO)
    assert [(dict(s.group), (s.first_seen - T0).total_seconds() / DAY) for s in signals] == [
        ({"usr.id": "1"}, 3.0),
        ({"usr.id": "1"}, 10.0),
    ]
    assert evaluate([new_country()], records) == []  # without a geo lookup there is no country to learn


# --- impossible travel --------------------------------------------------------------------------------------


def travel_rule() -> dict[str, Any]:
    query = {
        "name": "logins",
        "query": "@evt.outcome:success",
        "aggregation": "geo_data",
        "groupByFields": ["@usr.id"],
        "metrics": ["@network.client.geoip"],
    }
    return rule([query], [{"name": "travel", "status": "medium"}], detectionMethod="impossible_travel")


def test_haversine_distances_match_the_published_figures() -> None:
    assert distance_km((PARIS.lat, PARIS.lon), (NEW_YORK.lat, NEW_YORK.lon)) == pytest.approx(5837, abs=5)
    assert distance_km((PARIS.lat, PARIS.lon), (LYON.lat, LYON.lon)) == pytest.approx(392, abs=3)


def test_impossible_travel_needs_over_500_km_at_over_1000_kmh() -> None:
    """A: Paris then New York 1 h later (5837 km/h): fires. B: the same trip in 8 h (730 km/h): no.
    C: Paris then Lyon a minute later (392 km, too short): no."""
    records = [
        record(0, "success", user="A", ip="192.0.2.1"),
        record(3600, "success", user="A", ip="192.0.2.3"),
        record(0, "success", user="B", ip="192.0.2.1"),
        record(8 * 3600, "success", user="B", ip="192.0.2.3"),
        record(0, "success", user="C", ip="192.0.2.1"),
        record(60, "success", user="C", ip="192.0.2.2"),
    ]
    signals = evaluate([travel_rule()], records, geo=GEO)
    assert [(dict(s.group), spans([s])) for s in signals] == [({"usr.id": "A"}, [(0, 3600, 2)])]


def test_a_geoip_already_in_the_record_is_used_without_a_lookup() -> None:
    def located(seconds: float, point: GeoPoint) -> dict[str, Any]:
        out = record(seconds, "success", user="A")
        out["network"]["client"]["geoip"] = {"location": {"latitude": point.lat, "longitude": point.lon}}
        return out

    assert len(evaluate([travel_rule()], [located(0, PARIS), located(600, TOKYO)])) == 1


def test_a_function_lookup_is_called_once_per_ip() -> None:
    asked: list[str] = []

    def lookup(ip: str) -> GeoPoint | None:
        asked.append(ip)
        return GEO.get(ip)

    records = [record(t, "success", user="A", ip="192.0.2.1") for t in range(5)]
    records.append(record(10, "success", user="A", ip="203.0.113.99"))
    result = replay([travel_rule()], records, geo=lookup)
    assert sorted(asked) == ["192.0.2.1", "203.0.113.99"]
    assert result.geo_unresolved == 1


# --- what the engine refuses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"options": {"detectionMethod": "anomaly_detection", "evaluationWindow": 300}}, "anomaly_detection"),
        (
            {"options": {"detectionMethod": "sequence_detection", "evaluationWindow": 300}},
            "sequence_detection",
        ),
        ({"cases": [{"status": "low", "condition": "a > 1 THEN a > 2"}]}, "THEN"),
        ({"cases": [{"status": "low", "condition": "a != 1"}]}, "!="),
        ({"cases": [{"status": "low", "condition": "a + 1 > 2"}]}, "+"),
        ({"cases": [{"status": "low", "condition": "z > 1"}]}, "unknown query 'z'"),
        ({"cases": [{"status": "urgent", "condition": "a > 1"}]}, "urgent"),
        ({"queries": [{"name": "a", "query": "*", "aggregation": "event_count"}]}, "event_count"),
        ({"queries": [{"name": "a", "query": "team:security"}]}, "team:"),
        ({"type": "signal_correlation"}, "signal_correlation"),
        ({"schedulingOptions": {"rrule": "FREQ=HOURLY"}}, "schedulingOptions"),
    ],
)
def test_what_the_engine_cannot_evaluate_is_a_detect_error_naming_it(
    change: dict[str, Any], named: str
) -> None:
    bad = failures_by_ip(1) | change
    if "options" in change:
        bad["options"] = change["options"]
    with pytest.raises(DetectError, match="rule 'test'") as caught:
        evaluate([bad], [record(0)])
    assert named in str(caught.value)


def test_records_without_a_readable_timestamp_are_skipped_and_counted() -> None:
    broken = record(0) | {"timestamp": "yesterday"}
    missing = {k: v for k, v in record(1).items() if k != "timestamp"}
    nanoseconds = record(2) | {"timestamp": "2026-01-01T00:00:02.123456789Z"}
    result = replay([failures_by_ip(1)], [broken, missing, nanoseconds])
    assert (result.records, result.no_timestamp) == (1, 2)
    assert result.signals[0].first_seen == at(2.123456)


def test_maxmind_lookup_without_geoip2_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "geoip2", None)
    monkeypatch.setitem(sys.modules, "geoip2.database", None)
    with pytest.raises(MissingDependencyError, match=r"graffer-secevents\[geoip\]"):
        maxmind_lookup("GeoLite2-City.mmdb")


def test_maxmind_lookup_reads_a_real_geoip2_city_database(tmp_path: Any) -> None:
    """A GeoLite2-City-shaped database written with mmdb-writer, read back through geoip2's Reader."""
    mmdb_writer = pytest.importorskip("mmdb_writer")
    netaddr = pytest.importorskip("netaddr")
    writer = mmdb_writer.MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City")
    for network, point in (("192.0.2.0/28", PARIS), ("192.0.2.16/28", NEW_YORK)):
        content = {
            "location": {"latitude": point.lat, "longitude": point.lon},
            "country": {"iso_code": point.country},
            "city": {"names": {"en": point.city}},
        }
        writer.insert_network(netaddr.IPSet([network]), content)
    path = tmp_path / "GeoLite2-City.mmdb"
    writer.to_db_file(str(path))
    lookup = maxmind_lookup(str(path))
    assert lookup("192.0.2.1") == PARIS
    assert lookup("198.51.100.1") is None  # not in the database
    assert lookup("not an ip") is None
    records = [
        record(0, "success", user="A", ip="192.0.2.1"),
        record(3600, "success", user="A", ip="192.0.2.17"),
    ]
    assert [s.rule_id for s in evaluate([travel_rule()], records, geo=lookup)] == ["test"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 100_000) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
_KEYS = st.sampled_from(
    ["name", "query", "aggregation", "groupByFields", "distinctFields", "metrics", "status", "condition"]
)
_RULE_PART = st.dictionaries(_KEYS, _JSON | st.sampled_from(["a > 1", "count", "@a:b", "low", ["@usr.id"]]))


@settings(max_examples=300, deadline=None)
@given(
    queries=st.lists(_RULE_PART, max_size=2) | _JSON,
    cases=st.lists(_RULE_PART, max_size=2) | _JSON,
    options=st.dictionaries(
        st.sampled_from(["detectionMethod", "evaluationWindow", "keepAlive", "newValueOptions"]),
        _JSON | st.sampled_from(["threshold", "new_value", "impossible_travel", 300]),
    )
    | _JSON,
)
def test_hostile_rule_json_raises_only_detect_error(queries: Any, cases: Any, options: Any) -> None:
    hostile = {"name": "hostile", "queries": queries, "cases": cases, "options": options}
    try:
        signals = evaluate([hostile], [record(0), record(1, "success")])
    except DetectError:
        return
    assert all(isinstance(s, Signal) for s in signals)


def test_a_flattened_export_gets_its_geoip_too() -> None:
    def flat(seconds: float, ip: str) -> dict[str, Any]:
        return {
            "timestamp": at(seconds).isoformat(),
            "evt.outcome": "success",
            "usr.id": "A",
            "network.client.ip": ip,
        }

    assert len(evaluate([travel_rule()], [flat(0, "192.0.2.1"), flat(600, "192.0.2.5")], geo=GEO)) == 1
