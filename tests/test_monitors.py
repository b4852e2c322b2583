"""Datadog monitors: API bodies Datadog accepts, queries on our own metrics only, Terraform that parses."""

from __future__ import annotations

import json
import re
from typing import Any

import hcl2
import pytest

from graffer_secevents._errors import ConfigurationError
from graffer_secevents._metrics import (
    DROPPED_METRIC,
    LOGIN_ATTEMPTS_METRIC,
    METRIC_NAMES,
    TAG_KEYS,
    UNIFIED_TAG_KEYS,
)
from graffer_secevents._tools.monitors import (
    build_monitors,
    monitor_metric_names,
    monitor_tag_keys,
    to_terraform,
)

_COMPARATOR = re.compile(r"(>=|<=|>|<)\s*(-?[0-9]+(?:\.[0-9]+)?)\s*$")
_METRIC_REF = re.compile(r"\bsum:([a-z][a-z0-9_.]*)\{[^}]*\}(\.as_count\(\))?")
_TAG = re.compile(r"[a-z][a-z0-9_.:/-]*")


def comparator(query: str) -> tuple[str, float]:
    match = _COMPARATOR.search(query)
    assert match, f"no trailing comparator: {query}"
    return match.group(1), float(match.group(2))


def test_monitors_have_the_fields_the_monitor_api_requires() -> None:
    monitors = build_monitors("auth-api", env="prod", notify=["@slack-security"])
    assert len(monitors) == 4
    json.loads(json.dumps(monitors))  # plain JSON
    assert len({m["name"] for m in monitors}) == 4
    for monitor in monitors:
        assert monitor["type"] == "query alert"
        assert isinstance(monitor["name"], str)
        assert monitor["name"]
        assert isinstance(monitor["message"], str)
        assert "@slack-security" in monitor["message"]
        assert monitor["priority"] in {1, 2, 3, 4, 5}
        assert all(_TAG.fullmatch(tag) for tag in monitor["tags"])
        options = monitor["options"]
        assert options["notify_no_data"] is False
        assert options["require_full_window"] is False
        op, threshold = comparator(monitor["query"])
        thresholds = options["thresholds"]
        assert thresholds["critical"] == pytest.approx(threshold)
        if "warning" in thresholds:  # Datadog rejects a warning beyond the critical threshold
            assert op in {">", ">="}
            assert thresholds["warning"] < thresholds["critical"]


def test_queries_read_only_our_metrics_and_tags_with_as_count() -> None:
    monitors = build_monitors("auth-api", env="prod")
    assert monitor_metric_names(monitors) == {LOGIN_ATTEMPTS_METRIC, DROPPED_METRIC}
    assert monitor_metric_names(monitors) <= METRIC_NAMES
    assert monitor_tag_keys(monitors) <= TAG_KEYS | UNIFIED_TAG_KEYS
    for monitor in monitors:
        query = monitor["query"]
        assert query.startswith("sum(last_15m):")
        refs = _METRIC_REF.findall(query)
        assert refs
        assert all(as_count for _name, as_count in refs), query  # counts are stored as rates: .as_count()
        assert "{service:auth-api,env:prod" in query


def test_failure_ratio_query_has_a_minimum_volume_guard() -> None:
    ratio = build_monitors("auth-api", failure_ratio=0.25, min_attempts=50, window="last_1h")[0]
    attempts = "sum:secevents.login.attempts{service:auth-api}.as_count()"
    failures = "sum:secevents.login.attempts{service:auth-api,outcome:failure}.as_count()"
    assert ratio["query"] == f"sum(last_1h):( {failures} / {attempts} ) * is_greater({attempts}, 49.5) > 0.25"
    assert ratio["options"]["thresholds"] == {"critical": 0.25, "warning": 0.125}


def test_spike_unknown_user_and_dropped_queries() -> None:
    _ratio, spike, unknown, dropped = build_monitors(
        "auth-api", spike_count=300, unknown_user_count=40, dropped_count=2, window="last_5m"
    )
    scope = "service:auth-api"
    assert spike["query"] == (
        f"sum(last_5m):sum:secevents.login.attempts{{{scope},outcome:failure}}.as_count() > 300"
    )
    unknown_scope = f"{scope},outcome:failure,usr_exists:false"
    assert unknown["query"] == f"sum(last_5m):sum:secevents.login.attempts{{{unknown_scope}}}.as_count() > 40"
    assert dropped["query"] == f"sum(last_5m):sum:secevents.dropped{{{scope}}}.as_count() >= 2"


