"""Cloud SIEM detection rules for the catalog's events: one table, rendered as API JSON or Terraform.

`RULES` has one row per rule; `build_rules` turns the rows into `POST /api/v2/security_monitoring/rules`
bodies (Datadog's detection-rule API JSON, camelCase) and `to_terraform` renders those bodies as
`datadog_security_monitoring_rule` resources. Event types, `evt.name` and outcomes come from
`graffer_secevents._catalog.CATALOG`; the record attributes (`usr.id`, `network.client.ip` …) are the ones
docs/record.md fixes. Every threshold, window and severity is a parameter with a default: Datadog's published
thresholds where they exist (its default rules, cited in docs/detection-rules.md: credential stuffing ≥ 10
distinct failing users per IP is an attempt, ≥ 25 with a success an attack; brute force 10 failures in 15
minutes, 5 failures and a success).

Threshold rules cannot express order ("failures *then* a success"): a case such as
`failures >= 5 && successes >= 1` means both happened for the same group within the evaluation window.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, cast

from graffer_secevents._catalog import CATALOG
from graffer_secevents._errors import ConfigurationError

from .terraform import Resource, resource_label, snake_blocks, to_hcl, to_terraform_json

__all__ = [
    "PRIVILEGED",
    "RULES",
    "SEVERITIES",
    "WINDOWS",
    "Rule",
    "admin_query",
    "build_rules",
    "parse_settings",
    "render_markdown",
    "rule_id_of",
    "rule_resources",
    "scope_terms",
    "splice_markdown",
    "to_terraform",
]

SEVERITIES: Final = ("info", "low", "medium", "high", "critical")
WINDOWS: Final = (0, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
"""The values Datadog accepts for `evaluationWindow`, `keepAlive` and `maxSignalDuration` (seconds)."""
RULE_TAG: Final = "secevents_rule"
SOURCE_TAG: Final = "source:graffer_secevents"

# Record attributes (docs/record.md), as log search and group-by fields.
USR_ID: Final = "@usr.id"
USR_LOGIN: Final = "@usr.login"
USR_EXISTS: Final = "@usr.exists"
CLIENT_IP: Final = "@network.client.ip"
GEOIP: Final = "@network.client.geoip"
COUNTRY: Final = "@network.client.geoip.country.iso_code"
IMPERSONATOR_ID: Final = "@impersonator.usr.id"

_SCOPE_VALUE = re.compile(r"[A-Za-z0-9_.:/-]+")
_TACTIC_CREDENTIALS = "tactic:TA0006-credential-access"
_TACTIC_INITIAL_ACCESS = "tactic:TA0001-initial-access"
_TACTIC_DISCOVERY = "tactic:TA0007-discovery"
_TACTIC_PRIVILEGE = "tactic:TA0004-privilege-escalation"
_TACTIC_IMPACT = "tactic:TA0040-impact"
_BRUTE_FORCE = "technique:T1110-brute-force"
_VALID_ACCOUNTS = "technique:T1078-valid-accounts"


# --- queries, from the catalog ------------------------------------------------------------------------------


def _type(evt_type: str) -> str:
    return f"@evt.type:{CATALOG[evt_type].type}"


def _types(evt_types: Iterable[str]) -> str:
    terms = [_type(t) for t in evt_types]
    return terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")"


def _outcome(evt_type: str, outcome: str) -> str:
    allowed = CATALOG[evt_type].fixed_outcome
    if allowed is not None and allowed != outcome:
        raise AssertionError(f"{evt_type} is always {allowed}")  # a rule table bug, caught by the tests
    return f"@evt.outcome:{outcome}"


def _login(outcome: str) -> str:
    """Login attempts with one outcome: `evt.name` is `authentication` on every login-attempt row.

    A success written while another account impersonates this one (django-hijack's switch logs the target
    in) is not the account's own login: it carries `impersonator.usr` and is left out, so the support
    engineer's address never counts as the customer's (impossible travel, new country, new IP).
    """
    row = CATALOG["authn_login_fail" if outcome == "failure" else "authn_login_success"]
    own = f" -{IMPERSONATOR_ID}:*" if outcome == "success" else ""
    return f"@evt.name:{row.name} {_outcome(row.type, outcome)}{own}"


_ADMIN_TYPES: Final = tuple(
    row.type
    for row in CATALOG.values()
    if row.type == "authz_admin"
    or row.type.startswith("authz_role_")
    or (row.target_user and row.category == "iam")
)
"""What an administrator does: `authz_admin` itself, role management, and IAM events on another account."""


def _query(
    name: str,
    query: str,
    group_by: Iterable[str],
    *,
    aggregation: str = "count",
    distinct: Iterable[str] = (),
    metrics: Iterable[str] = (),
) -> dict[str, Any]:
    return {
        "name": name,
        "query": query,
        "aggregation": aggregation,
        "groupByFields": list(group_by),
        "distinctFields": list(distinct),
        "metrics": list(metrics),
        "hasOptionalGroupByFields": False,
    }


def _case(name: str, status: str, condition: str | None) -> dict[str, Any]:
    return {
        "name": name,
        "status": status,
        **({"condition": condition} if condition else {}),
        "notifications": [],
    }


# --- the table ----------------------------------------------------------------------------------------------

Params = Mapping[str, Any]
Parts = tuple[list[dict[str, Any]], list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the rule table."""

    id: str
    title: str
    summary: str
    """What the rule detects and how, in one or two sentences (the docs page shows it)."""
    method: str
    """`threshold`, `new_value` or `impossible_travel`."""
    defaults: Mapping[str, Any]
    """Every parameter and its default; thresholds, windows and severities."""
    build: Callable[[str, Params], Parts]
    """(scope prefix, parameters) -> (queries, cases)."""
    tags: tuple[str, ...] = ()
    event_types: tuple[str, ...] = field(default=())
    """The catalog types the rule reads (the docs page lists them)."""


