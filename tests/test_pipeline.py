"""The pipeline: record shape, enrichment, outputs, strict and lenient input, failures of the writer."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import threading
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graffer_secevents as api
from graffer_secevents import EventValidationError, Outcome, User
from graffer_secevents._context import RequestContext, request_context
from graffer_secevents._ip import normalize_ip
from graffer_secevents._tools.schema import check_record
from graffer_secevents.testing import Capture, capture_events

HASHED = re.compile(r"anon_[0-9a-f]{32}")


class DjangoLikeUser:
    """The attributes graffer_secevents reads from a Django user (pk, get_username, email)."""

    is_authenticated = True

    def __init__(self, pk: int, username: str, email: str) -> None:
        self.pk = pk
        self.username = username
        self.email = email

    def get_username(self) -> str:
        return self.username


class FlaskLoginLikeUser:
    is_authenticated = True

    def __init__(self, uid: str) -> None:
        self._uid = uid

    def get_id(self) -> str:
        return self._uid


class Anonymous:
    is_authenticated = False
    pk = None


def test_login_failure_record_has_datadog_standard_attributes(security_events: Capture) -> None:
    api.log_login(
        User(id=42, login="ada@example.com"),
        "failure",
        "203.0.113.7",
        reason="invalid_credentials",
        exists=True,
    )
    record = security_events.assert_emitted(
        "authn_login_fail",
        status="warning",
        evt__name="authentication",
        evt__category="authentication",
        evt__outcome="failure",
        evt__reason="invalid_credentials",
        usr__id="42",
        usr__login=HASHED,
        usr__exists=True,
        network__client__ip="203.0.113.7",
        logger__name="graffer_secevents",
        secevents__schema=1,
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", record["timestamp"])
    assert record["message"] == "authn_login_fail: login failed"


def test_records_are_nested_never_flat_dotted_keys(security_events: Capture) -> None:
    api.log_login(1, "success", "203.0.113.7")
    line = security_events.lines[0]
    assert b'"usr":{"id":"1"}' in line
    assert b'"usr.id"' not in line and b'"evt.' not in line


def test_service_env_version_come_from_dd_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DD_SERVICE", "auth-api")
    monkeypatch.setenv("DD_ENV", "prod")
    monkeypatch.setenv("DD_VERSION", "1.2.3")
    with capture_events() as events:
        api.log_logout(5)
    assert {k: events.records[0][k] for k in ("service", "env", "version")} == {
        "service": "auth-api",
        "env": "prod",
        "version": "1.2.3",
    }


def test_configure_arguments_beat_dd_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DD_SERVICE", "from-env")
    api.configure(service="from-code")
    with capture_events() as events:
        api.log_logout(5)
    assert events.records[0]["service"] == "from-code"
    assert "env" not in events.records[0]


def test_outcome_enum_and_string_are_equivalent(security_events: Capture) -> None:
    api.log_login(1, Outcome.SUCCESS)
    api.log_login(1, "success")
    assert [r["evt"]["type"] for r in security_events.records] == ["authn_login_success"] * 2


def test_successful_login_after_failures_records_retries(security_events: Capture) -> None:
    api.log_login(1, "success", retries=3)
    security_events.assert_emitted("authn_login_successafterfail", evt__retries=3, evt__name="authentication")


@pytest.mark.parametrize(
    ("user", "expected_id"),
    [
        (42, "42"),
        ("u-1", "u-1"),
        (uuid.UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678"),
        (User(id=7), "7"),
        (DjangoLikeUser(3, "ada", "ada@example.com"), "3"),
        (FlaskLoginLikeUser("f-9"), "f-9"),
    ],
)
def test_user_ids_of_every_accepted_kind_are_written_as_strings(
    user: Any, expected_id: str, security_events: Capture
) -> None:
    api.log_access_denied(user, "/admin")
    security_events.assert_emitted("authz_fail", usr__id=expected_id, evt__resource="/admin")


def test_framework_user_object_gives_login_and_email_hashed(security_events: Capture) -> None:
    api.log_login(DjangoLikeUser(3, "ada", "ada@example.com"), "success")
    record = security_events.assert_emitted("authn_login_success", usr__login=HASHED, usr__email=HASHED)
    # Not written in clear anywhere. (A bare substring test failed once: the writer id `7d257ada5a175437`
    # holds "ada" by chance; the login would stand alone, not inside a run of hex digits.)
    assert not re.search(r"(?<![0-9a-f])ada(?![0-9a-f])", security_events.lines[0].decode())
    assert record["usr"]["login"] != record["usr"]["email"]


def test_anonymous_user_object_is_no_user(security_events: Capture) -> None:
    api.log_access_denied(Anonymous(), "/admin")
    assert "usr" not in security_events.records[0]


def test_failed_login_to_unknown_account_uses_processed_login_as_id(security_events: Capture) -> None:
    api.log_login(
        None, "failure", "203.0.113.9", login="ghost@example.com", exists=False, reason="unknown_user"
    )
    record = security_events.assert_emitted("authn_login_fail", usr__exists=False, usr__id=HASHED)
    assert record["usr"]["id"] == record["usr"]["login"]
    assert "ghost" not in security_events.lines[0].decode()


def test_message_never_contains_login_email_or_ip(security_events: Capture) -> None:
    api.log_login(
        User(id=1, login="ada", email="ada@example.com", name="Ada L"), "failure", "203.0.113.7", login="ada"
    )
    message = security_events.records[0]["message"]
    for secret in ("ada", "example.com", "203.0.113.7", "Ada L"):
        assert secret not in message


def test_request_context_fills_ip_http_fields_and_user(security_events: Capture) -> None:
    ctx = RequestContext(
        client_ip="198.51.100.20",
        method="POST",
        path="/login",
        route="/login",
        user_agent="curl/8",
        request_id="req-1",
        status_code=401,
        user=User(id=5),
    )
    with request_context(ctx):
        api.emit("authz_fail", resource="/x")
    security_events.assert_emitted(
        "authz_fail",
        usr__id="5",
        network__client__ip="198.51.100.20",
        http__method="POST",
        http__url_details__path="/login",
        http__route="/login",
        http__useragent="curl/8",
        http__request_id="req-1",
        http__status_code=401,
    )


def test_explicit_arguments_beat_the_request_context(security_events: Capture) -> None:
    with request_context(RequestContext(client_ip="198.51.100.20", user=User(id=5))):
        api.log_access_denied(6, "/x", "192.0.2.1")
    security_events.assert_emitted("authz_fail", usr__id="6", network__client__ip="192.0.2.1")


def test_set_user_outside_a_request_names_the_user(security_events: Capture) -> None:
    def worker() -> None:
        api.set_user(User(id=77))
        api.emit("sensitive_read", object="report")

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    security_events.assert_emitted("sensitive_read", usr__id="77")


def test_ipv4_mapped_ipv6_and_ports_are_normalised(security_events: Capture) -> None:
    api.log_login(1, "success", "::ffff:203.0.113.7")
    api.log_login(1, "success", "[2001:db8::1]:443")
    ips = [r["network"]["client"]["ip"] for r in security_events.records]
    assert ips == ["203.0.113.7", "2001:db8::1"]


_IPV4_LIKE = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.lists(st.integers(0, 999).map(str) | st.just("01") | st.just(""), min_size=3, max_size=5).map(
        ".".join
    ),
    st.tuples(
        st.ip_addresses(v=4).map(str), st.sampled_from([" ", "\t", "\n", ":80", "%eth0", "\x00", "x"])
    ).map("".join),
    st.text(alphabet="0123456789.: \t", max_size=20),
)


@given(text=_IPV4_LIKE)
@settings(max_examples=300, deadline=None)
def test_the_ipv4_fast_path_writes_exactly_what_normalize_ip_returns(text: str) -> None:
    # The pipeline tests a plain IPv4 string inline (inet_pton) before calling normalize_ip: both must agree.
    with capture_events(strict=False) as captured:
        api.log_login(1, "success", text)
    expected = normalize_ip(text)
    record = captured.records[-1]
    assert record.get("network", {}).get("client", {}).get("ip") == expected
    assert ("network.client.ip" in " ".join(record.get("secevents", {}).get("errors", []))) == (
        expected is None
    )


def test_unknown_keyword_arguments_become_context(security_events: Capture) -> None:
    api.emit("authz_fail", user=1, resource="/r", tenant="acme", attempt=2)
    record = security_events.assert_emitted(
        "authz_fail", evt__resource="/r", context__tenant="acme", context__attempt=2
    )
    assert "tenant" not in record["evt"]


# --- strict and lenient ------------------------------------------------------------------------------------


def test_strict_mode_raises_our_error_naming_the_field_and_allowed_values() -> None:
    with capture_events(strict=True) as events, pytest.raises(EventValidationError) as info:
        api.log_login(1, "maybe")
    assert "outcome" in str(info.value) and "'success' or 'failure'" in str(info.value)
    assert events.records == []


def test_strict_mode_rejects_wrong_parameter_types() -> None:
    with capture_events(strict=True), pytest.raises(EventValidationError, match=r"evt\.max_limit"):
        api.log_rate_limited(1, max_limit="many")  # type: ignore[arg-type]


def test_strict_mode_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECEVENTS_STRICT", "1")
    api.configure(output=io.StringIO())
    with pytest.raises(EventValidationError):
        api.log_login(1, "success", "not-an-ip")


@pytest.mark.secevents_lenient
def test_lenient_mode_writes_the_record_and_says_what_changed(security_events: Capture) -> None:
    api.log_login(1, "maybe", "not-an-ip", reason="x" * 5000)
    record = security_events.records[0]
    assert record["evt"]["type"] == "authn_login_fail"  # an unknown outcome is never a success
    assert len(record["evt"]["reason"]) == 1024
    errors = record["secevents"]["errors"]
    assert any(e.startswith("outcome:") for e in errors)
    assert any(e.startswith("network.client.ip:") for e in errors)
    assert any(e.startswith("evt.reason: 5000 characters") for e in errors)
    assert "network" not in record


@pytest.mark.secevents_lenient
def test_lenient_mode_coerces_numeric_text(security_events: Capture) -> None:
    api.log_rate_limited(1, max_limit="10")  # type: ignore[arg-type]
    security_events.assert_emitted("excess_rate_limit_exceeded", evt__max_limit=10)


@pytest.mark.secevents_lenient
def test_unknown_event_type_is_still_written_and_flagged(security_events: Capture) -> None:
    api.emit("authn_logn_fail", user=1)
    record = security_events.records[0]
    assert record["evt"]["type"] == "authn_logn_fail"
    assert record["status"] == "warning"
    assert "not in the catalog" in record["secevents"]["errors"][0]


@pytest.mark.secevents_lenient
def test_fixed_outcome_contradicted_by_caller_is_kept_and_noted(security_events: Capture) -> None:
    api.emit("authz_fail", user=1, outcome="success")
    record = security_events.records[0]
    assert record["evt"]["outcome"] == "failure"
    assert "always 'failure'" in record["secevents"]["errors"][0]


def test_errors_never_quote_free_text_values() -> None:
    with capture_events(strict=False) as events:
        api.log_login(1, "ada@example.com")  # a login passed as the outcome by mistake
    assert "ada@example.com" not in events.lines[0].decode()


# --- outputs -----------------------------------------------------------------------------------------------


def test_default_output_is_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    api.configure(metrics="none")
    api.log_login(1, "success")
    out = capsys.readouterr().out
    assert json.loads(out)["evt"]["type"] == "authn_login_success"


def test_binary_file_output(tmp_path: Any) -> None:
    with open(tmp_path / "events.log", "wb") as handle:
        api.configure(output=handle, metrics="none")
        api.log_login(1, "success")
        api.log_login(2, "success")
    lines = (tmp_path / "events.log").read_bytes().splitlines()
    assert [orjson.loads(line)["usr"]["id"] for line in lines] == ["1", "2"]


def test_logging_output_hands_the_json_to_a_stdlib_logger(caplog: pytest.LogCaptureFixture) -> None:
    api.configure(output="logging", metrics="none")
    with caplog.at_level(logging.INFO, logger="graffer_secevents"):
        api.log_login(1, "failure")
    (entry,) = caplog.records
    assert entry.name == "graffer_secevents" and entry.levelno == logging.WARNING
    assert json.loads(entry.getMessage())["evt"]["outcome"] == "failure"


@pytest.fixture
def fresh_write_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-time stderr warning is per process: start each of these tests as a fresh process would."""
    from graffer_secevents import _delivery

    _delivery._reset_for_tests()


