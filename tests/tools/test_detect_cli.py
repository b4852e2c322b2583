"""``secevents detect``: signals as a table or JSON, exit codes for CI, mixed logs, custom rules, geo."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

import graffer_secevents as secevents
from graffer_secevents import User
from graffer_secevents._tools.cli import main
from graffer_secevents._tools.rules import RULES
from graffer_secevents.testing import capture_events

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _stamped(records: list[dict[str, Any]], step: float = 1.0) -> list[dict[str, Any]]:
    for i, record in enumerate(records):
        record["timestamp"] = (T0 + timedelta(seconds=step * i)).isoformat().replace("+00:00", ".000000Z")
    return records


def _write(path: Path, records: list[dict[str, Any]], noise: bool = True) -> Path:
    with path.open("wb") as handle:
        if noise:
            handle.write(b"INFO booting worker 1\n\n")
            handle.write(b'{"message": "GET /health 200", "status": "info"}\n')
        for record in records:
            handle.write(orjson.dumps(record) + b"\n")
    return path


@pytest.fixture
def stuffing_log(tmp_path: Path) -> Path:
    """12 failed logins of distinct accounts from one IP (credential stuffing: medium), with other log lines."""
    with capture_events() as events:
        for n in range(12):
            secevents.log_login(
                User(id=100 + n), "failure", "192.0.2.200", exists=True, reason="invalid_credentials"
            )
    return _write(tmp_path / "app.log", _stamped(events.records))


def test_detect_prints_the_signals_as_a_table(
    stuffing_log: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # wide enough for full timestamps
    assert main(["detect", str(stuffing_log)]) == 0  # no --fail-on: listing only
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["rule", "severity", "case", "group", "first", "seen", "last", "seen", "events"]
    assert out[1].split() == [
        "credential_stuffing",
        "medium",
        "credential",
        "stuffing",
        "attempt",
        "network.client.ip=192.0.2.200",
        "2026-03-01",
        "09:00:00Z",
        "2026-03-01",
        "09:00:11Z",
        "12",
    ]
    # Any JSON log is read (the health-check line too: it has no timestamp, so it is counted and skipped).
    summary = " ".join(" ".join(out[2:]).split())  # wrapped between words at the terminal's width
    assert summary.startswith(
        f"1 signal from {len(RULES)} rules; 13 log records read (12 security records) from 1 file; "
        "2 other lines skipped"
    )
    assert "(1 not JSON, 0 JSON but not an object, 1 blank)" in summary
    assert summary.endswith("; 1 records without a readable timestamp skipped")


@pytest.mark.parametrize(("fail_on", "status"), [("info", 1), ("medium", 1), ("high", 0), ("critical", 0)])
def test_fail_on_exits_1_when_a_signal_at_or_above_the_severity_fires(
    stuffing_log: Path, fail_on: str, status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["detect", str(stuffing_log), "--fail-on", fail_on]) == status


def test_detect_json_is_the_signals_and_the_counts(
    stuffing_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["detect", str(stuffing_log), "--format", "json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["records"] == 13
    assert body["security_records"] == 12
    assert body["no_timestamp"] == 1
    assert body["skipped"] == {"not_json": 1, "not_security": 0, "blank": 1}
    [signal] = body["signals"]
    assert signal == {
        "rule_id": "credential_stuffing",
        "rule_name": "[secevents] credential stuffing",
        "severity": "medium",
        "case": "credential stuffing attempt",
        "group": {"network.client.ip": "192.0.2.200"},
        "first_seen": "2026-03-01T09:00:00.000000Z",
        "last_seen": "2026-03-01T09:00:11.000000Z",
        "count": 12,
        "values": {"failed_users": 10.0, "successes": 0.0},
        "reason": "",
        "records": [f"{stuffing_log}:{line}" for line in range(4, 14)],
        "more_records": 2,
    }


def test_detect_reads_a_real_pipe_in_ci(stuffing_log: Path) -> None:
    """``cat app.log | secevents detect - --fail-on medium`` in a subprocess, as a CI step runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "graffer_secevents._tools.cli", "detect", "-", "--fail-on", "medium"],
        input=stuffing_log.read_bytes(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert b"credential_stuffing" in done.stdout


def test_team_rules_replace_the_default_set(
    stuffing_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    team = {
        "name": "Failures from one IP",
        "message": "m",
        "queries": [{"name": "f", "query": "@evt.outcome:failure", "groupByFields": ["@network.client.ip"]}],
        "cases": [{"status": "critical", "condition": "f > 11"}],
        "options": {"evaluationWindow": 300, "keepAlive": 600, "maxSignalDuration": 3600},
    }
    rules = tmp_path / "team.json"
    rules.write_text(json.dumps({"rules": [team]}))
    assert main(["detect", str(stuffing_log), "--rules", str(rules), "--fail-on", "critical"]) == 1
    out = capsys.readouterr().out
    assert "Failures from one IP  critical" in out
    assert "credential_stuffing" not in out


@pytest.mark.parametrize(
    ("rule_json", "message"),
    [
        (
            '{"name": "x", "queries": [{"query": "a"}], "cases": [{"status": "low", "condition": "a > 1 THEN a > 2"}], '
            '"options": {"evaluationWindow": 60}}',
            "THEN",
        ),
        (
            '{"name": "x", "queries": [{"query": "@a:b:c"}], "cases": [{"status": "low", "condition": "a > 1"}], '
            '"options": {"evaluationWindow": 60}}',
            "unescaped ':'",
        ),
        ("[1, 2]", "expected a rule object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_a_rule_the_engine_cannot_evaluate_exits_4_naming_it(
    stuffing_log: Path, tmp_path: Path, rule_json: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "bad.json"
    rules.write_text(rule_json)
    assert main(["detect", str(stuffing_log), "--rules", str(rules)]) == 4
    assert message in capsys.readouterr().err


def test_an_unreadable_log_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(tmp_path / "missing.log")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_an_unknown_fail_on_severity_is_a_usage_error(stuffing_log: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["detect", str(stuffing_log), "--fail-on", "urgent"])
    assert exited.value.code == 2


def test_geo_file_feeds_impossible_travel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with capture_events() as events:
        secevents.log_login(User(id=7), "success", "192.0.2.1")
        secevents.log_login(User(id=7), "success", "192.0.2.3")
    log = _write(tmp_path / "travel.log", _stamped(events.records, step=3600), noise=False)
    geo = tmp_path / "geo.json"
    geo.write_text(
        json.dumps(
            {
                "192.0.2.1": {"lat": 48.8566, "lon": 2.3522, "country": "FR"},
                "192.0.2.3": {"lat": 40.7128, "lon": -74.006, "country": "US"},
            }
        )
    )
    assert main(["detect", str(log), "--geo", str(geo), "--format", "json"]) == 0
    rules = {s["rule_id"] for s in json.loads(capsys.readouterr().out)["signals"]}
    assert "impossible_travel" in rules
    assert main(["detect", str(log), "--format", "json"]) == 0  # without --geo there is no location
    assert json.loads(capsys.readouterr().out)["signals"] == []
    geo.write_text(json.dumps({"192.0.2.1": {"lat": "north"}}))
    assert main(["detect", str(log), "--geo", str(geo)]) == 4
    assert "needs numeric lat and lon" in capsys.readouterr().err
