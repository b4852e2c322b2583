"""``secevents rules --check``: each Datadog constraint rejects a hand-made bad rule, naming the rule and path."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graffer_secevents._tools.rule_check import Finding, check_rule, check_rules, load_rules
from graffer_secevents._tools.rules import build_rules


def team_rule() -> dict[str, Any]:
    """A valid custom rule as a team would write it (no secevents tag)."""
    return {
        "name": "Team: many failed payments per card holder",
        "type": "log_detection",
        "isEnabled": True,
        "message": "Payments failing for {{@usr.id}}",
        "tags": ["team:payments"],
        "queries": [
            {
                "name": "fails",
                "query": "service:shop @evt.type:payment_failure",
                "aggregation": "count",
                "groupByFields": ["@usr.id"],
            },
            {
                "name": "cards",
                "query": "service:shop @evt.type:payment_failure",
                "aggregation": "cardinality",
                "groupByFields": ["@usr.id"],
                "distinctFields": ["@evt.card_hash"],
            },
        ],
        "cases": [
            {"name": "carding", "status": "high", "condition": "fails > 10 && (cards >= 3 || fails >= 50)"},
            {"name": "failing", "status": "low", "condition": "fails > 10"},
        ],
        "options": {"detectionMethod": "threshold", "evaluationWindow": 300, "keepAlive": 600,
                    "maxSignalDuration": 3600},
    }  # fmt: skip


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(rule: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = rule
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is _DELETE:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = value

    return change


_DELETE = object()

BAD: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("rule type", _set("type", "metric_alert"), "$.type", "expected one of log_detection"),
    ("name required", _set("name", _DELETE), "$.name", "required"),
    ("message required", _set("message", ""), "$.message", "required"),
    ("options required", _set("options", _DELETE), "$.options", "required"),
    ("queries required", _set("queries", []), "$.queries", "at least one query"),
    ("cases required", _set("cases", []), "$.cases", "at least one case"),
    ("detection method", _set("options.detectionMethod", "magic"), "$.options.detectionMethod", "expected one of"),
    ("aggregation", _set("queries.0.aggregation", "avg"), "$.queries[0].aggregation", "expected one of count"),
    ("window value", _set("options.evaluationWindow", 120), "$.options.evaluationWindow", "expected one of 0, 60"),
    ("window bool", _set("options.keepAlive", True), "$.options.keepAlive", "expected one of"),
    ("window missing", _set("options.keepAlive", _DELETE), "$.options.keepAlive", "required for threshold"),
    ("evaluation > keepAlive", _set("options.evaluationWindow", 900), "$.options.keepAlive",
     "evaluationWindow (900) must not exceed keepAlive (600)"),
    ("keepAlive > maxSignal", _set("options.maxSignalDuration", 300), "$.options.maxSignalDuration",
     "keepAlive (600) must not exceed maxSignalDuration (300)"),
    ("case status", _set("cases.0.status", "severe"), "$.cases[0].status", "one of info, low"),
    ("case status missing", _set("cases.1.status", _DELETE), "$.cases[1].status", "required"),
    ("unknown query in condition", _set("cases.0.condition", "fails > 10 && b > 0"), "$.cases[0].condition",
     "refers to b, not a query name"),
    ("comparison operator", _set("cases.1.condition", "fails < 10"), "$.cases[1].condition", "> or >="),
    ("condition syntax", _set("cases.1.condition", "fails > 10 &&"), "$.cases[1].condition", "unexpected end"),
    ("condition parenthesis", _set("cases.1.condition", "(fails > 1"), "$.cases[1].condition", "missing ')'"),
    ("condition garbage", _set("cases.1.condition", "fails > 1; drop"), "$.cases[1].condition", "cannot read"),
    ("threshold case needs a condition", _set("cases.1.condition", _DELETE), "$.cases[1].condition",
     "needs a condition"),
    ("duplicate query name", _set("queries.1.name", "fails"), "$.queries[1].name", "two queries are named"),
    ("query name", _set("queries.1.name", "a-b"), "$.queries[1].name", "expected a name"),
    ("query text", _set("queries.0.query", ""), "$.queries[0].query", "required"),
    ("cardinality needs distinct", _set("queries.1.distinctFields", []), "$.queries[1].distinctFields",
     "distinctFields"),
    ("sum needs metrics", _set("queries.0.aggregation", "sum"), "$.queries[0].metrics", "needs the field"),
    ("group by list", _set("queries.0.groupByFields", "@usr.id"), "$.queries[0].groupByFields", "list of strings"),
    ("typo in options", _set("options.evalutionWindow", 300), "$.options.evalutionWindow", "unknown field"),
    ("typo in a query", _set("queries.0.groupBy", ["@usr.id"]), "$.queries[0].groupBy", "unknown field"),
    ("isEnabled", _set("isEnabled", "yes"), "$.isEnabled", "true or false"),
    ("tags", _set("tags", "team:payments"), "$.tags", "list of strings"),
    ("geo_data in a threshold rule", _set("queries.0.aggregation", "geo_data"), "$.queries[0].aggregation",
     "belongs to a impossible_travel rule"),
]  # fmt: skip


def test_the_team_rule_is_valid() -> None:
    assert check_rule(team_rule()) == []


@pytest.mark.parametrize(("what", "change", "path", "message"), BAD, ids=[b[0] for b in BAD])
def test_each_constraint_rejects_a_bad_rule(
    what: str, change: Callable[[dict[str, Any]], None], path: str, message: str
) -> None:
    rule = team_rule()
    change(rule)
    findings = check_rule(rule)
    assert findings, what
    matching = [f for f in findings if f.path == path and message in f.message]
    assert matching, f"{what}: {[str(f) for f in findings]}"
    expected_name = rule.get("name") or "rule at $"
    assert all(f.rule == expected_name for f in findings)


def _new_value() -> dict[str, Any]:
    (rule,) = build_rules(only=["new_country"])
    return rule


def _travel() -> dict[str, Any]:
    (rule,) = build_rules(only=["impossible_travel"])
    return rule


METHOD_BAD: list[tuple[str, Callable[[], dict[str, Any]], Callable[[dict[str, Any]], None], str, str]] = [
    ("new_value: one query", _new_value, lambda r: r["queries"].append(copy.deepcopy(r["queries"][0])),
     "$.queries", "exactly one query"),
    ("new_value: aggregation", _new_value, _set("queries.0.aggregation", "count"), "$.queries[0].aggregation",
     "aggregates with new_value"),
    ("new_value: at most 5 metrics", _new_value, _set("queries.0.metrics", [f"@f{n}" for n in range(6)]),
     "$.queries[0].metrics", "1 to 5"),
    ("new_value: a metric", _new_value, _set("queries.0.metrics", []), "$.queries[0].metrics", "1 to 5"),
    ("new_value: options", _new_value, _set("options.newValueOptions", _DELETE), "$.options.newValueOptions",
     "required for new_value"),
    ("new_value: forgetAfter", _new_value, _set("options.newValueOptions.forgetAfter", _DELETE),
     "$.options.newValueOptions.forgetAfter", "required"),
    ("new_value: forgetAfter range", _new_value, _set("options.newValueOptions.forgetAfter", 60),
     "$.options.newValueOptions.forgetAfter", "1 to 30"),
    ("new_value: learningDuration range", _new_value, _set("options.newValueOptions.learningDuration", -1),
     "$.options.newValueOptions.learningDuration", "0 to 30"),
    ("new_value: learningMethod", _new_value, _set("options.newValueOptions.learningMethod", "vibes"),
     "$.options.newValueOptions.learningMethod", "duration or threshold"),
    ("new_value: learningThreshold", _new_value, _set("options.newValueOptions.learningThreshold", 2),
     "$.options.newValueOptions.learningThreshold", "0 or 1"),
    ("travel: geoip metric", _travel, _set("queries.0.metrics", ["@usr.handle"]), "$.queries[0].metrics",
     "@network.client.geoip"),
    ("travel: geo_data", _travel, _set("queries.0.aggregation", "count"), "$.queries[0].aggregation",
     "aggregates with geo_data"),
    ("travel: group by user", _travel, _set("queries.0.groupByFields", []), "$.queries[0].groupByFields",
     "groups by the user"),
    ("travel: options", _travel, _set("options.impossibleTravelOptions.baselineUserLocations", "no"),
     "$.options.impossibleTravelOptions.baselineUserLocations", "true or false"),
    ("case order", _travel, lambda r: r["cases"].append({"name": "later", "status": "low"}),
     "$.cases[0].condition", "the cases after it never do"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "make", "change", "path", "message"), METHOD_BAD, ids=[b[0] for b in METHOD_BAD]
)
def test_method_specific_shapes_are_enforced(
    what: str,
    make: Callable[[], dict[str, Any]],
    change: Callable[[dict[str, Any]], None],
    path: str,
    message: str,
) -> None:
    rule = make()
    assert check_rule(rule) == []
    change(rule)
    findings = check_rule(rule)
    assert any(f.path == path and message in f.message for f in findings), [str(f) for f in findings]


def test_a_list_of_rules_names_each_by_its_index() -> None:
    good, bad = team_rule(), team_rule()
    bad["name"] = "second"
    bad["options"]["keepAlive"] = 7
    findings = check_rules(json.dumps([good, bad]))
    assert [str(f) for f in findings] == [
        "second: $[1].options.keepAlive: expected one of 0, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, "
        "43200, 86400 seconds, got 7"
    ]


def test_a_file_of_rules_one_per_line_names_the_line() -> None:
    bad = team_rule()
    bad["cases"][0]["status"] = "urgent"
    text = "\n".join([json.dumps(team_rule()), "", json.dumps(bad), "{not json"])
    rules, problems = load_rules(text)
    assert [path for path, _rule in rules] == ["line 1: $", "line 3: $"]
    assert [p.path for p in problems] == ["line 4"]
    findings = check_rules(text)
    assert [f.path for f in findings] == ["line 4", "line 3: $.cases[0].status"]


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "not JSON"), ("[1]", "expected a rule object"), ("[]", "no rules"), ("{nope", "not JSON")],
)
def test_what_is_not_rule_json_is_a_finding(text: str, message: str) -> None:
    findings = check_rules(text)
    assert findings
    assert message in findings[0].message


def test_every_generated_rule_passes_as_one_file() -> None:
    assert check_rules(orjson.dumps(build_rules(service="auth-api", env="prod"))) == []
    assert isinstance(Finding("r", "$", "m").__str__(), str)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
_FIELDS = st.sampled_from(
    ["name", "type", "queries", "cases", "options", "tags", "isEnabled", "message", "aggregation", "condition",
     "status", "detectionMethod", "evaluationWindow", "keepAlive", "metrics", "groupByFields", "newValueOptions"]
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(value=_JSON)
def test_any_json_gives_findings_never_an_exception(value: Any) -> None:
    findings = check_rules(json.dumps(value))
    assert all(isinstance(f, Finding) and f.path and f.message for f in findings)


@settings(max_examples=150, deadline=None)
@given(
    rule_index=st.integers(0, len(build_rules()) - 1),
    where=st.lists(_FIELDS, min_size=1, max_size=3),
    value=_JSON,
)
def test_a_generated_rule_with_a_hostile_value_anywhere_is_checked_not_crashed(
    rule_index: int, where: list[str], value: Any
) -> None:
    rule: Any = build_rules()[rule_index]
    target = rule
    for key in where[:-1]:
        nested = target.get(key) if isinstance(target, dict) else None
        if isinstance(nested, list) and nested and isinstance(nested[0], dict):
            nested = nested[0]
        if not isinstance(nested, dict):
            break
        target = nested
    target[where[-1]] = value
    for finding in check_rule(rule):
        assert finding.path.startswith("$")


@pytest.mark.parametrize("condition", ["(" * 5000 + "a > 1" + ")" * 5000, "a > 1 && " * 3000 + "a > 1"])
def test_huge_conditions_are_findings_or_clean_not_recursion_errors(condition: str) -> None:
    rule = team_rule()
    rule["cases"][0]["condition"] = condition.replace("a", "fails")
    findings = check_rule(rule)
    assert all(f.path == "$.cases[0].condition" for f in findings)