def _windows(evaluation: int, keep_alive: int = 3600, max_signal: int = 86400) -> dict[str, int]:
    return {"evaluation_window": evaluation, "keep_alive": keep_alive, "max_signal_duration": max_signal}


def _credential_stuffing(scope: str, p: Params) -> Parts:
    return (
        [
            _query(
                "failed_users",
                scope + _login("failure"),
                [CLIENT_IP],
                aggregation="cardinality",
                distinct=[USR_ID],
            ),
            _query("successes", scope + _login("success"), [CLIENT_IP]),
        ],
        [
            _case(
                "successful credential stuffing",
                p["success_severity"],
                f"failed_users >= {p['success_users']} && successes >= 1",
            ),
            _case(
                "credential stuffing attempt", p["attempt_severity"], f"failed_users >= {p['attempt_users']}"
            ),
        ],
    )


def _brute_force(scope: str, p: Params) -> Parts:
    return (
        [_query("failures", scope + _login("failure"), [USR_ID])],
        [_case("brute force on one account", p["severity"], f"failures >= {p['failures']}")],
    )


def _brute_force_success(scope: str, p: Params) -> Parts:
    return (
        [
            _query("failures", scope + _login("failure"), [USR_ID]),
            _query("successes", scope + _login("success"), [USR_ID]),
        ],
        [
            _case(
                "brute force followed by a success",
                p["severity"],
                f"failures >= {p['failures']} && successes >= 1",
            )
        ],
    )


def _account_enumeration(scope: str, p: Params) -> Parts:
    return (
        [
            _query(
                "unknown_accounts",
                f"{scope}{_login('failure')} {USR_EXISTS}:false",
                [CLIENT_IP],
                aggregation="cardinality",
                distinct=[USR_ID],
            )
        ],
        [_case("account enumeration", p["severity"], f"unknown_accounts >= {p['unknown_accounts']}")],
    )


def _impossible_travel(scope: str, p: Params) -> Parts:
    return (
        [_query("logins", scope + _login("success"), [USR_ID], aggregation="geo_data", metrics=[GEOIP])],
        [_case("impossible travel", p["severity"], None)],
    )