@pytest.mark.usefixtures("fresh_write_failures")
def test_a_failing_writer_loses_the_record_but_not_the_caller(capsys: pytest.CaptureFixture[str]) -> None:
    from graffer_secevents._delivery import dropped

    handle = io.StringIO()
    handle.close()
    api.configure(output=handle, metrics="memory")
    api.log_login(1, "success")
    api.log_login(1, "success")
    assert dropped() == {"closed": 2}
    points = api.get_config().metrics.points  # type: ignore[union-attr]
    assert sum(p.value for p in points if p.name == "secevents.dropped") == 2
    assert {tag for p in points if p.name == "secevents.dropped" for tag in p.tags} == {"reason:closed"}
    assert capsys.readouterr().err.count("could not write a security event") == 1


@pytest.mark.usefixtures("fresh_write_failures")
def test_a_broken_pipe_loses_the_record_but_not_the_caller(capsys: pytest.CaptureFixture[str]) -> None:
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone: every write raises BrokenPipeError
    with os.fdopen(write_end, "wb") as pipe:
        api.configure(output=pipe, metrics="memory")
        api.log_login(1, "failure", "203.0.113.7")
        api.log_logout(1)
        with pytest.raises(BrokenPipeError):
            pipe.close()  # what is still buffered cannot be flushed either
    err = capsys.readouterr().err
    assert err.count("could not write a security event") == 1
    assert "BrokenPipeError" in err


