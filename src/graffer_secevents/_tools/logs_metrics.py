"""Log-based metrics (`datadog_logs_metric`): login and denial counts Datadog computes from the logs alone.

A service that sends no DogStatsD (no Agent port, or `metrics="none"`) still gets failed-login rates:
Datadog counts the log lines and tags the counts from their attributes. The tag keys are those of the
DogStatsD metrics in `graffer_secevents._metrics` (`outcome`, `reason`, `usr_exists`, `evt_type`),
so a query written for `secevents.login.attempts` reads `secevents.logs.login.attempts` unchanged. Tags
come only from bounded attributes: never a user id, login, IP or request id (they would make one time series
per attacker), and `reason` only on failures whose reason is one of `LOGIN_FAILURE_REASONS`.

`build_logs_metrics` returns `POST /api/v2/logs/config/metrics` bodies; `to_terraform` the resources.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from graffer_secevents._catalog import CATALOG
from graffer_secevents._metrics import (
    LOGIN_FAILURE_REASONS,
    OTHER,
    TAG_EVT_TYPE,
    TAG_OUTCOME,
    TAG_REASON,
    TAG_USR_EXISTS,
)

from .rules import scope_terms
from .terraform import Block, Resource, to_hcl, to_terraform_json

__all__ = [
    "LOGS_METRIC_PREFIX",
    "build_logs_metrics",
    "logs_metric_name",
    "logs_metric_tag_keys",
    "metric_resources",
    "to_terraform",
]

LOGS_METRIC_PREFIX: Final = "secevents.logs"
_UNIFIED: Final = (("service", "service"), ("env", "env"))
_NAME_PART: Final = re.compile(r"[^a-z0-9_]+")
_LOGIN = f"@evt.name:{CATALOG['authn_login_fail'].name}"
_FAILURE = f"@evt.outcome:{CATALOG['authn_login_fail'].fixed_outcome}"

_KNOWN_REASONS = "(" + " OR ".join(f"@evt.reason:{r}" for r in sorted(LOGIN_FAILURE_REASONS - {OTHER})) + ")"
"""A logs metric cannot map a free-text reason onto `LOGIN_FAILURE_REASONS` as the DogStatsD path does, so
only failures with one of the known reasons are counted by reason; `login.failures` counts them all."""

_METRICS: Final = (
    ("login.attempts", _LOGIN, (("@evt.outcome", TAG_OUTCOME), ("@usr.exists", TAG_USR_EXISTS))),
    ("login.failures", f"{_LOGIN} {_FAILURE}", (("@usr.exists", TAG_USR_EXISTS),)),
    (
        "login.failures.by_reason",
        f"{_LOGIN} {_FAILURE} {_KNOWN_REASONS}",
        (("@evt.reason", TAG_REASON), ("@usr.exists", TAG_USR_EXISTS)),
    ),
    ("authz.denied", f"@evt.type:{CATALOG['authz_fail'].type}", (("@http.route", "route"),)),
    (
        "events",
        "@logger.name:graffer_secevents",
        (("@evt.type", TAG_EVT_TYPE), ("@evt.outcome", TAG_OUTCOME)),
    ),
)
"""(name suffix, filter, (attribute path, tag) ...) per metric; every metric also tags service and env."""


def build_logs_metrics(*, service: str | None = None, env: str | None = None) -> list[dict[str, Any]]:
    """Log-based count metrics as `POST /api/v2/logs/config/metrics` bodies.

    Metric names are org-wide: without `service` the metrics cover every service (tagged by `service`
    and `env`); with it, the filter is scoped and the service joins the name
    (`secevents.logs.auth_api.login.attempts`), so two teams' metrics cannot collide.

    Args:
        service: scope the filters to `service:<service>`.
        env: scope the filters to `env:<env>`.

    Raises:
        ConfigurationError: a service or env that is not a plain tag value.

    Example:
        >>> [m["data"]["id"] for m in build_logs_metrics()][:2]
        ['secevents.logs.login.attempts', 'secevents.logs.login.failures']
    """
    scope = scope_terms(service=service, env=env)
    return [
        {
            "data": {
                "id": logs_metric_name(suffix, service=service),
                "type": "logs_metrics",
                "attributes": {
                    "compute": {"aggregation_type": "count"},
                    "filter": {"query": " ".join([*scope, query])},
                    "group_by": [{"path": path, "tag_name": tag} for path, tag in (*_UNIFIED, *tags)],
                },
            }
        }
        for suffix, query, tags in _METRICS
    ]


def logs_metric_name(suffix: str, *, service: str | None = None) -> str:
    """The name of one log-based metric (`login.failures`), with the service in it when scoped.

    Example:
        >>> logs_metric_name("login.failures", service="Auth-API")
        'secevents.logs.auth_api.login.failures'
    """
    if service is None:
        return f"{LOGS_METRIC_PREFIX}.{suffix}"
    return f"{LOGS_METRIC_PREFIX}.{_NAME_PART.sub('_', service.lower()).strip('_')}.{suffix}"


def logs_metric_tag_keys(metrics: Iterable[Mapping[str, Any]]) -> set[str]:
    """The tag keys the metrics write.

    Example:
        >>> sorted(logs_metric_tag_keys(build_logs_metrics()))
        ['env', 'evt_type', 'outcome', 'reason', 'route', 'service', 'usr_exists']
    """
    return {g["tag_name"] for m in metrics for g in m["data"]["attributes"]["group_by"]}


def metric_resources(metrics: Iterable[Mapping[str, Any]]) -> list[Resource]:
    """Metrics from `build_logs_metrics` as `datadog_logs_metric` resources (labels from their names)."""
    resources: list[Resource] = []
    for metric in metrics:
        data = metric["data"]
        attributes = data["attributes"]
        body = {
            "name": data["id"],
            "compute": Block(dict(attributes["compute"])),
            "filter": Block(dict(attributes["filter"])),
            "group_by": [Block(dict(group)) for group in attributes["group_by"]],
        }
        resources.append(Resource("datadog_logs_metric", data["id"].replace(".", "_"), body))
    return resources


def to_terraform(metrics: Iterable[Mapping[str, Any]], *, json_syntax: bool = False) -> str:
    """Metrics from `build_logs_metrics` as `datadog_logs_metric` resources (HCL, or Terraform JSON).

    Example:
        >>> to_terraform(build_logs_metrics()).splitlines()[0]
        'resource "datadog_logs_metric" "secevents_logs_login_attempts" {'
    """
    resources = metric_resources(metrics)
    return to_terraform_json(resources) if json_syntax else to_hcl(resources)