def _new_country(scope: str, p: Params) -> Parts:
    return (
        [_query("logins", scope + _login("success"), [USR_ID], aggregation="new_value", metrics=[COUNTRY])],
        [_case("login from a new country", p["severity"], None)],
    )


def _mfa_fatigue(scope: str, p: Params) -> Parts:
    mfa = _type("authn_mfa_challenge")
    return (
        [
            _query("failed", f"{scope}{mfa} {_outcome('authn_mfa_challenge', 'failure')}", [USR_ID]),
            _query("passed", f"{scope}{mfa} {_outcome('authn_mfa_challenge', 'success')}", [USR_ID]),
        ],
        [
            _case(
                "challenges refused, then one accepted",
                p["accepted_severity"],
                f"failed >= {p['failures']} && passed >= 1",
            ),
            _case("challenge flood", p["flood_severity"], f"failed >= {p['flood_failures']}"),
        ],
    )


def _single_count(evt_type: str, group_by: str, case_name: str) -> Callable[[str, Params], Parts]:
    def build(scope: str, p: Params) -> Parts:
        return (
            [_query("events", scope + _type(evt_type), [group_by])],
            [_case(case_name, p["severity"], f"events >= {p['count']}")],
        )

    return build


def _admin_after_new_ip(scope: str, p: Params) -> Parts:
    return (
        [
            _query(
                "login_ips",
                scope + _login("success"),
                [USR_ID],
                aggregation="cardinality",
                distinct=[CLIENT_IP],
            ),
            _query("admin_actions", scope + admin_query(), [USR_ID]),
        ],
        [
            _case(
                "administrative action after a login from another IP",
                p["severity"],
                f"login_ips >= {p['login_ips']} && admin_actions >= 1",
            )
        ],
    )


PRIVILEGED: Final = ("superuser", "staff", "admin")
"""Privileges a grant or an impersonated account's role is checked against: Django's `superuser` and
`staff` (the integration's `evt.granted` / `evt.target_role` values) and the common role name `admin`."""
_APPROVED_CHANGE: Final = "-@actor.reason:change* -@context.change_ticket:*"
"""What marks an approved change: work run as `secevents.actor(..., reason="change:<ticket>")`, or an
explicit call carrying `change_ticket=` metadata (docs/detection-rules.md)."""


def _privileged(field: str) -> str:
    return f"@evt.{field}:(" + " OR ".join(PRIVILEGED) + ")"


def _privilege_escalation(scope: str, p: Params) -> Parts:
    grant = f"{_type('authz_change')} {_privileged('granted')} {_APPROVED_CHANGE}"
    return (
        [
            _query(
                "login_ips",
                scope + _login("success"),
                [USR_ID],
                aggregation="cardinality",
                distinct=[CLIENT_IP],
            ),
            _query("grants", scope + grant, [USR_ID]),
        ],
        [
            _case(
                "superuser or staff granted outside a change window after a login from another IP",
                p["severity"],
                f"login_ips >= {p['login_ips']} && grants >= 1",
            )
        ],
    )


def _admin_impersonated(scope: str, p: Params) -> Parts:
    start = f"{_type('authn_impersonation_start')} {_privileged('target_role')}"
    return (
        [_query("impersonations", scope + start, [USR_ID])],
        [_case("an administrator impersonated", p["severity"], f"impersonations >= {p['count']}")],
    )


def _mfa_removed_new_country(scope: str, p: Params) -> Parts:
    removed = _type("authn_mfa_disabled")
    # Only located events count a country: the term also makes the engine (and Datadog) read the GeoIP parse.
    located = f"{COUNTRY}:*"
    seen = f"({removed} OR ({_login('success')})) {located}"
    return (
        [
            _query("mfa_removed", scope + removed, [USR_ID]),
            _query("countries", scope + seen, [USR_ID], aggregation="cardinality", distinct=[COUNTRY]),
        ],
        [
            _case(
                "second factor removed, and a login from another country",
                p["severity"],
                f"mfa_removed >= 1 && countries >= {p['countries']}",
            )
        ],
    )


