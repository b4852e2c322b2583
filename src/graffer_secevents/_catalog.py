"""The event catalog: the one table every other part of the library is derived from.

Each row is an event type: the 57 identifiers of the OWASP Application Logging Vocabulary
(OWASP's Logging Vocabulary Cheat Sheet, pinned at CheatSheetSeries 6b8819da) plus the 18 extensions the
vocabulary lacks; `docs/catalog.md` lists them with their categories and outcomes. Levels are OWASP's
(`INFO`→`info`, `WARN`→`warning`, `CRITICAL`→`critical`).

Adding an event type is adding one row here: helpers, the JSON Schema, the docs page, metric tags and the
trace bridges read this table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

__all__ = [
    "CATALOG",
    "CATEGORIES",
    "LEVELS",
    "EventType",
    "OutcomeRule",
    "Param",
    "ParamKind",
]

CATEGORIES: tuple[str, ...] = (
    "authentication",
    "session",
    "iam",
    "authorization",
    "web",
    "file",
    "database",
    "intrusion_detection",
    "configuration",
    "process",
    "crypto",
)
LEVELS: tuple[str, ...] = ("info", "warning", "critical")

Level = Literal["info", "warning", "critical"]
ParamKind = Literal["str", "int", "bool", "str_list", "secret_id"]
"""How a parameter is validated. `secret_id` (session and token ids) is always hashed, whatever the privacy
settings, so a raw session or token id can never be written."""


class OutcomeRule(StrEnum):
    """Where an event's `evt.outcome` comes from."""

    SUCCESS = "success"  # always success
    FAILURE = "failure"  # always failure
    NONE = "none"  # a pure detection or notice: no outcome
    CALLER = "caller"  # the caller says success or failure


@dataclass(frozen=True, slots=True)
class Param:
    """One event parameter, written as `evt.<name>`."""

    name: str
    kind: ParamKind
    doc: str


@dataclass(frozen=True, slots=True)
class EventType:
    """One row of the catalog."""

    type: str
    category: str
    level: Level
    outcome: OutcomeRule
    summary: str
    params: tuple[Param, ...] = ()
    source: Literal["owasp", "extension"] = "owasp"
    login_attempt: bool = False
    """Counted in `secevents.login.attempts` and named `evt.name: authentication`."""
    target_user: bool = False
    """Acts on another account, written as `target.usr.*`."""
    level_on_failure: Level | None = None
    """For caller-decided outcomes: the level when the outcome is failure (OWASP's `INFO|CRITICAL`)."""
    name: str = field(init=False)
    """`evt.name`: `authentication` for login attempts, otherwise the type itself."""
    message: str = field(init=False)
    """The record's `message`: the type and the summary, never any user data."""
    secret_params: frozenset[str] = field(init=False)
    """Parameters that are always hashed (session and token ids)."""
    fixed_outcome: str | None = field(init=False)
    """`success` or `failure` for rows whose outcome never varies, else `None`."""
    param_map: Mapping[str, Param] = field(init=False, repr=False, compare=False)
    """`params` by name, for the per-event lookup."""

    def __post_init__(self) -> None:
        # Derived once per row, not per event.
        object.__setattr__(self, "name", "authentication" if self.login_attempt else self.type)
        object.__setattr__(self, "message", f"{self.type}: {self.summary}")
        object.__setattr__(
            self, "secret_params", frozenset(p.name for p in self.params if p.kind == "secret_id")
        )
        fixed = self.outcome.value if self.outcome.value in ("success", "failure") else None
        object.__setattr__(self, "fixed_outcome", fixed)
        object.__setattr__(self, "param_map", {p.name: p for p in self.params})

    def level_for(self, outcome: str | None) -> Level:
        """The level (`status`) of one event of this type with this outcome."""
        if outcome == "failure" and self.level_on_failure is not None:
            return self.level_on_failure
        return self.level


def _p(name: str, kind: ParamKind, doc: str) -> Param:
    return Param(name, kind, doc)


