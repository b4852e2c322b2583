"""The ``secevents`` command line, run as a real subprocess: validate, catalog, schema, monitors, demo."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import hcl2
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graffer_secevents as api
from graffer_secevents import CATALOG
from graffer_secevents._metrics import METRIC_NAMES
from graffer_secevents._tools.catalog_doc import catalog_data, render_markdown
from graffer_secevents._tools.cli import ValidationReport, validate_stream
from graffer_secevents._tools.monitors import monitor_metric_names
from graffer_secevents._tools.schema import json_schema
from graffer_secevents.testing import Capture

CLI = [sys.executable, "-m", "graffer_secevents._tools.cli"]
CONSOLE_SCRIPT = Path(sys.executable).with_name("secevents")


def run(*args: str, stdin: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, timeout=timeout, check=False)


def summary(result: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


@pytest.fixture
def records(security_events: Capture) -> list[bytes]:
    """Real records as the library writes them: a few rich ones, then one of every catalog type."""
    user = api.User(id=42, login="ada@example.com", email="ada@example.com", name="Ada")
    api.log_login(
        None, "failure", "203.0.113.7", login="ada@example.com", exists=False, reason="unknown_user"
    )
    api.log_login(user, "success", "198.51.100.10", retries=3, form="web")
    api.log_privilege_change(1, user, from_role="viewer", to_role="admin", ticket="SEC-42", api_token="x")
    api.log_logout(42, "198.51.100.10", session_id="s-1")
    for spec in CATALOG.values():
        outcome = "failure" if spec.outcome.value == "caller" else None
        api.emit(spec.type, user=7, outcome=outcome)
    return security_events.lines


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines))
    return path


def tampered(line: bytes, **changes: Any) -> bytes:
    record = orjson.loads(line)
    for dotted, value in changes.items():
        target = record
        *parents, leaf = dotted.split("__")
        for key in parents:
            target = target[key]
        if value is None:
            del target[leaf]
        else:
            target[leaf] = value
    return orjson.dumps(record)


# --- validate -------------------------------------------------------------------------------------------------


def test_validate_accepts_real_records_and_exits_0(tmp_path: Path, records: list[bytes]) -> None:
    result = run("validate", str(write(tmp_path / "app.log", records)))
    assert result.returncode == 0, result.stdout.decode()
    assert (
        result.stdout.decode()
        .splitlines()[-1]
        .startswith(f"{len(records)} security records: {len(records)} valid, 0 invalid")
    )
    assert result.stderr == b""


def test_validate_reports_each_invalid_record_with_its_line_number_and_exits_1(
    tmp_path: Path, records: list[bytes]
) -> None:
    login_fail = records[0]
    lines = [
        login_fail,
        tampered(login_fail, evt__outcome="success"),  # line 2: a login failure that says success
        tampered(login_fail, evt__type="authn_login_oops"),  # line 3: not in the catalog
        tampered(login_fail, status="error"),  # line 4: not a level
        tampered(login_fail, evt__password="hunter2"),  # line 5: not a parameter of the type
        tampered(login_fail, secevents=None),  # line 6: no schema version
        login_fail,
    ]
    result = run("validate", str(write(tmp_path / "app.log", lines)))
    out = result.stdout.decode()
    assert result.returncode == 1
    name = str(tmp_path / "app.log")
    assert f"{name}:2: authn_login_fail: evt.outcome: 'success', authn_login_fail is always 'failure'" in out
    assert f"{name}:3: authn_login_oops: evt.type: 'authn_login_oops' is not in the catalog" in out
    assert f"{name}:4: authn_login_fail: status:" in out
    assert f"{name}:5: authn_login_fail: evt.password: not a parameter of authn_login_fail" in out
    assert f"{name}:6: authn_login_fail: secevents: Field required" in out
    assert ":1:" not in out
    assert ":7:" not in out
    assert "7 security records: 2 valid, 5 invalid" in out


def test_validate_skips_and_counts_lines_that_are_not_security_records(
    tmp_path: Path, records: list[bytes]
) -> None:
    lines = [
        b"[2026-11-26 10:00:01] INFO Booting worker with pid: 7",
        records[0],
        b"",
        b'{"level": "info", "event": "request_finished", "request_id": "abc"}',  # another library's JSON
        b'["a", "json", "array"]',
        b'[{"evt": {"type": "not checked"}}]',  # JSON, but not an object
        b"Traceback (most recent call last):",
        records[1],
        b"{not json and not a record",
    ]
    result = run("validate", "--format", "json", str(write(tmp_path / "mixed.log", lines)))
    report = summary(result)
    assert result.returncode == 0
    assert report["lines"] == 9
    assert report["records"] == report["valid"] == 2
    assert report["skipped"] == {"blank": 1, "not_json": 3, "not_security": 3}
    assert report["problems"] == []


def test_validate_reads_records_behind_a_log_prefix(tmp_path: Path, records: list[bytes]) -> None:
    """`kubectl logs --timestamps` and `docker compose logs` put text before the JSON."""
    lines = [
        b"2026-11-26T10:00:01.123456789Z " + records[0],
        b"auth-api-1  | " + tampered(records[0], evt__category="web"),
    ]
    result = run("validate", str(write(tmp_path / "k.log", lines)))
    out = result.stdout.decode()
    assert result.returncode == 1
    assert ":2: authn_login_fail: evt.category: 'web', the catalog says 'authentication'" in out
    assert "2 security records: 1 valid, 1 invalid" in out


def test_validate_reports_broken_json_that_looks_like_a_record(tmp_path: Path, records: list[bytes]) -> None:
    lines = [
        records[0][: len(records[0]) // 2],  # a record cut in half (a crashed writer, a log shipper limit)
        b'{"logger": {"name": "graffer_secevents"}, "evt": {"type": "authn_login_fail", "\xff": 1}}',
        b'{"usr.id": "42", "evt.type": "authn_login_fail", "logger.name": "graffer_secevents"}',  # flattened
    ]
    report = summary(run("validate", "--format", "json", str(write(tmp_path / "b.log", lines))))
    problems = {p["line"]: p["problems"] for p in report["problems"]}
    assert report["invalid"] == 3
    assert problems[1][0].startswith("not valid JSON")
    bad_byte = lines[1].index(b"\xff")
    assert problems[2] == [f"not valid UTF-8 (byte {bad_byte} of the line)"]
    assert any("evt.type: Extra inputs are not permitted" in p for p in problems[3])


def test_validate_reads_stdin(records: list[bytes]) -> None:
    result = run("validate", "-", stdin=b"\n".join([b"starting", *records]) + b"\n")
    assert result.returncode == 0
    assert f"{len(records)} security records: {len(records)} valid" in result.stdout.decode()
    bad = run("validate", "-", stdin=tampered(records[0], status="info"))
    assert bad.returncode == 1
    assert bad.stdout.decode().startswith(
        "<stdin>:1: authn_login_fail: status: 'info', the catalog says 'warning'"
    )


def test_validate_of_empty_input_exits_3_unless_allowed_and_says_nothing_was_found() -> None:
    result = run("validate", "-", stdin=b"")
    assert result.returncode == 3  # a gate pointed at the wrong log must fail (docs/cli.md)
    assert "0 security records" in result.stdout.decode()
    assert "no security records found" in result.stdout.decode()
    assert "--allow-empty" in result.stderr.decode()
    allowed = run("validate", "--allow-empty", "--format", "json", "-", stdin=b"")
    assert allowed.returncode == 0
    report = summary(allowed)
    assert report["ok"] is True
    assert report["lines"] == report["records"] == 0


def test_validate_of_a_missing_file_or_a_directory_exits_2_with_a_clear_error(tmp_path: Path) -> None:
    missing = run("validate", str(tmp_path / "nope.log"))
    assert missing.returncode == 2
    assert missing.stderr.decode().startswith(
        f"secevents validate: cannot read {tmp_path / 'nope.log'}: No such file or directory\n"
        "secevents: see https://"
    )
    assert missing.stdout == b""
    directory = run("validate", str(tmp_path))
    assert directory.returncode == 2
    assert b"Traceback" not in directory.stderr
    assert b"cannot read" in directory.stderr


def test_validate_checks_several_files_and_an_unreadable_one_wins_the_exit_status(
    tmp_path: Path, records: list[bytes]
) -> None:
    good = write(tmp_path / "a.log", records[:2])
    bad = write(tmp_path / "b.log", [tampered(records[0], evt__name="login")])
    result = run("validate", "--format", "json", str(good), str(bad), str(tmp_path / "gone.log"))
    report = summary(result)
    assert result.returncode == 2
    assert report["files"] == [str(good), str(bad)]
    assert report["valid"] == 2
    assert [(p["file"], p["line"]) for p in report["problems"]] == [(str(bad), 1)]
    assert report["unreadable"] == [
        {"file": str(tmp_path / "gone.log"), "error": "No such file or directory"}
    ]


def test_validate_json_format_has_a_summary_and_per_line_problems(
    tmp_path: Path, records: list[bytes]
) -> None:
    result = run(
        "validate",
        "--format",
        "json",
        str(write(tmp_path / "x.log", [records[0], tampered(records[0], evt__outcome=None)])),
    )
    report = summary(result)
    assert result.returncode == 1
    assert set(report) == {
        "ok",
        "files",
        "lines",
        "records",
        "valid",
        "invalid",
        "coerced",
        "skipped",
        "problems",
        "coerced_records",
        "unreadable",
    }
    assert report["ok"] is False
    assert report["problems"] == [
        {
            "file": str(tmp_path / "x.log"),
            "line": 2,
            "evt_type": "authn_login_fail",
            "problems": ["evt.outcome: None, authn_login_fail is always 'failure'"],
        }
    ]


@pytest.mark.secevents_lenient
def test_coerced_records_are_valid_but_listed_and_strict_makes_them_invalid(
    tmp_path: Path, security_events: Capture
) -> None:
    api.log_rate_limited(42, "198.51.100.10", max_limit="lots")
    path = write(tmp_path / "c.log", security_events.lines)
    lenient = run("validate", "--format", "json", str(path))
    assert lenient.returncode == 0
    report = summary(lenient)
    assert report["coerced"] == 1
    assert report["coerced_records"][0]["evt_type"] == "excess_rate_limit_exceeded"
    assert report["coerced_records"][0]["errors"][0].startswith("evt.max_limit:")
    verbose = run("validate", "-v", str(path)).stdout.decode()
    assert ":1: excess_rate_limit_exceeded: note: input was coerced: evt.max_limit:" in verbose
    strict = run("validate", "--strict", str(path))
    assert strict.returncode == 1
    assert "secevents.errors: input was coerced" in strict.stdout.decode()


def test_validate_escapes_control_characters_from_the_input(tmp_path: Path, records: list[bytes]) -> None:
    """A hostile key must not drive the reader's terminal (ANSI escapes, title changes)."""
    hostile = tampered(records[0], evt__x="1")
    hostile = hostile.replace(b'"x"', b'"\\u001b]0;pwned\\u0007\\u001b[2J"')
    result = run("validate", str(write(tmp_path / "h.log", [hostile])))
    assert result.returncode == 1
    assert b"\x1b" not in result.stdout
    assert b"\x07" not in result.stdout
    assert "evt.\\x1b]0;pwned\\x07\\x1b[2J: not a parameter" in result.stdout.decode()