_LOGIN_TYPES = ("authn_login_fail", "authn_login_success", "authn_login_successafterfail")
_SUCCESS_TYPES = ("authn_login_success", "authn_login_successafterfail")

_ROWS: tuple[Rule, ...] = (
    Rule(
        "credential_stuffing",
        "Credential stuffing",
        "Many distinct accounts fail to log in from one IP: an attempt at `attempt_users` accounts, a "
        "successful attack at `success_users` with at least one success from the same IP "
        "(Datadog's `clw-d08-ehj`).",
        "threshold",
        {
            "attempt_users": 10,
            "success_users": 25,
            "attempt_severity": "medium",
            "success_severity": "high",
            **_windows(1800),
        },
        _credential_stuffing,
        (_TACTIC_CREDENTIALS, _BRUTE_FORCE),
        _LOGIN_TYPES,
    ),
    Rule(
        "brute_force",
        "Brute force on one account",
        "At least `failures` failed logins for one `@usr.id` within the window (Datadog's `def-000-eaa`).",
        "threshold",
        {"failures": 10, "severity": "medium", **_windows(900)},
        _brute_force,
        (_TACTIC_CREDENTIALS, _BRUTE_FORCE),
        ("authn_login_fail",),
    ),
    Rule(
        "brute_force_success",
        "Brute force followed by a success",
        "At least `failures` failed logins and a success for one `@usr.id` within the window "
        "(Datadog's `def-003-6ty`); the threshold method cannot require the success to come last.",
        "threshold",
        {"failures": 5, "severity": "high", **_windows(900)},
        _brute_force_success,
        (_TACTIC_CREDENTIALS, _BRUTE_FORCE, _VALID_ACCOUNTS),
        _LOGIN_TYPES,
    ),
    Rule(
        "account_enumeration",
        "Account enumeration",
        "Failed logins naming at least `unknown_accounts` distinct accounts that do not exist "
        "(`@usr.exists:false`) from one IP.",
        "threshold",
        {"unknown_accounts": 10, "severity": "medium", **_windows(900)},
        _account_enumeration,
        (_TACTIC_DISCOVERY,),
        ("authn_login_fail",),
    ),
    Rule(
        "impossible_travel",
        "Impossible travel",
        "Two successful logins of one `@usr.id` farther apart than travel allows (over 500 km at over "
        "1,000 km/h), from `@network.client.geoip` (Datadog's GeoIP parser output).",
        "impossible_travel",
        {
            "severity": "medium",
            "baseline_user_locations": False,
            "keep_alive": 3600,
            "max_signal_duration": 86400,
        },
        _impossible_travel,
        (_TACTIC_INITIAL_ACCESS, _VALID_ACCOUNTS),
        _SUCCESS_TYPES,
    ),
    Rule(
        "new_country",
        "Login from a new country",
        "A successful login of a `@usr.id` from a country (`@network.client.geoip.country.iso_code`) not "
        "seen for it during the last `forget_after` days, after a learning period of `learning_duration` "
        "days.",
        "new_value",
        {
            "severity": "low",
            "forget_after": 28,
            "learning_duration": 7,
            "keep_alive": 3600,
            "max_signal_duration": 86400,
        },
        _new_country,
        (_TACTIC_INITIAL_ACCESS, _VALID_ACCOUNTS),
        _SUCCESS_TYPES,
    ),
    Rule(
        "mfa_fatigue",
        "MFA fatigue",
        "Repeated failed `authn_mfa_challenge` for one `@usr.id`: `failures` then an accepted challenge, "
        "or a flood of `flood_failures` refusals.",
        "threshold",
        {
            "failures": 5,
            "flood_failures": 10,
            "accepted_severity": "high",
            "flood_severity": "medium",
            **_windows(900),
        },
        _mfa_fatigue,
        (_TACTIC_CREDENTIALS, "technique:T1621-multi-factor-authentication-request-generation"),
        ("authn_mfa_challenge",),
    ),
    Rule(
        "password_reset_flood_ip",
        "Password-reset flood from one IP",
        "At least `count` password-reset requests from one IP: enumeration through the reset form, or mail "
        "bombing.",
        "threshold",
        {"count": 20, "severity": "medium", **_windows(900)},
        _single_count("authn_password_reset_request", CLIENT_IP, "password-reset flood from one IP"),
        (_TACTIC_DISCOVERY,),
        ("authn_password_reset_request",),
    ),
    Rule(
        "password_reset_flood_account",
        "Password-reset flood on one account",
        "At least `count` password-reset requests for one account (`@usr.login`: a reset request names a "
        "login, not always a known user).",
        "threshold",
        {"count": 5, "severity": "low", **_windows(3600)},
        _single_count("authn_password_reset_request", USR_LOGIN, "password-reset flood on one account"),
        (_TACTIC_CREDENTIALS,),
        ("authn_password_reset_request",),
    ),
    Rule(
        "token_reuse",
        "Refresh-token reuse",
        "A revoked token used again (`authn_token_reuse`) for one `@usr.id`: the token was stolen, or a "
        "client races its own refresh.",
        "threshold",
        {"count": 1, "severity": "high", **_windows(300)},
        _single_count("authn_token_reuse", USR_ID, "revoked token reused"),
        (_TACTIC_CREDENTIALS, "technique:T1528-steal-application-access-token"),
        ("authn_token_reuse",),
    ),
    Rule(
        "authz_denied_burst",
        "Burst of denied requests from one IP",
        "At least `count` `authz_fail` events from one IP: probing for objects or functions it may not use.",
        "threshold",
        {"count": 20, "severity": "medium", **_windows(300)},
        _single_count("authz_fail", CLIENT_IP, "denied requests from one IP"),
        (_TACTIC_DISCOVERY,),
        ("authz_fail",),
    ),
    Rule(
        "mass_signup",
        "Mass signups from one IP",
        "At least `count` `user_signup` events from one IP: fake accounts being created.",
        "threshold",
        {"count": 10, "severity": "medium", **_windows(3600)},
        _single_count("user_signup", CLIENT_IP, "mass signups from one IP"),
        (_TACTIC_IMPACT,),
        ("user_signup",),
    ),
    Rule(
        "admin_after_new_ip",
        "Administrative action after a login from a new IP",
        "Within the window, one `@usr.id` logged in successfully from at least `login_ips` distinct IPs and "
        'performed an administrative action. Two queries joined on `@usr.id`; "new" means new within the '
        "window, not against the account's history (see the docs page).",
        "threshold",
        {"login_ips": 2, "severity": "high", **_windows(1800)},
        _admin_after_new_ip,
        (_TACTIC_PRIVILEGE, _VALID_ACCOUNTS),
        (*_SUCCESS_TYPES, *_ADMIN_TYPES),
    ),
    Rule(
        "privilege_escalation",
        "Privilege escalation after a login from a new IP",
        "An account granted `superuser`, `staff` or `admin` (`authz_change` with `@evt.granted`) by a "
        "`@usr.id` that logged in successfully from at least `login_ips` distinct IPs within the window, "
        "outside an approved change (no `@actor.reason:change*`, no `@context.change_ticket`).",
        "threshold",
        {"login_ips": 2, "severity": "critical", **_windows(1800)},
        _privilege_escalation,
        (_TACTIC_PRIVILEGE, "technique:T1098-account-manipulation", _VALID_ACCOUNTS),
        (*_SUCCESS_TYPES, "authz_change"),
    ),
    Rule(
        "admin_impersonated",
        "Impersonation of an administrator",
        "A `@usr.id` started impersonating an account whose role is `superuser`, `staff` or `admin` "
        "(`authn_impersonation_start` with `@evt.target_role`): support tooling used to borrow an "
        "administrator's power.",
        "threshold",
        {"count": 1, "severity": "high", **_windows(300)},
        _admin_impersonated,
        (_TACTIC_PRIVILEGE, _VALID_ACCOUNTS),
        ("authn_impersonation_start",),
    ),
    Rule(
        "mfa_removed_new_country",
        "Second factor removed, then a login from a new country",
        "A `@usr.id` removed a second factor (`authn_mfa_disabled`) and, within the window, its removal and "
        "successful logins came from at least `countries` distinct countries "
        "(`@network.client.geoip.country.iso_code`): an account taken over, its MFA stripped.",
        "threshold",
        {"countries": 2, "severity": "high", **_windows(21600, 21600)},
        _mfa_removed_new_country,
        (_TACTIC_CREDENTIALS, "technique:T1556-modify-authentication-process"),
        ("authn_mfa_disabled", *_SUCCESS_TYPES),
    ),
)