# Parameters shared by several rows.
_REASON = _p("reason", "str", "why it happened, in a few words (e.g. `invalid_credentials`, `maxretries`)")
_MAX = _p("max_limit", "int", "the limit that was reached")
_TOKEN = _p("token_id", "secret_id", "identifier of the token; always hashed")
_SESSION = _p("session_id", "secret_id", "identifier of the session; always hashed")
_RESOURCE = _p("resource", "str", "the resource (URL path, object name or id) acted upon")
_OBJECT = _p("object", "str", "the file or object concerned")
_FILENAME = _p("filename", "str", "the uploaded file's name")
_ATTRS = _p("attributes", "str_list", "names of the attributes set or changed (never their values)")
_MONITOR = _p("monitor", "str", "the monitoring or security agent concerned")
_ROLE = _p("role", "str", "the role concerned")
_MFA = _p("method", "str", "the second factor, e.g. `totp`, `sms`, `webauthn`")
_GRANTED = _p(
    "granted", "str_list", "privileges, roles or permissions given (`superuser`, `staff`, `app.codename`)"
)
_REVOKED = _p("revoked", "str_list", "privileges, roles or permissions taken away")
_TARGET_ROLE = _p(
    "target_role", "str", "the impersonated account's highest privilege: `superuser`, `staff` or `user`"
)

S, F, N, C = OutcomeRule.SUCCESS, OutcomeRule.FAILURE, OutcomeRule.NONE, OutcomeRule.CALLER

