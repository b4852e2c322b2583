"""A Datadog dashboard for the periodic security review (`datadog_dashboard_json`).

Widgets: logins by outcome and by failure reason, top failing IPs and accounts, denied requests,
administrative actions, and the signals of the rules in `graffer_secevents._tools.rules`. Every log query
reads the catalog's attributes and is scoped by the `$service`/`$env` template variables.
`build_dashboard` returns the `POST /api/v1/dashboard` body; `to_terraform` wraps it in a
`datadog_dashboard_json` resource (its `dashboard` argument is the JSON text).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from graffer_secevents._catalog import CATALOG

from .logs_metrics import logs_metric_name
from .rules import CLIENT_IP, RULE_TAG, SOURCE_TAG, USR_ID, admin_query, scope_terms
from .terraform import Resource, to_hcl, to_terraform_json

__all__ = ["build_dashboard", "dashboard_resource", "to_terraform"]

_SCOPE = "$service $env "
_LOGIN = f"@evt.name:{CATALOG['authn_login_fail'].name}"
_FAILED = f"{_LOGIN} @evt.outcome:{CATALOG['authn_login_fail'].fixed_outcome}"
_DENIED = f"@evt.type:{CATALOG['authz_fail'].type}"


def _logs_query(search: str, group_by: str | None) -> dict[str, Any]:
    query: dict[str, Any] = {
        "data_source": "logs",
        "name": "q",
        "indexes": ["*"],
        "compute": {"aggregation": "count"},
        "search": {"query": _SCOPE + search},
    }
    if group_by:
        query["group_by"] = [
            {"facet": group_by, "limit": 10, "sort": {"aggregation": "count", "order": "desc"}}
        ]
    return query


def _timeseries(title: str, query: dict[str, Any]) -> dict[str, Any]:
    return {
        "definition": {
            "type": "timeseries",
            "title": title,
            "show_legend": True,
            "requests": [
                {
                    "response_format": "timeseries",
                    "display_type": "bars",
                    "queries": [query],
                    "formulas": [{"formula": "q"}],
                }
            ],
        }
    }


def _toplist(title: str, search: str, group_by: str) -> dict[str, Any]:
    return {
        "definition": {
            "type": "toplist",
            "title": title,
            "requests": [
                {
                    "response_format": "scalar",
                    "queries": [_logs_query(search, group_by)],
                    "formulas": [{"formula": "q", "limit": {"count": 10, "order": "desc"}}],
                }
            ],
        }
    }


def build_dashboard(*, service: str | None = None, env: str | None = None) -> dict[str, Any]:
    """The review dashboard as a `POST /api/v1/dashboard` body.

    Args:
        service: the `$service` template variable's default (`*` when `None`).
        env: the `$env` template variable's default (`*` when `None`).

    Raises:
        ConfigurationError: a service or env that is not a plain tag value.

    Example:
        >>> build_dashboard(service="auth-api")["template_variables"][0]["default"]
        'auth-api'
    """
    scope_terms(service=service, env=env)  # validates both
    failures_metric = logs_metric_name("login.failures.by_reason", service=service)
    widgets = [
        _timeseries("Logins by outcome", _logs_query(_LOGIN, "@evt.outcome")),
        _timeseries("Failed logins by reason", _logs_query(_FAILED, "@evt.reason")),
        _toplist("Top failing IPs", _FAILED, CLIENT_IP),
        _toplist("Top failing accounts", _FAILED, USR_ID),
        _timeseries("Denied requests by route", _logs_query(_DENIED, "@http.route")),
        _toplist("Top denied IPs", _DENIED, CLIENT_IP),
        {
            "definition": {
                "type": "log_stream",
                "title": "Administrative actions",
                "indexes": [],
                "query": _SCOPE + admin_query(),
                "columns": ["@usr.id", "@evt.type", "@evt.action", "@target.usr.id", CLIENT_IP],
                "sort": {"column": "time", "order": "desc"},
                "message_display": "inline",
                "show_date_column": True,
                "show_message_column": True,
            }
        },
        {
            "definition": {
                "type": "timeseries",
                "title": "Security signals of the secevents rules, by rule",
                "show_legend": True,
                "requests": [
                    {
                        "response_format": "timeseries",
                        "display_type": "bars",
                        "queries": [
                            {
                                "data_source": "security_signals",
                                "name": "q",
                                "indexes": ["*"],
                                "compute": {"aggregation": "count"},
                                "group_by": [
                                    {
                                        "facet": "@workflow.rule.name",
                                        "limit": 20,
                                        "sort": {"aggregation": "count", "order": "desc"},
                                    }
                                ],
                                "search": {"query": f"{SOURCE_TAG} {RULE_TAG}:*"},
                            }
                        ],
                        "formulas": [{"formula": "q"}],
                    }
                ],
            }
        },
        {
            "definition": {
                "type": "timeseries",
                "title": f"Failed logins from the log-based metric {failures_metric}",
                "show_legend": True,
                "requests": [
                    {
                        "response_format": "timeseries",
                        "display_type": "line",
                        "queries": [
                            {
                                "data_source": "metrics",
                                "name": "q",
                                "query": f"sum:{failures_metric}{{$service,$env}} by {{reason}}.as_count()",
                            }
                        ],
                        "formulas": [{"formula": "q"}],
                    }
                ],
            }
        },
    ]
    return {
        "title": "[secevents] Security review" + (f": {service}" if service else ""),
        "description": "Logins, failures, denials, admin actions and signals from graffer_secevents "
        "(generated by `secevents rules --what dashboard`).",
        "layout_type": "ordered",
        "template_variables": [
            {"name": "service", "prefix": "service", "available_values": [], "default": service or "*"},
            {"name": "env", "prefix": "env", "available_values": [], "default": env or "*"},
        ],
        "widgets": widgets,
    }


def dashboard_resource(dashboard: Mapping[str, Any]) -> Resource:
    """The dashboard as a `datadog_dashboard_json` resource; its `dashboard` argument is the JSON text."""
    text = json.dumps(dashboard, indent=2, ensure_ascii=False)
    return Resource("datadog_dashboard_json", "secevents_security_review", {"dashboard": text})


def to_terraform(dashboard: Mapping[str, Any], *, json_syntax: bool = False) -> str:
    """The dashboard as a `datadog_dashboard_json` resource (HCL, or Terraform JSON).

    Example:
        >>> to_terraform(build_dashboard()).splitlines()[0]
        'resource "datadog_dashboard_json" "secevents_security_review" {'
    """
    resources = [dashboard_resource(dashboard)]
    return to_terraform_json(resources) if json_syntax else to_hcl(resources)
