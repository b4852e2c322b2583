"""Datadog monitors for the metrics of `graffer_secevents._metrics`, as API JSON or Terraform.

`build_monitors` returns `POST /api/v1/monitor` bodies (`type: "query alert"`); `to_terraform`
renders the same monitors as `datadog_monitor` resources. The queries use only the metric names and tag keys
that `_metrics` defines (plus `service`/`env`, which the DogStatsD client or Agent adds), and
`.as_count()` on every count: DogStatsD counts are stored as rates, and `.as_count()` with `sum(window)`
makes Datadog sum each query over the whole window *before* the arithmetic ("as_count() in Monitor
Evaluations"), so a ratio is total failures / total attempts, not an average of per-interval ratios.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from graffer_secevents._errors import ConfigurationError
from graffer_secevents._metrics import (
    DROPPED_METRIC,
    LOGIN_ATTEMPTS_METRIC,
    OUTCOME_FAILURE,
    TAG_OUTCOME,
    TAG_USR_EXISTS,
    sanitize_tag_value,
)

from .terraform import Block, Resource, resource_label, to_hcl, to_terraform_json

__all__ = ["build_monitors", "monitor_metric_names", "monitor_tag_keys", "to_terraform"]

_WINDOW = re.compile(r"last_([1-9][0-9]*)([mhdw])")
_MAX_WINDOW_MINUTES = {"m": 1, "h": 60, "d": 1440, "w": 10080}
_NOTIFY_HANDLE = re.compile(r"@?[A-Za-z0-9_.+@/-]+")
_CREATED_BY_TAG = "created_by:graffer_secevents"
_VALUE = "{{value}}"  # Datadog message template variables
_THRESHOLD = "{{threshold}}"


def build_monitors(
    service: str,
    *,
    env: str | None = None,
    failure_ratio: float = 0.2,
    min_attempts: int = 20,
    window: str = "last_15m",
    spike_count: int = 100,
    unknown_user_count: int = 50,
    dropped_count: int = 1,
    notify: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Four Datadog metric monitors for one service's logins, as `POST /api/v1/monitor` bodies.

    1. **Failed-login ratio** with a minimum-volume guard, in one query (as in Datadog's guide "Add a
       Minimum Request Threshold for Error Rate Alerts")::

           sum(last_15m):( sum:secevents.login.attempts{service:S,outcome:failure}.as_count()
                         / sum:secevents.login.attempts{service:S}.as_count() )
                         * is_greater(sum:secevents.login.attempts{service:S}.as_count(), 19.5) > 0.2

       `is_greater(x, n)` is 1 when `x > n` and 0 otherwise: below `min_attempts` attempts in the
       window the value is 0 and cannot cross the threshold; from there on it is exactly failures / attempts.
       The guard compares with `min_attempts - 0.5` so the float that a stored rate turns back into cannot
       flip "exactly `min_attempts`". Being one query, unlike a composite of two monitors, it needs no
       monitor ids, so the bodies can be POSTed in any order. (A damped ratio `failures / (attempts + N)`
       is no guard: it biases every evaluation and still fires on a handful of failures.)
    2. **Failure spike**: more than `spike_count` failed logins in the window, whatever the ratio.
    3. **Unknown accounts**: more than `unknown_user_count` failures with `usr_exists:false`:
       credential stuffing or account enumeration, as opposed to real users mistyping passwords.
    4. **Dropped events**: at least `dropped_count` events the library could not write (gaps in the trail).

    Args:
        service: the `service` tag (`DD_SERVICE`) the metrics carry; sanitised like a tag value.
        env: the `env` tag to scope to; `None` watches every env together.
        failure_ratio: critical ratio, strictly between 0 and 1 (warning at half of it).
        min_attempts: attempts needed in the window before the ratio can alert (>= 1).
        window: Datadog time window, `last_<n>m|h|d|w` (at most one week).
        spike_count, unknown_user_count: critical counts (`>`).
        dropped_count: critical count (`>=`).
        notify: handles appended to every message, e.g. `"@slack-security"`, `"@pagerduty-auth"`.

    Raises:
        ConfigurationError: an empty service, a bad window, or a threshold out of range.

    Example:
        >>> [m["name"] for m in build_monitors("auth-api", env="prod")][0]
        '[secevents] auth-api (prod): failed-login ratio above 20%'
    """
    svc = _tag_value("service", service)
    env_value = None if env is None else _tag_value("env", env)
    _check_window(window)
    if not (isinstance(failure_ratio, int | float) and 0 < failure_ratio < 1):
        raise ConfigurationError(
            f"failure_ratio: expected a number strictly between 0 and 1, got {failure_ratio!r}"
        )
    for name, value in (
        ("min_attempts", min_attempts),
        ("spike_count", spike_count),
        ("unknown_user_count", unknown_user_count),
        ("dropped_count", dropped_count),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigurationError(f"{name}: expected a whole number >= 1, got {value!r}")
    handles = _handles(notify)

    scope = [f"service:{svc}"] + ([f"env:{env_value}"] if env_value else [])
    label = f"{svc} ({env_value})" if env_value else svc
    failure = f"{TAG_OUTCOME}:{OUTCOME_FAILURE}"
    attempts = _count(LOGIN_ATTEMPTS_METRIC, scope)
    failures = _count(LOGIN_ATTEMPTS_METRIC, [*scope, failure])
    unknown = _count(LOGIN_ATTEMPTS_METRIC, [*scope, failure, f"{TAG_USR_EXISTS}:false"])
    dropped = _count(DROPPED_METRIC, scope)
    logs = " ".join(scope) + " @evt.name:authentication @evt.outcome:failure"
    see_logs = f"Logs: `{logs}`, by `@network.client.ip` and `@usr.id`."

    def monitor(
        *, kind: str, title: str, query: str, thresholds: dict[str, float], priority: int, text: str
    ) -> dict[str, Any]:
        message = "\n\n".join(
            [
                f"{{{{#is_alert}}}}{text}{{{{/is_alert}}}}",
                f"{{{{#is_recovery}}}}Back to normal: {title}.{{{{/is_recovery}}}}",
                *([" ".join(handles)] if handles else []),
            ]
        )
        return {
            "name": f"[secevents] {label}: {title}",
            "type": "query alert",
            "query": query,
            "message": message,
            "tags": [*scope, _CREATED_BY_TAG, f"secevents_monitor:{kind}"],
            "priority": priority,
            "options": {
                "thresholds": thresholds,
                "notify_no_data": False,  # no logins at night is not an incident
                "require_full_window": False,  # Datadog's advice for sparse metrics such as these counts
                "include_tags": True,
                "notify_audit": False,
            },
        }

    percent = _number(round(failure_ratio * 100, 4))
    return [
        monitor(
            kind="login_failure_ratio",
            title=f"failed-login ratio above {percent}%",
            query=f"sum({window}):( {failures} / {attempts} ) * is_greater({attempts}, "
            f"{_number(min_attempts - 0.5)}) > {_number(failure_ratio)}",
            thresholds={"critical": failure_ratio, "warning": round(failure_ratio / 2, 6)},
            priority=2,
            text=f"{_VALUE} of the login attempts to {label} failed over {window} (threshold {_THRESHOLD}, "
            f"at least {min_attempts} attempts): password guessing or a broken login flow. {see_logs}",
        ),
        monitor(
            kind="login_failure_spike",
            title=f"more than {spike_count} failed logins",
            query=f"sum({window}):{failures} > {spike_count}",
            thresholds={
                "critical": spike_count,
                **({"warning": spike_count // 2} if spike_count > 1 else {}),
            },
            priority=2,
            text=f"{_VALUE} failed logins to {label} over {window} (threshold {_THRESHOLD}): brute force, "
            f"credential stuffing, or an identity backend outage. {see_logs}",
        ),
        monitor(
            kind="login_failure_unknown_user",
            title=f"more than {unknown_user_count} failed logins to unknown accounts",
            query=f"sum({window}):{unknown} > {unknown_user_count}",
            thresholds={"critical": unknown_user_count},
            priority=3,
            text=f"{_VALUE} failed logins to {label} named accounts that do not exist, over {window} "
            f"(threshold {_THRESHOLD}): credential stuffing with a leaked list or account enumeration, "
            f"rather than users mistyping a password. {see_logs} Add `@usr.exists:false`.",
        ),
        monitor(
            kind="events_dropped",
            title="security events dropped",
            query=f"sum({window}):{dropped} >= {dropped_count}",
            thresholds={"critical": dropped_count},
            priority=3,
            text=f"{_VALUE} security events of {label} could not be written over {window}: the audit trail "
            "has gaps. Check the output stream (disk full, closed pipe) and the service's error logs.",
        ),
    ]


def to_terraform(monitors: list[dict[str, Any]], *, json_syntax: bool = False) -> str:
    """Render monitors from `build_monitors` as Terraform `datadog_monitor` resources.

    Resource labels come from the monitor names; `graffer_secevents._tools.terraform` writes and escapes
    them (including `${` and `%{`, which Terraform would otherwise interpolate). `options.thresholds`
    becomes the `monitor_thresholds` block and the other options become top-level arguments, as the
    Datadog provider spells them.

    Args:
        monitors: monitor bodies as `build_monitors` returns them.
        json_syntax: write Terraform JSON (`.tf.json`) instead of HCL.

    Raises:
        ConfigurationError: a monitor without `name`, `type`, `query` or `message`.

    Example:
        >>> to_terraform(build_monitors("auth-api")).splitlines()[0]
        'resource "datadog_monitor" "secevents_auth_api_failed_login_ratio_above_20" {'
    """
    resources: list[Resource] = []
    used: set[str] = set()
    for monitor in monitors:
        for name in ("name", "type", "query", "message"):
            if not isinstance(monitor.get(name), str):
                raise ConfigurationError(f"monitor {monitor.get('name')!r}: missing string field {name!r}")
        body: dict[str, Any] = {name: monitor[name] for name in ("name", "type", "query", "message")}
        body["priority"] = monitor.get("priority")
        body["tags"] = list(monitor["tags"]) if monitor.get("tags") else None
        options: Mapping[str, Any] = monitor.get("options") or {}
        body.update((key, value) for key, value in options.items() if key != "thresholds")
        thresholds: Mapping[str, Any] = options.get("thresholds") or {}
        if thresholds:
            body["monitor_thresholds"] = Block(dict(thresholds))
        label = resource_label(monitor["name"], used, fallback="monitor")
        resources.append(Resource("datadog_monitor", label, body))
    return to_terraform_json(resources) if json_syntax else to_hcl(resources)


_QUERY_METRIC = re.compile(r"\b(?:sum|avg|min|max|count):([A-Za-z][A-Za-z0-9_.]*)\{([^}]*)\}")


def monitor_metric_names(monitors: Iterable[Mapping[str, Any]]) -> set[str]:
    """The metric names the monitors' queries read.

    Example:
        >>> sorted(monitor_metric_names(build_monitors("auth-api")))
        ['secevents.dropped', 'secevents.login.attempts']
    """
    return {match.group(1) for monitor in monitors for match in _QUERY_METRIC.finditer(str(monitor["query"]))}


def monitor_tag_keys(monitors: Iterable[Mapping[str, Any]]) -> set[str]:
    """The tag keys the monitors' queries filter on (the part of each `key:value` before the colon).

    Example:
        >>> sorted(monitor_tag_keys(build_monitors("auth-api", env="prod")))
        ['env', 'outcome', 'service', 'usr_exists']
    """
    keys: set[str] = set()
    for monitor in monitors:
        for match in _QUERY_METRIC.finditer(str(monitor["query"])):
            keys.update(tag.partition(":")[0].strip() for tag in match.group(2).split(",") if tag.strip())
    return keys


def _tag_value(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name}: expected a non-empty string, got {value!r}")
    return sanitize_tag_value(value.strip(), name)


def _check_window(window: object) -> None:
    match = _WINDOW.fullmatch(window) if isinstance(window, str) else None
    if match is None or int(match.group(1)) * _MAX_WINDOW_MINUTES[match.group(2)] > 10080:
        raise ConfigurationError(
            f"window: expected last_<n>m, last_<n>h, last_<n>d or last_<n>w (at most a week), got {window!r}"
        )


def _handles(notify: Sequence[str]) -> list[str]:
    if isinstance(notify, str):
        notify = [notify]
    handles: list[str] = []
    for handle in notify:
        if not isinstance(handle, str) or not _NOTIFY_HANDLE.fullmatch(handle):
            raise ConfigurationError(f"notify: expected handles such as '@slack-security', got {handle!r}")
        handles.append(handle if handle.startswith("@") else f"@{handle}")
    return handles


def _count(metric: str, tags: Sequence[str]) -> str:
    return f"sum:{metric}{{{','.join(tags)}}}.as_count()"


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)