def test_validate_does_not_buffer_a_huge_line(tmp_path: Path, records: list[bytes]) -> None:
    huge_record = b'{"logger": {"name": "graffer_secevents"}, "message": "' + b"A" * 300_000 + b'"}'
    huge_text = b"x" * 300_000
    path = write(tmp_path / "huge.log", [huge_record, huge_text, records[0]])
    report = summary(run("validate", "--format", "json", "--max-line-bytes", "65536", str(path)))
    assert report["lines"] == 3
    assert report["valid"] == 1
    assert report["skipped"]["not_json"] == 1
    assert report["problems"][0]["line"] == 1
    assert report["problems"][0]["problems"] == [
        f"line of {len(huge_record) + 1} bytes, over the 65536-byte limit"
    ]


def test_validate_stops_quietly_when_the_reader_goes_away(tmp_path: Path, records: list[bytes]) -> None:
    path = write(tmp_path / "many.log", [tampered(records[0], status="info")] * 20_000)
    with subprocess.Popen(
        [*CLI, "validate", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.read(100)
        proc.stdout.close()  # like `| head -1`
        stderr = proc.stderr.read()
        assert proc.wait(timeout=60) == 1
    assert b"Traceback" not in stderr
    assert b"BrokenPipe" not in stderr


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.binary(max_size=200), st.sampled_from([b"{", b'{"evt": {"type": 1}}', b"{}", b"null"])),
        max_size=20,
    )
)
def test_validate_stream_never_raises_and_accounts_for_every_line(chunks: list[bytes]) -> None:
    data = b"\n".join(chunks)
    report = ValidationReport()
    validate_stream(io.BytesIO(data), "<fuzz>", report, max_line_bytes=64)
    expected_lines = len(data.split(b"\n")) - (1 if data.endswith(b"\n") or not data else 0)
    assert report.lines == expected_lines
    assert report.records + report.blank + report.not_json + report.not_security == report.lines
    assert report.valid + report.invalid == report.records