RULES: Final[Mapping[str, Rule]] = MappingProxyType({row.id: row for row in _ROWS})
"""Every rule by its id, in table order."""


# --- building -----------------------------------------------------------------------------------------------


def build_rules(
    *,
    service: str | None = None,
    env: str | None = None,
    only: Iterable[str] | None = None,
    **params: Any,
) -> list[dict[str, Any]]:
    """The rule set as detection-rule API JSON (`POST /api/v2/security_monitoring/rules` bodies).

    Args:
        service: restrict every query to `service:<service>` and tag the rules with it.
        env: restrict every query to `env:<env>` and tag the rules with it.
        only: rule ids to build (default: all of `RULES`, in table order).
        **params: `<rule>__<param>=value` (or `"<rule>.<param>"` through a dict), overriding a default
            of `Rule.defaults`, e.g. `credential_stuffing__attempt_users=15`.

    Returns:
        One dict per rule, tagged `secevents_rule:<id>` and `source:graffer_secevents`.

    Raises:
        ConfigurationError: an unknown rule or parameter, or a value out of range (a window Datadog does not
            accept, `evaluation_window > keep_alive`, an unknown severity, a threshold below 1).

    Example:
        >>> [r["name"] for r in build_rules(only=["brute_force"], service="auth-api")]
        ['[secevents] auth-api: brute force on one account']
    """
    scope = scope_terms(service=service, env=env)
    ids = list(RULES) if only is None else [only] if isinstance(only, str) else list(only)
    for rule_id in ids:
        if rule_id not in RULES:
            raise ConfigurationError(f"unknown rule {rule_id!r}; the rules are: {', '.join(RULES)}")
    overrides = _overrides(params)
    label = f"{service} ({env})" if service and env else (service or env or "")
    return [_build_one(RULES[rule_id], scope, label, overrides.get(rule_id, {})) for rule_id in ids]


