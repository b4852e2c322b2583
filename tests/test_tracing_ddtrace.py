"""The ddtrace bridges against ddtrace's real tracer: App & API Protection user tracking and log correlation.

Each scenario runs in a fresh interpreter (``tests/tracing/dd_scenarios.py``): importing ddtrace, patching
structlog or Django, enabling AppSec and activating spans are process-wide changes that must not leak into the
rest of the suite. The scenario prints what the log record and the finished service-entry span hold; the tests
assert on that.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from graffer_secevents import CATALOG
from graffer_secevents._bridges import APPSEC_EVENTS, AppSecBridge, build_bridges, otel_span_event

HERE = Path(__file__).parent / "tracing"
HEX32 = re.compile(r"[0-9a-f]{32}")
DECIMAL = re.compile(r"[1-9][0-9]*")


@cache
def run(scenario: str, **env: str) -> Any:
    """Run one scenario in a fresh interpreter (once per worker) and return its JSON result."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "SECEVENTS_", "OTEL_"))}
    environ.update(
        DD_TRACE_AGENT_URL="http://127.0.0.1:9",  # nothing listens: any stray send fails fast
        DD_INSTRUMENTATION_TELEMETRY_ENABLED="false",
        DD_REMOTE_CONFIGURATION_ENABLED="false",
        DD_TRACE_STARTUP_LOGS="false",
        SECEVENTS_HASH_KEY="test-hash-key-of-32-bytes-length",
        SECEVENTS_METRICS="none",
        SECEVENTS_DELIVERY="sync",  # the scenarios read their output right after each call
    )
    environ.update(env)
    result = subprocess.run(
        [sys.executable, str(HERE / "dd_scenarios.py"), scenario],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"scenario {scenario} failed:\n{result.stderr[-4000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def bridged(case: str) -> dict[str, Any]:
    return run("bridged")[case]  # type: ignore[no-any-return]


def the_record(case: dict[str, Any]) -> dict[str, Any]:
    (record,) = case["records"]
    return record  # type: ignore[no-any-return]


def appsec_tags(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if "appsec" in k or k.startswith("usr.")}


# --- user tracking: each bridged event on the service-entry span ------------------------------------------------


def test_login_success_tags_the_entry_span_with_the_logs_processed_values() -> None:
    case = bridged("login_success")
    usr, tags = the_record(case)["usr"], case["tags"]
    assert usr["login"].startswith("anon_")  # hashed by default, in the log...
    assert tags["appsec.events.users.login.success.track"] == "true"
    assert tags["appsec.events.users.login.success.usr.login"] == usr["login"]  # ...and the same on the span
    assert tags["appsec.events.users.login.success.usr.id"] == usr["id"] == "u-1"
    assert tags["appsec.events.users.login.success.usr.email"] == usr["email"]
    assert tags["usr.id"] == "u-1"
    assert tags["appsec.events.users.login.success.mfa"] == "totp"  # caller metadata, as in context.*
    assert tags["_dd.appsec.events.users.login.success.sdk"] == "true"
    # the raw login never reaches the trace (a hex id may hold "ada" by chance)
    assert not re.search(r"(?<![0-9a-f])ada(?![0-9a-f])", json.dumps(tags))


def test_login_failure_for_an_unknown_account_has_the_login_and_exists_false_but_no_user_id() -> None:
    case = bridged("login_fail_unknown")
    usr, tags = the_record(case)["usr"], case["tags"]
    assert usr == {"id": usr["login"], "login": usr["login"], "exists": False}  # the log's stand-in id
    assert tags["appsec.events.users.login.failure.track"] == "true"
    assert tags["appsec.events.users.login.failure.usr.login"] == usr["login"]
    assert tags["appsec.events.users.login.failure.usr.exists"] == "false"
    assert tags["appsec.events.users.login.failure.reason"] == "unknown_user"
    assert "appsec.events.users.login.failure.usr.id" not in tags  # AAP: only the login exists
    assert "usr.id" not in tags


def test_login_failure_for_a_known_account_carries_exists_and_the_user_id() -> None:
    case = bridged("login_fail_known")
    usr, tags = the_record(case)["usr"], case["tags"]
    assert tags["appsec.events.users.login.failure.usr.exists"] == "true"
    assert tags["appsec.events.users.login.failure.usr.id"] == "u-2"
    assert tags["appsec.events.users.login.failure.usr.login"] == usr["login"]
    assert tags["appsec.events.users.login.failure.reason"] == "bad_password"


def test_login_failure_without_exists_leaves_usr_exists_off_the_span_as_off_the_log() -> None:
    case = bridged("login_fail_no_exists")
    assert "exists" not in the_record(case)["usr"]
    assert case["tags"]["appsec.events.users.login.failure.track"] == "true"
    assert "appsec.events.users.login.failure.usr.exists" not in case["tags"]


def test_login_after_failures_is_a_login_success_with_its_retries() -> None:
    tags = bridged("login_successafterfail")["tags"]
    assert tags["appsec.events.users.login.success.track"] == "true"
    assert tags["appsec.events.users.login.success.retries"] == "3"


def test_signup_is_reported_with_the_hashed_login_and_no_extra_event() -> None:
    case = bridged("signup")
    usr, tags = the_record(case)["usr"], case["tags"]
    assert tags["appsec.events.users.signup.track"] == "true"
    assert tags["appsec.events.users.signup.usr.id"] == "u-4"
    assert tags["appsec.events.users.signup.usr.login"] == usr["login"]
    assert not [k for k in tags if "signup_sdk" in k]


def test_signup_metadata_goes_where_ddtrace_files_it() -> None:
    tags = bridged("signup_with_metadata")["tags"]
    assert tags["appsec.events.signup_sdk.plan"] == "pro"


def test_caller_metadata_reaches_the_span_as_the_log_has_it_with_secrets_redacted() -> None:
    case = bridged("login_with_secret_metadata")
    assert the_record(case)["context"]["api_token"] == "[REDACTED]"
    assert case["tags"]["appsec.events.users.login.success.api_token"] == "[REDACTED]"
    assert case["tags"]["appsec.events.users.login.success.nested.a.0"] == "1"
    assert "s3cr3t" not in json.dumps(case["tags"])


def test_password_reset_request_for_an_unknown_account_is_users_password_reset() -> None:
    case = bridged("reset_request_unknown")
    usr, tags = the_record(case)["usr"], case["tags"]
    assert tags["appsec.events.users.password_reset.track"] == "true"
    assert tags["appsec.events.users.password_reset.stage"] == "request"
    # AAP: usr.id must be present even for an account that does not exist; the processed login stands in.
    assert tags["appsec.events.users.password_reset.usr.id"] == usr["login"]
    assert tags["appsec.events.users.password_reset.usr.login"] == usr["login"]
    assert tags["appsec.events.users.password_reset.exists"] == "false"


def test_password_reset_completion_is_users_password_reset_with_its_stage() -> None:
    tags = bridged("reset_complete")["tags"]
    assert tags["appsec.events.users.password_reset.stage"] == "complete"
    assert tags["appsec.events.users.password_reset.usr.id"] == "u-5"
    assert tags["appsec.events.users.password_reset.exists"] == "true"


def test_user_deletion_reports_the_deleted_account_and_names_the_acting_admin() -> None:
    case = bridged("user_deleted")
    record, tags = the_record(case), case["tags"]
    assert tags["appsec.events.users.delete.track"] == "true"
    assert tags["appsec.events.users.delete.usr.id"] == record["target"]["usr"]["id"] == "u-6"
    assert tags["appsec.events.users.delete.usr.login"] == record["target"]["usr"]["login"]
    assert tags["usr.id"] == "admin-1"  # the request's user, who acted


def test_data_export_is_a_sensitive_activity_of_the_request_user() -> None:
    case = bridged("data_export")
    usr, tags = the_record(case)["usr"], case["tags"]
    assert tags["appsec.events.activity.sensitive.track"] == "true"
    assert tags["appsec.events.activity.sensitive.name"] == "data_export"
    assert tags["appsec.events.activity.sensitive.record_count"] == "10"
    assert tags["usr.id"] == "u-7"
    assert tags["usr.email"] == usr["email"]  # processed, as in the log
    assert tags["_dd.appsec.usr.login"] == usr["login"]


def test_the_request_user_is_named_on_the_trace_without_forcing_it_to_be_kept() -> None:
    case = bridged("authz_fail_request_user")
    tags = case["tags"]
    assert tags["usr.id"] == "u-7"
    assert not [k for k in tags if k.startswith("appsec.events.")]  # no AAP rule counts authz_fail
    assert case["priority"] != 2


@pytest.mark.parametrize("case", ["authz_fail_other_user", "lockout_anonymous_request", "plain_span"])
def test_a_user_who_is_not_the_request_user_is_never_put_on_the_trace(case: str) -> None:
    """A locked account or an explicit other user is the subject, not the requester: AAP could otherwise pin
    (and block) an attacker's request on the victim."""
    assert appsec_tags(bridged(case)["tags"]) == {}


@pytest.mark.parametrize(
    "case",
    [
        "login_success",
        "login_fail_unknown",
        "login_fail_known",
        "signup",
        "reset_request_unknown",
        "reset_complete",
        "user_deleted",
        "data_export",
    ],
)
def test_every_aap_event_forces_the_trace_to_be_kept(case: str) -> None:
    tags = bridged(case)["tags"]
    assert bridged(case)["priority"] == 2  # USER_KEEP
    assert tags["_dd.p.dm"] == "-5"  # decided by AppSec


# --- log correlation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["login_success", "login_fail_unknown", "authz_fail_other_user"])
def test_the_log_carries_exactly_the_tracers_correlation_ids(case: str) -> None:
    result = bridged(case)
    record = the_record(result)
    correlation = result["correlation"]
    assert record["dd"] == {"trace_id": correlation["dd.trace_id"], "span_id": correlation["dd.span_id"]}
    assert HEX32.fullmatch(record["dd"]["trace_id"])  # 128-bit ids, 32 hex, as ddtrace logs them
    assert DECIMAL.fullmatch(record["dd"]["span_id"])
    assert record["dd"]["span_id"] != result["root_span_id"]  # the active (child) span, not the root
    assert "trace_id" not in record and "span_id" not in record  # no OpenTelemetry-style duplicates


def test_64_bit_trace_ids_are_written_in_decimal_like_ddtrace_writes_them() -> None:
    result = run("trace_id_64_bit", DD_TRACE_128_BIT_TRACEID_GENERATION_ENABLED="false")
    dd = the_record(result)["dd"]
    assert DECIMAL.fullmatch(dd["trace_id"])
    assert dd == {
        "trace_id": result["correlation"]["dd.trace_id"],
        "span_id": result["correlation"]["dd.span_id"],
    }


def test_ddtrace_structlog_and_logging_injection_neither_duplicate_nor_conflict() -> None:
    result = run("structlog_patched")
    record = the_record(result)
    (app_line,) = result["app_lines"]
    # The application's own structlog lines get ddtrace's flat keys; ours keep one nested "dd" object...
    assert app_line["dd.trace_id"] == record["dd"]["trace_id"]
    assert app_line["dd.span_id"] == record["dd"]["span_id"]
    assert set(record["dd"]) == {"trace_id", "span_id"}
    assert not [key for key in record if key.startswith("dd.")]
    # ...and through output="logging", ddtrace's LogRecord attributes agree with the JSON we hand it.
    stdlib = result["stdlib"]
    assert stdlib["message"]["dd"] == {
        "trace_id": stdlib["record_dd_trace_id"],
        "span_id": stdlib["record_dd_span_id"],
    }
    assert stdlib["record_dd_trace_id"] == stdlib["correlation"]["dd.trace_id"]


def test_a_distributed_context_without_a_local_span_gives_ids_but_tags_nothing() -> None:
    result = run("context_only")
    record = the_record(result)
    assert record["dd"] == {
        "trace_id": result["correlation"]["dd.trace_id"],
        "span_id": result["correlation"]["dd.span_id"],
    }
    assert record["dd"]["trace_id"] == "0af7651916cd43dd8448eb211c80319c"  # the caller's W3C trace id
    assert result["ddtrace_warnings"] == []
    assert result["sdk_imported"] is False


# --- nothing broken without a span, without ddtrace, on errors ------------------------------------------------


def test_without_an_active_span_records_have_no_ids_and_ddtrace_stays_quiet() -> None:
    result = run("no_span")
    assert len(result["records"]) == 5
    assert not [r for r in result["records"] if "dd" in r or "trace_id" in r]
    assert result["ddtrace_warnings"] == []  # no "No root span" warning per event
    assert result["sdk_imported"] is False  # the SDK is imported only when there is a span to tag
    assert result["finished_traces"] == 0


def test_with_ddtrace_absent_events_are_written_and_nothing_complains() -> None:
    result = run("ddtrace_absent")
    assert [r["evt"]["type"] for r in result["records"]] == [
        "authn_login_success",
        "authn_login_fail",
        "authn_password_reset_request",
    ]
    assert result["warnings"] == []


def test_appsec_tracking_off_tags_nothing_and_keeps_correlation() -> None:
    result = run("appsec_tracking_off")
    for case in result.values():
        assert appsec_tags(case["tags"]) == {}
        assert the_record(case)["dd"]["trace_id"] == case["correlation"]["dd.trace_id"]


def test_privacy_modes_apply_to_the_span_as_to_the_log() -> None:
    result = run("privacy_modes")
    login = result["login_success"]
    usr, tags = the_record(login)["usr"], login["tags"]
    assert usr["id"].startswith("anon_") and usr["login"] == "ada"
    assert tags["usr.id"] == tags["appsec.events.users.login.success.usr.id"] == usr["id"]
    assert tags["appsec.events.users.login.success.usr.login"] == "ada"
    request_user = result["authz_fail_request_user"]
    assert request_user["tags"]["usr.id"] == the_record(request_user)["usr"]["id"]
    assert "usr.email" not in request_user["tags"]  # dropped in the log, absent from the trace


def test_a_failing_sdk_call_never_reaches_the_caller_and_is_reported_once() -> None:
    result = run("bridge_errors")
    for case in ("broken", "broken_again"):
        assert the_record(result[case])["evt"]["type"] == "authn_login_success"
        assert appsec_tags(result[case]["tags"]) == {}
    (warning,) = result["warnings"]
    assert "RuntimeError" in warning and "authn_login_success" in warning


def test_ddtraces_blocking_exception_propagates_after_the_record_is_written() -> None:
    result = run("bridge_errors")
    assert result["blocking_propagated"] is True
    assert [r["evt"]["type"] for r in result["records_before_block"]] == ["authn_login_success"]


def test_ddtrace_ids_win_over_opentelemetry_and_the_otel_span_gets_no_event() -> None:
    result = run("otel_and_ddtrace")
    record = the_record(result)
    assert record["dd"]["trace_id"] == result["correlation"]["dd.trace_id"]
    assert "trace_id" not in record
    assert result["otel_events"] == [[]]


# --- AppSec on: Django auto-instrumentation, WAF blocking --------------------------------------------------------


def test_with_djangos_auto_instrumentation_on_the_bridge_leaves_logins_to_ddtrace() -> None:
    """A real login through django.contrib.auth under ddtrace.auto with AppSec on: ddtrace reports it; our SDK
    call would only overwrite half its tags, so the bridge stands back; other AAP events are still ours."""
    result = run("django_auto", DD_APPSEC_ENABLED="true")
    assert result["ddtrace_reports_logins"] is True
    for case, event in (("login_success", "success"), ("login_failure", "failure")):
        tags = result[case]["tags"]
        assert tags[f"appsec.events.users.login.{event}.track"] == "true"
        assert tags[f"_dd.appsec.events.users.login.{event}.auto.mode"] == "identification"
        assert f"_dd.appsec.events.users.login.{event}.sdk" not in tags  # no second, SDK-mode event
        assert the_record(result[case])["evt"]["outcome"] == event  # the log record is written all the same
    reset = result["reset"]
    assert reset["tags"]["appsec.events.users.password_reset.usr.login"] == the_record(reset)["usr"]["login"]


def test_with_djangos_auto_instrumentation_disabled_the_bridge_reports_logins() -> None:
    result = run("django_auto", DD_APPSEC_ENABLED="true", DD_APPSEC_AUTO_USER_INSTRUMENTATION_MODE="disabled")
    assert result["ddtrace_reports_logins"] is False
    success = result["login_success"]
    tags = success["tags"]
    assert tags["_dd.appsec.events.users.login.success.sdk"] == "true"
    assert tags["appsec.events.users.login.success.usr.login"] == the_record(success)["usr"]["login"]
    failure = result["login_failure"]["tags"]
    assert failure["appsec.events.users.login.failure.usr.exists"] == "true"


def test_appsec_blocks_a_denied_request_user_through_the_bridge() -> None:
    result = run(
        "flask_blocking",
        DD_APPSEC_ENABLED="true",
        DD_APPSEC_RULES=str(HERE / "block_user_rules.json"),
    )
    allowed, blocked = result["u-ok"], result["blocked-user"]
    assert allowed["status"] == 200 and allowed["body"] == "exported"
    assert blocked["status"] == 403  # BlockingException went through the pipeline to ddtrace's Flask layer
    assert blocked["tags"]["appsec.blocked"] == "true"
    assert blocked["tags"]["usr.id"] == "blocked-user"
    assert the_record(blocked)["evt"]["type"] == "data_export"  # written before the block


# --- the table and the wiring (in-process, no tracer needed) ------------------------------------------------------


def test_the_aap_table_names_only_catalog_types_and_covers_logins_and_signup() -> None:
    assert set(APPSEC_EVENTS) <= set(CATALOG)
    logins = {t for t, spec in CATALOG.items() if spec.login_attempt}
    assert logins <= set(APPSEC_EVENTS)
    assert APPSEC_EVENTS["user_signup"].call == "signup"
    assert {row.name for row in APPSEC_EVENTS.values()} <= {
        "users.login.success",
        "users.login.failure",
        "users.signup",
        "users.password_reset",
        "users.delete",
        "activity.sensitive",
    }  # only the names AAP's rules count


def test_configure_installs_the_bridges_it_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    import graffer_secevents as api

    kinds = [type(b) if isinstance(b, AppSecBridge) else b for b in api.configure().bridges]
    assert kinds == [AppSecBridge, otel_span_event]
    assert api.configure(appsec_tracking=False, otel_span_events=False).bridges == ()
    monkeypatch.setenv("SECEVENTS_APPSEC_TRACKING", "false")
    monkeypatch.setenv("SECEVENTS_OTEL_SPAN_EVENTS", "off")
    assert api.configure(reset=True).bridges == ()  # from the environment, not the call before
    with pytest.raises(api.ConfigurationError, match="otel_span_events: expected a boolean"):
        api.configure(otel_span_events="sometimes")  # type: ignore[arg-type]


def test_build_bridges_orders_appsec_before_otel() -> None:
    from graffer_secevents._privacy import Privacy

    bridges = build_bridges(Privacy(None, "k"), appsec_tracking=True, otel_span_events=True)
    assert isinstance(bridges[0], AppSecBridge) and bridges[1] is otel_span_event
