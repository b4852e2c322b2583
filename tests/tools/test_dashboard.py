"""The review dashboard and the log-based metrics: the widgets asked for, bounded tags, Terraform that parses."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from test_terraform import parse_hcl, untemplate

import graffer_secevents as api
from graffer_secevents._errors import ConfigurationError
from graffer_secevents._metrics import TAG_KEYS, UNIFIED_TAG_KEYS
from graffer_secevents._tools import dashboard, logs_metrics
from graffer_secevents._tools.detect.query import attribute_getter, compile_query
from graffer_secevents.testing import Capture

# datadog_logs_metric's documented arguments (provider docs/resources/logs_metric.md).
LOGS_METRIC_FIELDS = {"name", "compute", "filter", "group_by"}
LOGS_METRIC_COMPUTE = {"aggregation_type", "path", "include_percentiles"}
LOGS_METRIC_GROUP_BY = {"path", "tag_name"}
# Attributes whose values are per user, per client or per request: never a metric tag (docs/metrics.md).
UNBOUNDED = {"@usr.id", "@usr.login", "@usr.email", "@usr.name", "@network.client.ip", "@http.request_id"}


def _widgets(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["definition"]["title"]: w["definition"] for w in board["widgets"]}


def test_dashboard_has_the_widgets_of_the_periodic_review() -> None:
    widgets = _widgets(dashboard.build_dashboard())
    assert set(widgets) >= {
        "Logins by outcome",
        "Failed logins by reason",
        "Top failing IPs",
        "Top failing accounts",
        "Denied requests by route",
        "Administrative actions",
        "Security signals of the secevents rules, by rule",
    }
    facets = {
        title: [
            g["facet"] for r in d.get("requests", []) for q in r["queries"] for g in q.get("group_by", [])
        ]
        for title, d in widgets.items()
    }
    assert facets["Logins by outcome"] == ["@evt.outcome"]
    assert facets["Failed logins by reason"] == ["@evt.reason"]
    assert facets["Top failing IPs"] == ["@network.client.ip"]
    assert facets["Top failing accounts"] == ["@usr.id"]
    assert "@evt.type:authz_admin" in widgets["Administrative actions"]["query"]
    signals = widgets["Security signals of the secevents rules, by rule"]["requests"][0]["queries"][0]
    assert signals["data_source"] == "security_signals"
    assert "secevents_rule:*" in signals["search"]["query"]


def test_every_log_query_is_scoped_by_the_template_variables() -> None:
    board = dashboard.build_dashboard(service="auth-api", env="prod")
    assert [(v["name"], v["default"]) for v in board["template_variables"]] == [
        ("service", "auth-api"),
        ("env", "prod"),
    ]
    assert board["layout_type"] == "ordered"
    for definition in _widgets(board).values():
        for request in definition.get("requests", []):
            for query in request["queries"]:
                if query["data_source"] == "logs":
                    assert query["search"]["query"].startswith("$service $env ")
                if query["data_source"] == "metrics":
                    assert "{$service,$env}" in query["query"]
                    assert "secevents.logs.auth_api.login.failures.by_reason" in query["query"]
    with pytest.raises(ConfigurationError):
        dashboard.build_dashboard(service="two words")


def test_dashboard_terraform_carries_the_same_json_in_hcl_and_terraform_json() -> None:
    board = dashboard.build_dashboard(env="prod")
    parsed = parse_hcl(dashboard.to_terraform(board))
    (body,) = parsed["datadog_dashboard_json"].values()
    assert set(body) == {"dashboard"}
    assert json.loads(body["dashboard"]) == board
    document = json.loads(dashboard.to_terraform(board, json_syntax=True))
    (json_body,) = document["resource"]["datadog_dashboard_json"].values()
    assert json.loads(untemplate(json_body["dashboard"])) == board


def test_logs_metrics_tag_only_bounded_attributes() -> None:
    metrics = logs_metrics.build_logs_metrics()
    assert logs_metrics.logs_metric_tag_keys(metrics) <= TAG_KEYS | UNIFIED_TAG_KEYS | {"route"}
    for metric in metrics:
        data = metric["data"]
        assert data["type"] == "logs_metrics"
        assert data["id"].startswith("secevents.logs.")
        attributes = data["attributes"]
        assert attributes["compute"] == {"aggregation_type": "count"}
        assert not {g["path"] for g in attributes["group_by"]} & UNBOUNDED


def test_logs_metrics_terraform_has_the_providers_fields() -> None:
    metrics = logs_metrics.build_logs_metrics(service="auth-api", env="prod")
    parsed = parse_hcl(logs_metrics.to_terraform(metrics))["datadog_logs_metric"]
    assert len(parsed) == len(metrics)
    for metric in metrics:
        data = metric["data"]
        body = parsed[data["id"].replace(".", "_")]
        assert set(body) == LOGS_METRIC_FIELDS
        assert body["name"] == data["id"]
        (compute,) = body["compute"]
        assert set(compute) <= LOGS_METRIC_COMPUTE
        assert body["filter"] == [data["attributes"]["filter"]]
        assert body["filter"][0]["query"].startswith("service:auth-api env:prod ")
        assert body["group_by"] == data["attributes"]["group_by"]
        assert all(set(group) == LOGS_METRIC_GROUP_BY for group in body["group_by"])
    document = json.loads(logs_metrics.to_terraform(metrics, json_syntax=True))
    assert set(document["resource"]["datadog_logs_metric"]) == set(parsed)


def _computed(metric: dict[str, Any], records: list[dict[str, Any]]) -> Counter[tuple[Any, ...]]:
    """What Datadog computes for a count metric: matching log lines per combination of group-by values."""
    attributes = metric["data"]["attributes"]
    matches = compile_query(attributes["filter"]["query"])
    getters = [attribute_getter(g["path"].lstrip("@")) for g in attributes["group_by"]]
    return Counter(tuple(get(r) for get in getters) for r in records if matches(r))


def test_failed_logins_by_reason_come_from_the_logs_alone(security_events: Capture) -> None:
    """Real records through the metric's own filter and group-by: the counts a DogStatsD-less service gets."""
    api.configure(service="auth-api", env="prod", metrics="none")
    api.log_login(None, "failure", "203.0.113.7", login="ghost", exists=False, reason="unknown_user")
    api.log_login(7, "failure", "203.0.113.7", login="ada", exists=True, reason="invalid_credentials")
    api.log_login(7, "failure", "198.51.100.1", login="ada", exists=True, reason="invalid_credentials")
    api.log_login(7, "success", "198.51.100.1")
    api.log_login(None, "failure", "203.0.113.7", login="eve", exists=False, reason="user eve@x.com, bad")
    api.log_access_denied(7, "/admin", "198.51.100.1")
    by_id = {m["data"]["id"]: m for m in logs_metrics.build_logs_metrics(service="auth-api")}
    records = security_events.records
    by_reason = _computed(by_id["secevents.logs.auth_api.login.failures.by_reason"], records)
    assert by_reason == {
        ("auth-api", "prod", "unknown_user", False): 1,
        ("auth-api", "prod", "invalid_credentials", True): 2,
    }
    failures = _computed(by_id["secevents.logs.auth_api.login.failures"], records)
    assert failures == {("auth-api", "prod", False): 2, ("auth-api", "prod", True): 2}
    attempts = _computed(by_id["secevents.logs.auth_api.login.attempts"], records)
    assert sum(attempts.values()) == 5
    assert sum(n for key, n in attempts.items() if key[2] == "success") == 1
    events = _computed(by_id["secevents.logs.auth_api.events"], records)
    assert events[("auth-api", "prod", "authz_fail", "failure")] == 1
    assert sum(events.values()) == len(records) == 6