_ROWS: tuple[EventType, ...] = (
    # --- authentication (OWASP authn_*) ---
    EventType("authn_login_success", "authentication", "info", S, "login succeeded", login_attempt=True),
    EventType(
        "authn_login_successafterfail",
        "authentication",
        "info",
        S,
        "login succeeded after failures",
        (_p("retries", "int", "failed attempts before this success"),),
        login_attempt=True,
    ),
    EventType(
        "authn_login_fail", "authentication", "warning", F, "login failed", (_REASON,), login_attempt=True
    ),
    EventType("authn_login_fail_max", "authentication", "warning", N, "failed-login limit reached", (_MAX,)),
    EventType("authn_login_lock", "iam", "warning", S, "account locked", (_REASON,)),
    EventType("authn_password_change", "iam", "info", S, "password changed"),
    EventType("authn_password_change_fail", "iam", "critical", F, "password change failed", (_REASON,)),
    EventType(
        "authn_impossible_travel",
        "authentication",
        "critical",
        N,
        "impossible travel detected",
        (
            _p("region1", "str", "where the user was first seen"),
            _p("region2", "str", "where the user was then seen"),
        ),
    ),
    EventType(
        "authn_token_created",
        "iam",
        "info",
        S,
        "token created",
        (_TOKEN, _p("entitlements", "str_list", "what the token grants")),
    ),
    EventType("authn_token_revoked", "iam", "info", S, "token revoked", (_TOKEN,)),
    EventType("authn_token_reuse", "authentication", "critical", F, "revoked token reused", (_TOKEN,)),
    EventType(
        "authn_token_delete",
        "iam",
        "warning",
        S,
        "token deleted",
        (_p("app_id", "str", "the application whose token was deleted"), _TOKEN),
    ),
    # --- authorization (OWASP authz_*) ---
    EventType("authz_fail", "authorization", "critical", F, "access denied", (_RESOURCE, _REASON)),
    EventType(
        "authz_change",
        "iam",
        "warning",
        S,
        "entitlements changed",
        (
            _p("from_role", "str", "entitlement before"),
            _p("to_role", "str", "entitlement after"),
            _GRANTED,
            _REVOKED,
        ),
        target_user=True,
    ),
    EventType(
        "authz_admin",
        "iam",
        "warning",
        S,
        "administrative action",
        (_p("action", "str", "what the administrator did"), _RESOURCE),
    ),
    # --- crypto ---
    EventType("crypt_decrypt_fail", "crypto", "warning", F, "decryption failed", (_REASON,)),
    EventType("crypt_encrypt_fail", "crypto", "warning", F, "encryption failed", (_REASON,)),
    # --- excess use ---
    EventType("excess_rate_limit_exceeded", "web", "warning", F, "rate limit exceeded", (_MAX, _RESOURCE)),
    EventType("excess_sessions_exceeded", "session", "warning", F, "session limit exceeded", (_MAX,)),
    # --- file upload ---
    EventType(
        "upload_complete",
        "file",
        "info",
        S,
        "upload complete",
        (_FILENAME, _p("file_type", "str", "the declared content type")),
    ),
    EventType(
        "upload_stored",
        "file",
        "info",
        S,
        "upload stored",
        (
            _FILENAME,
            _p("from_location", "str", "where it was"),
            _p("to_location", "str", "where it is stored"),
        ),
    ),
    EventType(
        "upload_validation",
        "file",
        "info",
        C,
        "upload validated",
        (
            _FILENAME,
            _p("validator", "str", "the check, e.g. `virusscan`"),
            _p("result", "str", "its verdict"),
        ),
        level_on_failure="critical",
    ),
    EventType(
        "upload_delete", "file", "info", S, "file deleted", (_p("file_id", "str", "the deleted file"),)
    ),
    # --- input validation ---
    EventType(
        "input_validation_fail",
        "web",
        "warning",
        F,
        "input validation failed",
        (_p("fields", "str_list", "names of the fields that failed (never their values)"),),
    ),
    EventType(
        "input_validation_discrete_fail",
        "web",
        "warning",
        F,
        "value outside the allowed list",
        (_p("field", "str", "the field whose value was not one of the allowed options"),),
    ),
    # --- malicious behaviour ---
    EventType("malicious_excess_404", "intrusion_detection", "warning", N, "excessive 404 responses"),
    EventType(
        "malicious_extraneous",
        "intrusion_detection",
        "critical",
        F,
        "unexpected input submitted",
        (_p("input_name", "str", "the unexpected field"),),
    ),
    EventType(
        "malicious_attack_tool",
        "intrusion_detection",
        "critical",
        N,
        "attack tool detected",
        (_p("tool_name", "str", "the tool recognised"),),
    ),
    EventType(
        "malicious_sqli",
        "intrusion_detection",
        "critical",
        F,
        "SQL injection attempt",
        (
            _p("parameter", "str", "the parameter (never the payload)"),
            _p("rule_id", "str", "the matching rule"),
        ),
    ),
    EventType(
        "malicious_cors",
        "intrusion_detection",
        "critical",
        F,
        "request from an unauthorised origin",
        (_p("origin", "str", "the Origin or Referer presented"),),
    ),
    EventType(
        "malicious_direct_reference",
        "authorization",
        "critical",
        F,
        "direct object reference attempt",
        (_RESOURCE,),
    ),
    EventType(
        "malicious_csrf", "intrusion_detection", "warning", F, "request without a valid anti-CSRF token"
    ),
    EventType(
        "malicious_csp_violation",
        "web",
        "warning",
        N,
        "content security policy violated",
        (
            _p("effective_directive", "str", "the violated directive"),
            _p("blocked_uri", "str", "the blocked URI, without query or fragment"),
        ),
    ),
    EventType("mcp_prompt_injection", "intrusion_detection", "warning", N, "prompt injection indicators"),
    EventType("mcp_resource_exhaustion", "intrusion_detection", "warning", N, "resource exhaustion pattern"),
    EventType(
        "mcp_tool_poisoning",
        "intrusion_detection",
        "warning",
        N,
        "tampered tool detected",
        (_p("tool_name", "str", "the tool concerned"),),
    ),
    # --- privilege, sensitive data, sequence ---
    EventType(
        "privilege_permissions_changed",
        "configuration",
        "warning",
        S,
        "object permissions changed",
        (
            _OBJECT,
            _p("from_level", "str", "permissions before"),
            _p("to_level", "str", "permissions after"),
            _GRANTED,
            _REVOKED,
        ),
    ),
    EventType("sensitive_create", "database", "warning", S, "sensitive data created", (_OBJECT,)),
    EventType("sensitive_read", "database", "warning", S, "sensitive data read", (_OBJECT,)),
    EventType("sensitive_update", "database", "warning", S, "sensitive data updated", (_OBJECT,)),
    EventType("sensitive_delete", "database", "warning", S, "sensitive data deleted", (_OBJECT,)),
    EventType(
        "sequence_fail",
        "web",
        "critical",
        F,
        "out-of-sequence request",
        (_p("step", "str", "the step reached out of order"),),
    ),
    # --- sessions ---
    EventType("session_created", "session", "info", S, "session created", (_SESSION,)),
    EventType("session_renewed", "session", "info", S, "session renewed", (_SESSION,)),
    EventType("session_expired", "session", "info", S, "session expired", (_REASON, _SESSION)),
    EventType("session_logout", "session", "info", S, "logged out", (_SESSION,)),
    EventType("session_use_after_expire", "session", "critical", F, "expired session used", (_SESSION,)),
    # --- system ---
    EventType("sys_startup", "process", "warning", S, "system started"),
    EventType("sys_shutdown", "process", "warning", S, "system stopped"),
    EventType("sys_restart", "process", "warning", S, "system restarted"),
    EventType("sys_crash", "process", "warning", F, "system crashed", (_REASON,)),
    EventType("sys_monitor_disabled", "configuration", "warning", S, "monitoring disabled", (_MONITOR,)),
    EventType("sys_monitor_enabled", "configuration", "warning", S, "monitoring enabled", (_MONITOR,)),
    # --- user management ---
    EventType("user_created", "iam", "warning", S, "user created", (_ATTRS,), target_user=True),
    EventType("user_updated", "iam", "warning", S, "user updated", (_ATTRS,), target_user=True),
    EventType("user_archived", "iam", "warning", S, "user archived", target_user=True),
    EventType("user_deleted", "iam", "warning", S, "user deleted", target_user=True),
    # --- extensions: events the OWASP vocabulary lacks (source="extension") ---
    EventType("user_signup", "iam", "info", S, "user signed up", source="extension"),
    EventType(
        "authn_password_reset_request", "iam", "info", S, "password reset requested", source="extension"
    ),
    EventType(
        "authn_password_reset",
        "iam",
        "info",
        C,
        "password reset",
        (_REASON,),
        source="extension",
        level_on_failure="warning",
    ),
    EventType(
        "authn_mfa_enabled", "iam", "info", S, "second factor enabled", (_MFA, _REASON), source="extension"
    ),
    EventType(
        "authn_mfa_disabled",
        "iam",
        "warning",
        S,
        "second factor disabled",
        (_MFA, _REASON),
        source="extension",
    ),
    EventType(
        "authn_mfa_challenge",
        "authentication",
        "info",
        C,
        "second factor challenged",
        (_MFA, _REASON),
        source="extension",
        level_on_failure="warning",
    ),
    EventType("authn_login_unlock", "iam", "info", S, "account unlocked", (_REASON,), source="extension"),
    EventType("user_enabled", "iam", "warning", S, "user enabled", source="extension", target_user=True),
    EventType(
        "user_disabled",
        "iam",
        "warning",
        S,
        "user disabled",
        (_REASON,),
        source="extension",
        target_user=True,
    ),
    EventType("authz_role_created", "iam", "warning", S, "role created", (_ROLE,), source="extension"),
    EventType("authz_role_deleted", "iam", "warning", S, "role deleted", (_ROLE,), source="extension"),
    EventType(
        "group_member_added",
        "iam",
        "warning",
        S,
        "group member added",
        (_p("group", "str", "the group"),),
        source="extension",
        target_user=True,
    ),
    EventType(
        "group_member_removed",
        "iam",
        "warning",
        S,
        "group member removed",
        (_p("group", "str", "the group"),),
        source="extension",
        target_user=True,
    ),
    EventType(
        "authn_impersonation_start",
        "authentication",
        "warning",
        S,
        "impersonation started",
        (_REASON, _TARGET_ROLE),
        source="extension",
        target_user=True,
    ),
    EventType(
        "authn_impersonation_end",
        "authentication",
        "info",
        S,
        "impersonation ended",
        (_REASON, _TARGET_ROLE),
        source="extension",
        target_user=True,
    ),
    EventType(
        "data_export",
        "database",
        "warning",
        S,
        "data exported",
        (
            _OBJECT,
            _p("record_count", "int", "how many records were exported"),
            _p("export_format", "str", "the format, e.g. `csv`"),
        ),
        source="extension",
    ),
    EventType(
        "consent_changed",
        "configuration",
        "info",
        S,
        "consent changed",
        (_p("consent", "str", "what the consent is for"), _p("granted", "bool", "given (true) or withdrawn")),
        source="extension",
    ),
    EventType(
        "config_changed",
        "configuration",
        "warning",
        S,
        "configuration changed",
        (_p("setting", "str", "the setting's name (never its value)"),),
        source="extension",
    ),
)

CATALOG: MappingProxyType[str, EventType] = MappingProxyType({row.type: row for row in _ROWS})
"""Every event type by its identifier, in catalog order."""