def test_service_and_env_are_sanitised_like_the_tags_they_match() -> None:
    monitors = build_monitors("Auth API", env="Prod EU")
    assert all("{service:auth_api,env:prod_eu" in m["query"] for m in monitors)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"service": ""},
        {"service": "  "},
        {"window": "15m"},
        {"window": "last_0m"},
        {"window": "last_2w"},
        {"failure_ratio": 0},
        {"failure_ratio": 1},
        {"failure_ratio": 1.5},
        {"min_attempts": 0},
        {"spike_count": -1},
        {"dropped_count": True},
        {"notify": ["@slack sec"]},
    ],
)
def test_invalid_arguments_are_configuration_errors(kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"service": "auth-api", **kwargs}
    with pytest.raises(ConfigurationError):
        build_monitors(**arguments)


def test_notify_handles_get_an_at_sign() -> None:
    monitor = build_monitors("auth-api", notify=["slack-sec", "@pagerduty-auth"])[0]
    assert monitor["message"].endswith("@slack-sec @pagerduty-auth")


# ----------------------------------------------------------------------------------------------------------
# Terraform
# ----------------------------------------------------------------------------------------------------------

_HCL_ESCAPE = re.compile(r'\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[nrt"\\])|\$\$\{|%%\{')


def hcl_string(raw: str) -> str:
    """The value of an HCL quoted string as python-hcl2 returns it (quotes and escapes kept)."""
    assert raw.startswith('"')
    assert raw.endswith('"')
    simple = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}

    def unescape(match: re.Match[str]) -> str:
        text = match.group(0)
        if text in {"$${", "%%{"}:
            return text[1:]
        code = match.group(1)
        return simple[code] if code in simple else chr(int(code[1:], 16))

    return _HCL_ESCAPE.sub(unescape, raw[1:-1])


def resources(hcl_text: str) -> dict[str, dict[str, Any]]:
    parsed = hcl2.loads(hcl_text)
    found: dict[str, dict[str, Any]] = {}
    for resource in parsed["resource"]:
        for kind, by_label in resource.items():
            assert kind == '"datadog_monitor"'
            for label, body in by_label.items():
                found[label.strip('"')] = body
    return found


def test_terraform_parses_and_round_trips_the_monitors() -> None:
    monitors = build_monitors("auth-api", env="prod", notify=["@slack-security"])
    parsed = resources(to_terraform(monitors))
    assert len(parsed) == len(monitors)
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", label) for label in parsed)
    by_name = {hcl_string(body["name"]): body for body in parsed.values()}
    for monitor in monitors:
        body = by_name[monitor["name"]]
        for field in ("type", "query", "message"):
            assert hcl_string(body[field]) == monitor[field]
        assert body["priority"] == monitor["priority"]
        assert [hcl_string(tag) for tag in body["tags"]] == monitor["tags"]
        (thresholds,) = body["monitor_thresholds"]
        for key, value in monitor["options"]["thresholds"].items():
            assert thresholds[key] == pytest.approx(value)
        for key, value in monitor["options"].items():
            if key != "thresholds":
                assert body[key] == value
    round_tripped = [{"query": hcl_string(body["query"])} for body in parsed.values()]
    assert monitor_metric_names(round_tripped) == monitor_metric_names(monitors)


def test_terraform_escapes_what_terraform_would_interpolate() -> None:
    tricky = 'a "quoted" \\ path ${var.x} %{if y} {{value}}\n\tline\x01 é ✓'
    monitor = {
        "name": "tricky ${name}",
        "type": "query alert",
        "query": "sum(last_5m):sum:secevents.dropped{service:x}.as_count() >= 1",
        "message": tricky,
        "tags": ["service:x"],
        "priority": None,
        "options": {"thresholds": {"critical": 1}, "notify_no_data": False},
    }
    parsed = resources(to_terraform([monitor, dict(monitor)]))
    assert len(parsed) == 2  # the same name twice still gets two labels
    for body in parsed.values():
        assert hcl_string(body["message"]) == tricky
        assert hcl_string(body["name"]) == "tricky ${name}"
        assert "priority" not in body


def test_terraform_rejects_a_monitor_without_a_query() -> None:
    with pytest.raises(ConfigurationError, match="query"):
        to_terraform([{"name": "x", "type": "query alert", "message": "m"}])


def test_terraform_json_has_the_same_monitors_as_the_hcl() -> None:
    monitors = build_monitors("auth-api", env="prod", notify=["@slack-security"])
    document = json.loads(to_terraform(monitors, json_syntax=True))
    bodies = document["resource"]["datadog_monitor"]
    assert set(bodies) == set(resources(to_terraform(monitors)))
    for monitor, body in zip(monitors, bodies.values(), strict=True):
        assert body["name"] == monitor["name"]
        assert body["query"] == monitor["query"]  # no ${ or %{ in these: Terraform JSON leaves them as is
        assert body["monitor_thresholds"] == monitor["options"]["thresholds"]
        assert body["notify_no_data"] is False