def test_configure_never_touches_the_root_logger_or_structlog() -> None:
    import structlog

    root_handlers = list(logging.getLogger().handlers)
    structlog_config = structlog.get_config()
    api.configure(output="logging", metrics="none")
    api.log_login(1, "success")
    assert logging.getLogger().handlers == root_handlers
    assert structlog.get_config() == structlog_config


# --- concurrency -------------------------------------------------------------------------------------------


def test_threads_keep_their_own_request_context_and_never_interleave(tmp_path: Any) -> None:
    path = tmp_path / "events.log"
    with open(path, "w") as handle:
        api.configure(output=handle, metrics="none")

        def worker(n: int) -> None:
            ctx = RequestContext(client_ip=f"10.0.{n}.1", request_id=f"req-{n}", user=User(id=n))
            with request_context(ctx):
                for _ in range(50):
                    api.log_login(None, "failure", context_blob="x" * 3000)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    lines = path.read_text().splitlines()
    assert len(lines) == 16 * 50
    for line in lines:
        record = json.loads(line)
        n = record["usr"]["id"]
        assert record["network"]["client"]["ip"] == f"10.0.{n}.1"
        assert record["http"]["request_id"] == f"req-{n}"


def test_asyncio_tasks_keep_their_own_request_context(security_events: Capture) -> None:
    async def handler(n: int) -> None:
        with request_context(RequestContext(client_ip=f"10.1.0.{n}", user=User(id=n))):
            await asyncio.sleep(0)
            api.log_login(None, "success")
            await asyncio.sleep(0)
            api.set_user(User(id=n + 1000))
            api.emit("sensitive_read", object="o")

    async def main() -> None:
        await asyncio.gather(*(handler(n) for n in range(1, 40)))

    asyncio.run(main())
    for record in security_events.records:
        n = int(record["network"]["client"]["ip"].rsplit(".", 1)[1])
        expected = n if record["evt"]["type"] == "authn_login_success" else n + 1000
        assert record["usr"]["id"] == str(expected)
    assert len(security_events.records) == 78


