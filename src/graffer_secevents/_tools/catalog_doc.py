"""The catalog rendered for people and machines: a terminal table, JSON, and the page `docs/catalog.md`.

Everything here is derived from `graffer_secevents._catalog.CATALOG`; the docs page is this module's
`render_markdown` output, written by `secevents catalog --format markdown > docs/catalog.md`, and a
test fails when the committed page differs. Not on the per-event path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

from graffer_secevents._catalog import CATALOG, CATEGORIES, EventType, OutcomeRule, Param
from graffer_secevents._metrics import EVENTS_METRIC, LOGIN_ATTEMPTS_METRIC

__all__ = [
    "HELPERS",
    "catalog_data",
    "catalog_rows",
    "helpers_for",
    "outcome_text",
    "render_markdown",
    "render_table",
]

HELPERS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "log_login": ("authn_login_success", "authn_login_successafterfail", "authn_login_fail"),
        "log_logout": ("session_logout",),
        "log_signup": ("user_signup",),
        "log_password_change": ("authn_password_change", "authn_password_change_fail"),
        "log_password_reset": ("authn_password_reset_request", "authn_password_reset"),
        "log_mfa_challenge": ("authn_mfa_challenge",),
        "log_account_locked": ("authn_login_lock",),
        "log_token_created": ("authn_token_created",),
        "log_token_revoked": ("authn_token_revoked",),
        "log_access_denied": ("authz_fail",),
        "log_privilege_change": ("authz_change",),
        "log_admin_action": ("authz_admin",),
        "log_user_created": ("user_created",),
        "log_user_deleted": ("user_deleted",),
        "log_rate_limited": ("excess_rate_limit_exceeded",),
        "log_input_validation_failed": ("input_validation_fail",),
        "log_sensitive_access": (
            "sensitive_create",
            "sensitive_read",
            "sensitive_update",
            "sensitive_delete",
        ),
        "log_data_export": ("data_export",),
        "log_group_membership": ("group_member_added", "group_member_removed"),
        "log_account_status": ("user_enabled", "user_disabled"),
        "log_user_updated": ("user_updated",),
        "log_mfa_change": ("authn_mfa_enabled", "authn_mfa_disabled"),
        "log_impersonation": ("authn_impersonation_start", "authn_impersonation_end"),
    }
)
"""Which typed helper writes which event types (every type can also be written with `emit`); a test calls
each helper and checks this table."""

_CATEGORY_TITLES: Final[Mapping[str, str]] = {
    "authentication": "Authentication",
    "session": "Sessions",
    "iam": "Identity and access management",
    "authorization": "Authorization",
    "web": "Web input and rate limits",
    "file": "Files and uploads",
    "database": "Sensitive data",
    "intrusion_detection": "Intrusion detection",
    "configuration": "Configuration",
    "process": "Process lifecycle",
    "crypto": "Cryptography",
}

_KIND_TEXT: Final[Mapping[str, str]] = {
    "str": "string",
    "int": "integer",
    "bool": "boolean",
    "str_list": "list of strings",
    "secret_id": "string, always hashed (`anon_…`)",
}


def helpers_for(evt_type: str) -> list[str]:
    """The typed helpers that write `evt_type` (empty when only `emit` does)."""
    return [helper for helper, types in HELPERS.items() if evt_type in types]


def outcome_text(spec: EventType) -> str:
    """The outcome rule in a few words: `success`, `failure`, `caller` or `none`."""
    return spec.outcome.value


def _level_text(spec: EventType) -> str:
    if spec.level_on_failure is not None:
        return f"{spec.level} ({spec.level_on_failure} on failure)"
    return spec.level


def catalog_data() -> list[dict[str, Any]]:
    """Every event type as a plain dict (what `secevents catalog --format json` prints)."""
    return [
        {
            "type": spec.type,
            "category": spec.category,
            "name": spec.name,
            "level": spec.level,
            "level_on_failure": spec.level_on_failure,
            "outcome": spec.outcome.value,
            "summary": spec.summary,
            "source": spec.source,
            "login_attempt": spec.login_attempt,
            "target_user": spec.target_user,
            "params": [{"name": p.name, "kind": p.kind, "doc": p.doc} for p in spec.params],
            "helpers": helpers_for(spec.type),
        }
        for spec in CATALOG.values()
    ]


def catalog_rows() -> list[tuple[str, str, str, str, str, str]]:
    """The catalog's rows as the terminal shows them: type, category, evt.name, level, outcome, parameters."""
    return [
        (
            spec.type,
            spec.category,
            spec.name,
            spec.level if spec.level_on_failure is None else f"{spec.level}/{spec.level_on_failure}",
            outcome_text(spec),
            ", ".join(p.name for p in spec.params) or "-",
        )
        for spec in CATALOG.values()
    ]


def render_table() -> str:
    """The catalog as an aligned text table for a terminal."""
    header = ("TYPE", "CATEGORY", "EVT.NAME", "LEVEL", "OUTCOME", "PARAMETERS")
    rows = [
        (
            spec.type,
            spec.category,
            spec.name,
            spec.level if spec.level_on_failure is None else f"{spec.level}/{spec.level_on_failure}",
            outcome_text(spec),
            ", ".join(p.name for p in spec.params) or "-",
        )
        for spec in CATALOG.values()
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])

    return "\n".join(line(row) for row in [header, *rows]) + "\n"


