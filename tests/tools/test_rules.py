"""The rule table: rules built from the catalog, parameters, Datadog's constraints, Terraform the provider reads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from test_terraform import parse_hcl, untemplate

from graffer_secevents._catalog import CATALOG
from graffer_secevents._errors import ConfigurationError
from graffer_secevents._tools.rule_check import check_rule
from graffer_secevents._tools.rules import (
    RULES,
    SEVERITIES,
    WINDOWS,
    build_rules,
    parse_settings,
    rule_id_of,
    splice_markdown,
    to_terraform,
)
from graffer_secevents._tools.terraform import snake_case

DOCS = Path(__file__).resolve().parents[2] / "docs"

# The provider's documented fields (DataDog/terraform-provider-datadog,
# docs/resources/security_monitoring_rule.md).
PROVIDER_TOP = {
    "name", "message", "type", "enabled", "has_extended_title", "group_signals_by", "tags", "validate",
    "query", "case", "options", "filter", "reference_tables", "signal_query", "third_party_case",
    "scheduling_options", "calculated_field",
}  # fmt: skip
PROVIDER_REQUIRED_TOP = {"name", "message"}
PROVIDER_QUERY = {
    "query", "name", "aggregation", "distinct_fields", "group_by_fields", "metrics",
    "has_optional_group_by_fields", "data_source", "indexes",
}  # fmt: skip
PROVIDER_CASE = {"status", "condition", "name", "notifications", "action"}
PROVIDER_OPTIONS = {
    "detection_method", "evaluation_window", "keep_alive", "max_signal_duration",
    "decrease_criticality_based_on_env", "new_value_options", "impossible_travel_options",
    "anomaly_detection_options", "sequence_detection_options", "third_party_rule_options",
}  # fmt: skip
PROVIDER_NEW_VALUE = {"forget_after", "learning_duration", "learning_method", "learning_threshold",
                      "instantaneous_baseline"}  # fmt: skip
PROVIDER_TRAVEL = {"baseline_user_locations", "baseline_user_locations_duration"}
PROVIDER_AGGREGATIONS = {"count", "cardinality", "sum", "max", "new_value", "geo_data", "event_count", "none"}
PROVIDER_METHODS = {"threshold", "new_value", "anomaly_detection", "impossible_travel", "hardcoded",
                    "third_party", "anomaly_threshold", "sequence_detection"}  # fmt: skip
# The API's camelCase names for the same fields (API JSON is what --check, the engine and the API read).
API_TOP = {"name", "type", "isEnabled", "message", "tags", "queries", "cases", "options"}
REQUIRED_RULES = {
    "credential_stuffing", "brute_force", "brute_force_success", "account_enumeration", "impossible_travel",
    "new_country", "mfa_fatigue", "password_reset_flood_ip", "password_reset_flood_account", "token_reuse",
    "authz_denied_burst", "mass_signup", "admin_after_new_ip",
}  # fmt: skip
_EVT_TYPE = re.compile(r"@evt\.type:([a-z_]+)")
_EVT_NAME = re.compile(r"@evt\.name:([a-z_]+)")


def test_the_table_has_every_rule_the_issue_names() -> None:
    assert set(RULES) >= REQUIRED_RULES
    assert [rule_id_of(rule) for rule in build_rules()] == list(RULES)


@pytest.mark.parametrize("rule", build_rules(service="auth-api", env="prod"), ids=list(RULES))
def test_every_generated_rule_passes_the_check(rule: dict[str, Any]) -> None:
    assert check_rule(rule) == []


@pytest.mark.parametrize("rule", build_rules(), ids=list(RULES))
def test_rules_have_the_api_shape_and_read_only_catalog_values(rule: dict[str, Any]) -> None:
    assert set(rule) == API_TOP
    assert rule["type"] == "log_detection"
    assert rule["isEnabled"] is True
    assert rule["options"]["detectionMethod"] in PROVIDER_METHODS
    assert f"secevents_rule:{rule_id_of(rule)}" in rule["tags"]
    assert "source:graffer_secevents" in rule["tags"]
    login_names = {row.name for row in CATALOG.values() if row.login_attempt}
    for query in rule["queries"]:
        assert query["aggregation"] in PROVIDER_AGGREGATIONS
        assert query["groupByFields"]
        for evt_type in _EVT_TYPE.findall(query["query"]):
            assert evt_type in CATALOG
        for name in _EVT_NAME.findall(query["query"]):
            assert name in login_names
        assert "@usr.password" not in query["query"]
    for case in rule["cases"]:
        assert case["status"] in SEVERITIES
        assert case["notifications"] == []


def test_published_thresholds_are_the_defaults() -> None:
    stuffing, brute, brute_success = build_rules(
        only=["credential_stuffing", "brute_force", "brute_force_success"]
    )
    assert [c["condition"] for c in stuffing["cases"]] == [
        "failed_users >= 25 && successes >= 1",
        "failed_users >= 10",
    ]
    assert stuffing["queries"][0]["aggregation"] == "cardinality"
    assert stuffing["queries"][0]["distinctFields"] == ["@usr.id"]
    assert stuffing["queries"][0]["groupByFields"] == ["@network.client.ip"]
    assert brute["cases"][0]["condition"] == "failures >= 10"
    assert brute["options"]["evaluationWindow"] == 900
    assert brute_success["cases"][0]["condition"] == "failures >= 5 && successes >= 1"


def test_method_specific_shapes() -> None:
    travel, country, enumeration = build_rules(
        only=["impossible_travel", "new_country", "account_enumeration"]
    )
    (query,) = travel["queries"]
    assert query["aggregation"] == "geo_data"
    assert query["metrics"] == ["@network.client.geoip"]
    assert query["groupByFields"] == ["@usr.id"]
    assert travel["options"]["detectionMethod"] == "impossible_travel"
    (query,) = country["queries"]
    assert query["aggregation"] == "new_value"
    assert query["metrics"] == ["@network.client.geoip.country.iso_code"]
    assert query["groupByFields"] == ["@usr.id"]
    assert country["options"]["newValueOptions"]["forgetAfter"] == 28
    assert "@usr.exists:false" in enumeration["queries"][0]["query"]


def test_admin_after_new_ip_joins_two_queries_on_the_user() -> None:
    (rule,) = build_rules(only=["admin_after_new_ip"])
    logins, admin = rule["queries"]
    assert logins["groupByFields"] == admin["groupByFields"] == ["@usr.id"]
    assert logins["distinctFields"] == ["@network.client.ip"]
    assert {"authz_admin", "authz_change", "user_created"} <= set(_EVT_TYPE.findall(admin["query"]))
    assert rule["cases"][0]["condition"] == "login_ips >= 2 && admin_actions >= 1"


def test_service_and_env_scope_every_query_and_tag_every_rule() -> None:
    for rule in build_rules(service="auth-api", env="prod"):
        assert all(q["query"].startswith("service:auth-api env:prod ") for q in rule["queries"])
        assert {"service:auth-api", "env:prod"} <= set(rule["tags"])
        assert rule["name"].startswith("[secevents] auth-api (prod): ")
    assert all("service:" not in q["query"] for rule in build_rules() for q in rule["queries"])


def test_parameters_override_thresholds_windows_and_severities() -> None:
    dotted: dict[str, Any] = {"brute_force.severity": "critical", "brute_force.evaluation_window": 1800}
    (rule,) = build_rules(only=["brute_force"], brute_force__failures=20, **dotted)
    assert rule["cases"][0] == {
        "name": "brute force on one account",
        "status": "critical",
        "condition": "failures >= 20",
        "notifications": [],
    }
    assert rule["options"]["evaluationWindow"] == 1800
    assert check_rule(rule) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"only": ["no_such_rule"]}, "unknown rule"),
        ({"brute_force__nope": 1}, "brute_force takes"),
        ({"nope__failures": 1}, "expected <rule>.<param>"),
        ({"brute_force__failures": 0}, "whole number >= 1"),
        ({"brute_force__failures": True}, "whole number >= 1"),
        ({"brute_force__severity": "urgent"}, "expected one of info"),
        ({"brute_force__evaluation_window": 1000}, "expected one of 0, 60"),
        ({"brute_force__evaluation_window": 7200}, "evaluation_window <= keep_alive"),
        ({"new_country__forget_after": 31}, "1 to 30"),
        ({"impossible_travel__baseline_user_locations": "yes"}, "true or false"),
        ({"credential_stuffing__success_users": 5}, "success_users must be >= attempt_users"),
        ({"service": "auth api"}, "service"),
        ({"env": "prod OR *"}, "env"),
    ],
)
def test_bad_parameters_are_configuration_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        build_rules(**kwargs)


def test_settings_parse_as_the_cli_gives_them() -> None:
    assert parse_settings(["a.b=3", "a.c=true", "a.d=high"]) == {"a.b": 3, "a.c": True, "a.d": "high"}
    with pytest.raises(ConfigurationError, match=r"rule\.param=value"):
        parse_settings(["failures=3"])


def test_windows_are_datadogs() -> None:
    assert WINDOWS == (0, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


# --- Terraform ----------------------------------------------------------------------------------------------


def _api_to_provider(value: Any) -> Any:
    """What the provider's block for an API JSON value looks like once python-hcl2 has parsed it."""
    if isinstance(value, dict):
        return [{snake_case(k): _api_to_provider(v) for k, v in value.items() if v != []}]
    return value


