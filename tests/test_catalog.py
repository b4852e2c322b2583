"""The catalog: one table, complete, and every row writes one valid record."""

from __future__ import annotations

from typing import Any

import pytest

from graffer_secevents import CATALOG, OutcomeRule, User, emit
from graffer_secevents._catalog import CATEGORIES
from graffer_secevents._tools.schema import check_record
from graffer_secevents.testing import Capture

OWASP_IDENTIFIERS = [
    "authn_login_success",
    "authn_login_successafterfail",
    "authn_login_fail",
    "authn_login_fail_max",
    "authn_login_lock",
    "authn_password_change",
    "authn_password_change_fail",
    "authn_impossible_travel",
    "authn_token_created",
    "authn_token_revoked",
    "authn_token_reuse",
    "authn_token_delete",
    "authz_fail",
    "authz_change",
    "authz_admin",
    "crypt_decrypt_fail",
    "crypt_encrypt_fail",
    "excess_rate_limit_exceeded",
    "excess_sessions_exceeded",
    "upload_complete",
    "upload_stored",
    "upload_validation",
    "upload_delete",
    "input_validation_fail",
    "input_validation_discrete_fail",
    "malicious_excess_404",
    "malicious_extraneous",
    "malicious_attack_tool",
    "malicious_sqli",
    "malicious_cors",
    "malicious_direct_reference",
    "malicious_csrf",
    "malicious_csp_violation",
    "mcp_prompt_injection",
    "mcp_resource_exhaustion",
    "mcp_tool_poisoning",
    "privilege_permissions_changed",
    "sensitive_create",
    "sensitive_read",
    "sensitive_update",
    "sensitive_delete",
    "sequence_fail",
    "session_created",
    "session_renewed",
    "session_expired",
    "session_logout",
    "session_use_after_expire",
    "sys_startup",
    "sys_shutdown",
    "sys_restart",
    "sys_crash",
    "sys_monitor_disabled",
    "sys_monitor_enabled",
    "user_created",
    "user_updated",
    "user_archived",
    "user_deleted",
]
EXTENSIONS = [
    "user_signup",
    "authn_password_reset_request",
    "authn_password_reset",
    "authn_mfa_enabled",
    "authn_mfa_disabled",
    "authn_mfa_challenge",
    "authn_login_unlock",
    "user_enabled",
    "user_disabled",
    "authz_role_created",
    "authz_role_deleted",
    "group_member_added",
    "group_member_removed",
    "authn_impersonation_start",
    "authn_impersonation_end",
    "data_export",
    "consent_changed",
    "config_changed",
]
OWASP_LEVELS = {  # the vocabulary's own levels, where they are not the default WARN
    "info": {
        "authn_login_success",
        "authn_login_successafterfail",
        "authn_password_change",
        "authn_token_created",
        "authn_token_revoked",
        "upload_complete",
        "upload_stored",
        "upload_validation",
        "upload_delete",
        "session_created",
        "session_renewed",
        "session_expired",
        "session_logout",
    },
    "critical": {
        "authn_password_change_fail",
        "authn_impossible_travel",
        "authn_token_reuse",
        "authz_fail",
        "malicious_extraneous",
        "malicious_attack_tool",
        "malicious_sqli",
        "malicious_cors",
        "malicious_direct_reference",
        "sequence_fail",
        "session_use_after_expire",
    },
}
SAMPLE = {"str": "value", "int": 3, "bool": True, "str_list": ["a", "b"], "secret_id": "sid-123"}


def test_catalog_holds_all_57_owasp_identifiers_and_the_18_extensions() -> None:
    assert len(OWASP_IDENTIFIERS) == 57
    assert len(EXTENSIONS) == 18
    assert [t for t, row in CATALOG.items() if row.source == "owasp"] == OWASP_IDENTIFIERS
    assert [t for t, row in CATALOG.items() if row.source == "extension"] == EXTENSIONS


@pytest.mark.parametrize("evt_type", OWASP_IDENTIFIERS)
def test_owasp_levels_follow_the_vocabulary(evt_type: str) -> None:
    row = CATALOG[evt_type]
    expected = next((level for level, types in OWASP_LEVELS.items() if evt_type in types), "warning")
    assert row.level == expected


def test_every_row_uses_a_spec_category_and_snake_case_parameters() -> None:
    for row in CATALOG.values():
        assert row.category in CATEGORIES
        for param in row.params:
            assert param.name.isidentifier() and param.name == param.name.lower()
            assert param.name not in {"type", "name", "category", "outcome"}


def _emit_sample(evt_type: str) -> tuple[dict[str, Any], str | None]:
    row = CATALOG[evt_type]
    params = {p.name: SAMPLE[p.kind] for p in row.params}
    outcome = "failure" if row.outcome is OutcomeRule.CALLER else None
    target = User(id=99) if row.target_user else None
    emit(evt_type, user=7, outcome=outcome, ip="198.51.100.4", target_user=target, **params)
    return params, outcome


@pytest.mark.parametrize("evt_type", list(CATALOG))
def test_each_event_type_writes_one_valid_record(evt_type: str, security_events: Capture) -> None:
    params, outcome = _emit_sample(evt_type)
    row = CATALOG[evt_type]

    assert len(security_events.lines) == 1
    assert security_events.lines[0].endswith(b"\n") and security_events.lines[0].count(b"\n") == 1
    record = security_events.records[0]
    assert check_record(record) == []
    assert record["evt"]["type"] == evt_type
    assert record["evt"]["category"] == row.category
    assert record["evt"]["name"] == (
        "authentication"
        if evt_type.startswith("authn_login_success") or evt_type == "authn_login_fail"
        else evt_type
    )
    expected_outcome = {"success": "success", "failure": "failure", "none": None, "caller": outcome}[
        row.outcome
    ]
    assert record["evt"].get("outcome") == expected_outcome
    assert record["status"] == row.level_for(expected_outcome)
    assert record["status"] in ("info", "warning", "critical")
    assert record["message"].startswith(f"{evt_type}: ")
    assert record["logger"] == {"name": "graffer_secevents"}
    assert record["usr"]["id"] == "7"
    assert record["network"]["client"]["ip"] == "198.51.100.4"
    assert record["secevents"] == {"schema": 1, "writer": record["secevents"]["writer"], "seq": 1}
    for name, value in params.items():
        if row.params[[p.name for p in row.params].index(name)].kind == "secret_id":
            assert record["evt"][name].startswith("anon_") and value not in record["evt"][name]
        else:
            assert record["evt"][name] == value
    if row.target_user:
        assert record["target"] == {"usr": {"id": "99"}}


def test_upload_validation_is_critical_when_it_fails(security_events: Capture) -> None:
    emit("upload_validation", outcome="success", filename="a.png", validator="virusscan")
    emit("upload_validation", outcome="failure", filename="a.exe", validator="virusscan")
    assert [r["status"] for r in security_events.records] == ["info", "critical"]