def test_every_record_written_validates_against_the_schema(security_events: Capture) -> None:
    api.log_signup(User(id=1, email="a@example.com"), "192.0.2.5")
    api.log_password_reset(None, login="a", exists=False)
    api.log_password_reset(1, stage="complete")
    api.log_mfa_challenge(1, "failure", method="totp")
    api.log_token_created(1, token_id="t", entitlements=["read"])
    api.log_token_revoked(1, token_id="t")
    api.log_privilege_change(1, 2, from_role="user", to_role="admin")
    api.log_admin_action(1, "impersonate", resource="/users/2")
    api.log_user_created(1, User(id=2, login="b"), attributes=["role"])
    api.log_user_deleted(1, 2)
    api.log_input_validation_failed(1, fields=["age"])
    api.log_sensitive_access(1, "payroll", action="update")
    api.log_data_export(1, "customers", record_count=10, export_format="csv")
    api.log_account_locked(1, reason="maxretries")
    api.log_password_change(1, "failure", reason="weak")
    assert len(security_events.records) == 15
    for record in security_events.records:
        assert check_record(record) == [], record


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (
            {"id": 1001, "email": "ada@example.com", "password": "pw-never-read"},
            {"id": "1001", "email": HASHED},
        ),
        ({"pk": "u-7", "id": 3, "username": "ada"}, {"id": "u-7", "login": HASHED}),
        ({"username": "ada", "hashed_password": "$2b$never-read"}, {"id": "ada", "login": HASHED}),
    ],
    ids=["id-and-email", "pk-first", "username-only"],
)
def test_a_user_record_mapping_is_read_by_the_user_protocol_keys(
    security_events: Capture, record: dict[str, Any], expected: dict[str, Any]
) -> None:
    """A user store's dict (fastapi-login's `user_loader`, a database row mapping): `pk`, `id`, `username`,
    `email`, and nothing else, so no password key is ever read."""
    from types import MappingProxyType

    for user in (record, MappingProxyType(record)):
        security_events.clear()
        api.log_login(user, "success")
        security_events.assert_emitted("authn_login_success", **{f"usr__{k}": v for k, v in expected.items()})
    assert "never-read" not in str(security_events.lines)


def test_a_user_record_with_no_identity_is_refused_in_strict_mode_and_noted_otherwise() -> None:
    with capture_events(strict=True), pytest.raises(EventValidationError, match="no pk, id or username key"):
        api.log_login({"name": "Ada", "password": "pw-never-read"}, "success")
    with capture_events(strict=False) as captured:
        api.log_login({"name": "Ada", "password": "pw-never-read"}, "success")
    (record,) = captured.records
    assert "usr" not in record and "no pk, id or username key" in str(record["secevents"]["errors"])
    assert "never-read" not in str(captured.lines)


def test_an_anonymous_user_record_is_no_user(security_events: Capture) -> None:
    api.log_access_denied({"id": 0, "is_authenticated": False}, "/admin")
    assert "usr" not in security_events.records[0]