def test_hcl_parses_and_has_only_the_providers_documented_fields() -> None:
    rules = build_rules(service="auth-api", env="prod")
    parsed = parse_hcl(to_terraform(rules))
    assert set(parsed) == {"datadog_security_monitoring_rule"}
    bodies = parsed["datadog_security_monitoring_rule"]
    assert len(bodies) == len(rules)
    for rule in rules:
        body = bodies[f"secevents_{rule_id_of(rule)}"]
        assert set(body) <= PROVIDER_TOP
        assert set(body) >= PROVIDER_REQUIRED_TOP
        assert body["name"] == rule["name"]
        assert body["message"] == rule["message"]
        assert body["enabled"] is True
        assert body["tags"] == rule["tags"]
        assert len(body["query"]) == len(rule["queries"])
        for block, query in zip(body["query"], rule["queries"], strict=True):
            assert set(block) <= PROVIDER_QUERY
            assert block == _api_to_provider(query)[0]
        for block, case in zip(body["case"], rule["cases"], strict=True):
            assert set(block) <= PROVIDER_CASE
            assert block == _api_to_provider(case)[0]
        (options,) = body["options"]
        assert set(options) <= PROVIDER_OPTIONS
        assert [options] == _api_to_provider(rule["options"])
        for nv in options.get("new_value_options", []):
            assert set(nv) <= PROVIDER_NEW_VALUE
        for travel in options.get("impossible_travel_options", []):
            assert set(travel) <= PROVIDER_TRAVEL