def _build_one(row: Rule, scope_terms: list[str], label: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    p = {**row.defaults, **overrides}
    _check_params(row, p)
    scope = "".join(f"{term} " for term in scope_terms)
    queries, cases = row.build(scope, p)
    options: dict[str, Any] = {"detectionMethod": row.method}
    if row.method == "threshold":
        options["evaluationWindow"] = p["evaluation_window"]
    options["keepAlive"] = p["keep_alive"]
    options["maxSignalDuration"] = p["max_signal_duration"]
    if row.method == "new_value":
        options["newValueOptions"] = {
            "forgetAfter": p["forget_after"],
            "learningDuration": p["learning_duration"],
            "learningMethod": "duration",
            "learningThreshold": 0,
        }
    if row.method == "impossible_travel":
        options["impossibleTravelOptions"] = {"baselineUserLocations": p["baseline_user_locations"]}
    prefix = f"[secevents] {label}: " if label else "[secevents] "
    return {
        "name": prefix + row.title[0].lower() + row.title[1:],
        "type": "log_detection",
        "isEnabled": True,
        "message": _message(row, p),
        "tags": [f"{RULE_TAG}:{row.id}", SOURCE_TAG, *scope_terms, *row.tags],
        "queries": queries,
        "cases": cases,
        "options": options,
    }


def _message(row: Rule, p: Params) -> str:
    settings = ", ".join(f"`{key}` = {_show(value)}" for key, value in p.items())
    return (
        f"## {row.title}\n\n{row.summary}\n\n"
        f"Generated by graffer_secevents (`secevents rules`, rule `{row.id}`): {settings}.\n\n"
        "Investigate the group of this signal in the logs of the service: who, from where, what succeeded."
    )


def scope_terms(*, service: str | None, env: str | None) -> list[str]:
    """The `service:`/`env:` search terms that scope every query (none for `None`).

    Raises:
        ConfigurationError: a value that is not a plain tag value (it would change the query's meaning).

    Example:
        >>> scope_terms(service="auth-api", env=None)
        ['service:auth-api']
    """
    terms: list[str] = []
    for key, value in (("service", service), ("env", env)):
        if value is None:
            continue
        if not isinstance(value, str) or not _SCOPE_VALUE.fullmatch(value):
            raise ConfigurationError(
                f"{key}: expected a tag value such as 'auth-api' (letters, digits, _.:/-), got {value!r}"
            )
        terms.append(f"{key}:{value}")
    return terms


def admin_query() -> str:
    """The log search for administrative actions (`_ADMIN_TYPES`, from the catalog)."""
    return _types(_ADMIN_TYPES)


def _overrides(params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in params.items():
        rule_id, sep, name = key.partition(".") if "." in key else key.partition("__")
        if not sep or rule_id not in RULES:
            raise ConfigurationError(
                f"parameter {key!r}: expected <rule>.<param> with a rule among {', '.join(RULES)}"
            )
        if name not in RULES[rule_id].defaults:
            raise ConfigurationError(
                f"parameter {key!r}: {rule_id} takes {', '.join(RULES[rule_id].defaults)}"
            )
        out.setdefault(rule_id, {})[name] = value
    return out


def _check_params(row: Rule, p: Params) -> None:
    for name, value in p.items():
        where = f"{row.id}.{name}"
        default = row.defaults[name]
        if name.endswith("severity"):
            if value not in SEVERITIES:
                raise ConfigurationError(f"{where}: expected one of {', '.join(SEVERITIES)}, got {value!r}")
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigurationError(f"{where}: expected true or false, got {value!r}")
        elif name in ("evaluation_window", "keep_alive", "max_signal_duration"):
            if value not in WINDOWS or isinstance(value, bool):
                raise ConfigurationError(
                    f"{where}: expected one of {', '.join(map(str, WINDOWS))} seconds, got {value!r}"
                )
        elif name in ("forget_after", "learning_duration"):
            low = 1 if name == "forget_after" else 0
            if not _whole(value) or not low <= value <= 30:
                raise ConfigurationError(
                    f"{where}: expected a whole number of days, {low} to 30, got {value!r}"
                )
        elif not _whole(value) or value < 1:
            raise ConfigurationError(f"{where}: expected a whole number >= 1, got {value!r}")
    windows = [p[k] for k in ("evaluation_window", "keep_alive", "max_signal_duration") if k in p]
    if windows != sorted(windows):
        raise ConfigurationError(
            f"{row.id}: Datadog requires evaluation_window <= keep_alive <= max_signal_duration, got "
            + ", ".join(
                f"{k}={p[k]}" for k in ("evaluation_window", "keep_alive", "max_signal_duration") if k in p
            )
        )
    if "attempt_users" in p and p["success_users"] < p["attempt_users"]:
        raise ConfigurationError(f"{row.id}: success_users must be >= attempt_users (cases match in order)")


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_settings(settings: Iterable[str]) -> dict[str, Any]:
    """`rule.param=value` strings (the CLI's `--set`) as `build_rules` parameters.

    Values are whole numbers, `true`/`false` or text (severities).

    Raises:
        ConfigurationError: a setting without `=` or without `rule.param`.

    Example:
        >>> parse_settings(["brute_force.failures=20", "impossible_travel.baseline_user_locations=true"])
        {'brute_force.failures': 20, 'impossible_travel.baseline_user_locations': True}
    """
    out: dict[str, Any] = {}
    for setting in settings:
        key, sep, raw = setting.partition("=")
        if not sep or "." not in key:
            raise ConfigurationError(f"--set {setting!r}: expected rule.param=value")
        text = raw.strip()
        value: Any = text
        if re.fullmatch(r"-?[0-9]+", text):
            value = int(text)
        elif text.lower() in ("true", "false"):
            value = text.lower() == "true"
        out[key.strip()] = value
    return out


def rule_id_of(rule: Mapping[str, Any]) -> str:
    """The `secevents_rule:<id>` tag's id, else the rule's name (as the engine names signals).

    Example:
        >>> rule_id_of(build_rules(only=["token_reuse"])[0])
        'token_reuse'
    """
    for tag in rule.get("tags") or ():
        key, sep, value = str(tag).partition(":")
        if sep and key == RULE_TAG:
            return value
    return str(rule.get("name", ""))


# --- Terraform and docs -------------------------------------------------------------------------------------


def rule_resources(rules: Iterable[Mapping[str, Any]]) -> list[Resource]:
    """Rules as `datadog_security_monitoring_rule` resources: the provider's snake_case blocks.

    `isEnabled` is the provider's `enabled`; `queries` and `cases` become repeated `query {}` and
    `case {}` blocks; `options` (with `new_value_options {}`/`impossible_travel_options {}`) a block.
    Empty lists are left out, as the provider treats an absent list and an empty one alike.
    """
    used: set[str] = set()
    resources: list[Resource] = []
    for rule in rules:
        api = {key: value for key, value in rule.items() if key not in ("queries", "cases")}
        body = snake_blocks(api, rename={"isEnabled": "enabled"})
        body["query"] = snake_blocks({"q": [_drop_empty(q) for q in rule.get("queries", [])]})["q"]
        body["case"] = snake_blocks({"c": [_drop_empty(c) for c in rule.get("cases", [])]})["c"]
        if "options" in body:
            body["options"] = body.pop("options")  # blocks after the arguments, for readability
        label = resource_label(f"secevents_{rule_id_of(rule)}", used, fallback="rule")
        resources.append(Resource("datadog_security_monitoring_rule", label, body))
    return resources


def _drop_empty(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: v for k, v in cast("Mapping[str, Any]", value).items() if v != []}
    return value


def to_terraform(rules: Iterable[Mapping[str, Any]], *, json_syntax: bool = False) -> str:
    """Rules from `build_rules` as Terraform: HCL, or Terraform JSON with `json_syntax`.

    Example:
        >>> to_terraform(build_rules(only=["brute_force"])).splitlines()[0]
        'resource "datadog_security_monitoring_rule" "secevents_brute_force" {'
    """
    resources = rule_resources(rules)
    return to_terraform_json(resources) if json_syntax else to_hcl(resources)


def render_markdown() -> str:
    """The rules table of `docs/detection-rules.md` (between its generated-section markers)."""
    lines = [
        "| rule id | title | method | events | parameters (defaults) | what it detects |",
        "|---|---|---|---|---|---|",
    ]
    for row in RULES.values():
        params = "<br>".join(f"`{k}={_show(v)}`" for k, v in row.defaults.items())
        events = ", ".join(f"`{t}`" for t in row.event_types)
        lines.append(f"| `{row.id}` | {row.title} | {row.method} | {events} | {params} | {row.summary} |")
    return "\n".join(lines) + "\n"


def _show(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


DOC_START: Final = "<!-- rules:start -->\n"
DOC_END: Final = "<!-- rules:end -->"


def splice_markdown(page: str) -> str:
    """`page` with the text between its generated-section markers replaced by `render_markdown`.

    Raises:
        ConfigurationError: the page has no markers.
    """
    head, start, rest = page.partition(DOC_START)
    _old, end, tail = rest.partition(DOC_END)
    if not start or not end:
        raise ConfigurationError(f"no {DOC_START.strip()} ... {DOC_END} markers in the page")
    return head + start + render_markdown() + end + tail


if __name__ == "__main__":  # `make rules-doc`
    import sys
    from pathlib import Path

    target = Path(sys.argv[1])
    target.write_text(splice_markdown(target.read_text(encoding="utf-8")), encoding="utf-8")