# --- catalog, schema -------------------------------------------------------------------------------------------


def test_catalog_table_lists_every_type_with_its_columns() -> None:
    wide = {
        **os.environ,
        "COLUMNS": "200",
    }  # every column (narrower terminals: tests/tools/test_terminal_fit.py)
    result = subprocess.run([*CLI, "catalog"], capture_output=True, timeout=60, check=False, env=wide)
    assert result.returncode == 0
    lines = result.stdout.decode().splitlines()
    assert lines[0].split() == ["TYPE", "CATEGORY", "EVT.NAME", "LEVEL", "OUTCOME", "PARAMETERS"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert list(rows) == list(CATALOG)
    assert rows["authn_login_fail"] == [
        "authn_login_fail",
        "authentication",
        "authentication",
        "warning",
        "failure",
        "reason",
    ]
    assert rows["upload_validation"][3:5] == ["info/critical", "caller"]
    assert rows["authn_token_delete"][5:] == ["app_id,", "token_id"]


def test_catalog_json_is_the_whole_catalog() -> None:
    result = run("catalog", "--format", "json")
    data = json.loads(result.stdout)
    assert result.returncode == 0
    assert data == catalog_data()
    assert [row["type"] for row in data] == list(CATALOG)
    login = data[list(CATALOG).index("authn_login_fail")]
    assert login["name"] == "authentication"
    assert login["outcome"] == "failure"
    assert login["params"] == [
        {"name": "reason", "kind": "str", "doc": CATALOG["authn_login_fail"].params[0].doc}
    ]
    assert login["helpers"] == ["log_login"]


def test_catalog_markdown_is_the_docs_page() -> None:
    result = run("catalog", "--format", "markdown")
    assert result.returncode == 0
    assert result.stdout.decode() == render_markdown()


def test_schema_prints_the_json_schema_of_a_record() -> None:
    result = run("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout) == json_schema()


# --- monitors --------------------------------------------------------------------------------------------------


def test_monitors_json_has_four_api_bodies_for_the_service() -> None:
    result = run(
        "monitors", "--service", "auth-api", "--env", "prod", "--notify", "@slack-security", "@pagerduty-auth"
    )
    monitors = json.loads(result.stdout)
    assert result.returncode == 0
    assert len(monitors) == 4
    for monitor in monitors:
        assert {"name", "type", "query", "message", "options"} <= set(monitor)
        assert monitor["type"] == "query alert"
        assert "service:auth-api" in monitor["query"]
        assert "env:prod" in monitor["query"]
        assert monitor["message"].endswith("@slack-security @pagerduty-auth")
    assert monitor_metric_names(monitors) <= METRIC_NAMES


def test_monitors_options_set_the_thresholds_and_window() -> None:
    result = run(
        "monitors",
        "--service",
        "shop",
        "--failure-ratio",
        "0.35",
        "--min-attempts",
        "50",
        "--window",
        "last_1h",
        "--spike-count",
        "500",
        "--unknown-user-count",
        "80",
        "--dropped-count",
        "3",
        "--notify",
        "@a",
        "--notify",
        "@b",
    )
    queries = [m["query"] for m in json.loads(result.stdout)]
    assert result.returncode == 0
    assert all(q.startswith("sum(last_1h):") for q in queries)
    assert queries[0].endswith("49.5) > 0.35")
    assert queries[1].endswith("> 500")
    assert queries[2].endswith("> 80")
    assert queries[3].endswith(">= 3")
    assert all("env:" not in q for q in queries)
    assert json.loads(result.stdout)[0]["message"].endswith("@a @b")


def test_monitors_terraform_parses_as_hcl() -> None:
    result = run(
        "monitors",
        "--service",
        "auth-api",
        "--env",
        "prod",
        "--format",
        "terraform",
        "--notify",
        "@slack-sec",
    )
    assert result.returncode == 0
    parsed = hcl2.loads(result.stdout.decode())
    # python-hcl2 8 keeps the labels' quotes: {"resource": [{'"datadog_monitor"': {'"label"': {...}}}]}
    resources = [body for block in parsed["resource"] for body in block['"datadog_monitor"'].values()]
    assert len(resources) == 4
    for body in resources:
        assert "secevents.login.attempts" in str(body["query"]) or "secevents.dropped" in str(body["query"])
        assert body["monitor_thresholds"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--failure-ratio", "1.5"], "failure_ratio: expected a number strictly between 0 and 1"),
        (["--window", "yesterday"], "window: expected last_<n>m"),
        (["--spike-count", "0"], "spike_count: expected a whole number >= 1"),
        (["--notify", "not a handle"], "notify: expected handles"),
    ],
)
def test_monitors_refuse_bad_options_with_exit_2_and_no_traceback(args: list[str], message: str) -> None:
    result = run("monitors", "--service", "auth-api", *args)
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr.decode().startswith(f"secevents monitors: {message}")


def test_monitors_need_a_service() -> None:
    result = run("monitors")
    assert result.returncode == 2
    assert b"--service" in result.stderr


# --- demo, usage -------------------------------------------------------------------------------------------------


def test_demo_writes_records_that_validate() -> None:
    demo = subprocess.run(
        [str(CONSOLE_SCRIPT), "demo", "--json"], capture_output=True, timeout=60, check=False
    )
    assert demo.returncode == 0
    assert b"secevents.login.attempts" in demo.stderr
    checked = run("validate", "--format", "json", "-", stdin=demo.stdout)
    report = summary(checked)
    assert checked.returncode == 0
    assert report["records"] == report["valid"] == len(demo.stdout.splitlines()) > 10


def test_the_installed_console_script_runs_the_same_command_line() -> None:
    result = subprocess.run([str(CONSOLE_SCRIPT), "--version"], capture_output=True, timeout=60, check=False)
    assert result.returncode == 0
    assert result.stdout.decode().strip() == f"secevents (graffer_secevents) {api.__version__}"


def test_no_or_unknown_command_is_a_usage_error() -> None:
    assert run().returncode == 2
    unknown = run("frobnicate")
    assert unknown.returncode == 2
    assert b"invalid choice" in unknown.stderr