def test_terraform_json_has_the_same_resources() -> None:
    rules = build_rules(env="prod")
    document = json.loads(to_terraform(rules, json_syntax=True))
    bodies = document["resource"]["datadog_security_monitoring_rule"]
    hcl_bodies = parse_hcl(to_terraform(rules))["datadog_security_monitoring_rule"]
    assert set(bodies) == set(hcl_bodies)
    for label, body in bodies.items():
        assert set(body) <= PROVIDER_TOP
        # HCL gives every block as a list; Terraform JSON writes a single block as an object.
        as_lists = {k: [v] if isinstance(v, dict) else v for k, v in untemplate(body).items()}
        as_lists["options"] = [
            {k: [v] if isinstance(v, dict) else v for k, v in as_lists["options"][0].items()}
        ]
        assert as_lists == hcl_bodies[label]


def test_a_template_sequence_in_a_message_survives_terraform() -> None:
    (rule,) = build_rules(only=["token_reuse"])
    rule["message"] = "see ${var.runbook} and %{ if x }{{@usr.id}}"
    body = parse_hcl(to_terraform([rule]))["datadog_security_monitoring_rule"]["secevents_token_reuse"]
    assert body["message"] == rule["message"]
    document = json.loads(to_terraform([rule], json_syntax=True))
    assert (
        untemplate(
            document["resource"]["datadog_security_monitoring_rule"]["secevents_token_reuse"]["message"]
        )
        == rule["message"]
    )


# --- docs ---------------------------------------------------------------------------------------------------


def test_rules_page_matches_the_table() -> None:
    page = (DOCS / "detection-rules.md").read_text(encoding="utf-8")
    assert splice_markdown(page) == page, "docs/detection-rules.md is stale: run `make rules-doc`"
    assert "| `credential_stuffing` |" in page