# --- the docs page ------------------------------------------------------------------------------------------

_OUTCOME_LONG: Final[Mapping[OutcomeRule, str]] = {
    OutcomeRule.SUCCESS: "always `success`",
    OutcomeRule.FAILURE: "always `failure`",
    OutcomeRule.NONE: "none: a detection, `evt.outcome` is absent",
    OutcomeRule.CALLER: "the caller's: `success` or `failure`",
}


def _code(text: str) -> str:
    return f"`{text}`"


def _params_cell(params: Iterable[Param]) -> str:
    return ", ".join(_code(p.name) for p in params) or "-"


def _helper_call(spec: EventType) -> str:
    helpers = helpers_for(spec.type)
    if helpers:
        return (
            ", ".join(_code(f"secevents.{h}()") for h in helpers) + f', or `secevents.emit("{spec.type}", …)`'
        )
    return f'`secevents.emit("{spec.type}", …)`'


def _intro(total: int, owasp: int) -> list[str]:
    return [
        "# Event catalog",
        "",
        "<!-- GENERATED by `secevents catalog --format markdown` from graffer_secevents._catalog.CATALOG.",
        "     Do not edit: change the catalog, then run `make catalog-doc`. tests/test_docs.py fails when",
        "     this page and the code disagree. -->",
        "",
        f"Every event the library writes is one of these {total} types: the {owasp} identifiers of the "
        "[OWASP Application Logging Vocabulary]"
        "(https://cheatsheetseries.owasp.org/cheatsheets/Logging_Vocabulary_Cheat_Sheet.html) and "
        f"{total - owasp} extensions the vocabulary lacks (marked *extension*). The catalog is one table "
        "in the code; this page, the typed helpers, the [JSON Schema](record.md#json-schema), the metric "
        "tags and `secevents validate` are all derived from it.",
        "",
        "How to read a row:",
        "",
        "- **type** is `evt.type`, the identifier you pass to `secevents.emit()` and search with "
        "`@evt.type:authn_login_fail`.",
        "- **category** is `evt.category`; **`evt.name`** is `authentication` for the three login attempts "
        "(what Datadog's Cloud SIEM rules query) and the type itself otherwise.",
        "- **level** becomes the record's `status` (OWASP's `INFO`, `WARN`, `CRITICAL` → `info`, `warning`, "
        "`critical`); it never depends on who calls, only on the type and, for two types, the outcome.",
        "- **outcome** says where `evt.outcome` comes from: always `success`, always `failure`, the caller's "
        "(`success` or `failure`), or none for pure detections.",
        "- **parameters** are written as `evt.<name>`; anything else you pass goes under `context.*`. Every "
        "event also carries the common keys described in [the event record](record.md).",
        "",
        "The same list is available from the command line: `secevents catalog` (a table), "
        "`secevents catalog --format json`.",
        "",
    ]


def _summary_table() -> list[str]:
    lines = [
        "## All event types",
        "",
        "| type | category | `evt.name` | level | outcome | parameters |",
        "|---|---|---|---|---|---|",
    ]
    for spec in CATALOG.values():
        lines.append(
            f"| [{spec.type}](#{spec.type}) | {spec.category} | {_code(spec.name)} | {_level_text(spec)} "
            f"| {outcome_text(spec)} | {_params_cell(spec.params)} |"
        )
    lines.append("")
    return lines


def _event_section(spec: EventType) -> list[str]:
    origin = "OWASP" if spec.source == "owasp" else "extension"
    metrics = [EVENTS_METRIC] + ([LOGIN_ATTEMPTS_METRIC] if spec.login_attempt else [])
    lines = [
        f"### {spec.type}",
        "",
        f"{spec.summary[0].upper()}{spec.summary[1:]}. *({origin})*",
        "",
        "| attribute | value |",
        "|---|---|",
        f"| `evt.category` | {_code(spec.category)} |",
        f"| `evt.name` | {_code(spec.name)} |",
        f"| `status` | {_level_text(spec)} |",
        f"| `evt.outcome` | {_OUTCOME_LONG[spec.outcome]} |",
    ]
    if spec.target_user:
        lines.append("| `target.usr.*` | the account acted upon (`target_user=`) |")
    lines += [
        f"| metrics | {', '.join(_code(m) for m in metrics)} |",
        f"| write it with | {_helper_call(spec)} |",
        "",
    ]
    if spec.params:
        lines += ["| parameter | type | meaning |", "|---|---|---|"]
        lines += [f"| `evt.{p.name}` | {_KIND_TEXT[p.kind]} | {p.doc} |" for p in spec.params]
        lines.append("")
    return lines


def render_markdown() -> str:
    """The docs page `docs/catalog.md`: an overview table and one section per event type, by category."""
    owasp = sum(1 for spec in CATALOG.values() if spec.source == "owasp")
    lines = _intro(len(CATALOG), owasp) + _summary_table()
    for category in CATEGORIES:
        specs = [spec for spec in CATALOG.values() if spec.category == category]
        if not specs:
            continue
        title = _CATEGORY_TITLES.get(category, category)
        lines += [f"## {title} (`{category}`)", ""]
        for spec in specs:
            lines += _event_section(spec)
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"
