"""Any JSON logs, wherever they are: files, directories, gzip, a Datadog log archive, stdin; and Datadog's own
default rules (from the Terraform provider's public test recordings) through `rules --check` and the engine.

The recordings are Datadog's content, not ours: the repository does not ship them. The tests that read them run
when `SECEVENTS_DATADOG_DEFAULT_RULES` names a JSON file of them (`{"source": ..., "rules": [...]}`, the rules as
the provider's `TestAccDatadogSecurityMonitoringDefaultRule_*` cassettes carry them), and are skipped otherwise."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from graffer_secevents._tools.cli import main
from graffer_secevents._tools.rule_check import check_rule, check_rules, engine_problems
from graffer_secevents.detect import evaluate

FIXTURE = Path(os.environ.get("SECEVENTS_DATADOG_DEFAULT_RULES", "/nonexistent/datadog_default_rules.json"))
needs_default_rules = pytest.mark.skipif(
    not FIXTURE.is_file(), reason="set SECEVENTS_DATADOG_DEFAULT_RULES to a file of Datadog's default rules"
)
T0 = datetime(2026, 4, 2, 13, 0, tzinfo=UTC)


def _when(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _archive_entry(seconds: float, ip: str, user: str) -> dict[str, Any]:
    """One log as a Datadog log archive stores it: reserved fields at the top, the rest under `attributes`."""
    return {
        "_id": f"AY{int(seconds)}{user}",
        "date": _when(seconds),
        "host": "web-1",
        "service": "shop",
        "source": "python",
        "status": "info",
        "message": "login failed",
        "tags": ["env:prod", "source:python"],
        "attributes": {
            "evt": {"name": "authentication", "outcome": "failure"},
            "usr": {"id": user},
            "network": {"client": {"ip": ip}},
        },
    }


def _stuffing_rule() -> dict[str, Any]:
    return {
        "name": "failing accounts by IP",
        "message": "m",
        "queries": [
            {
                "query": "service:shop env:prod @evt.outcome:failure",
                "aggregation": "cardinality",
                "distinctFields": ["@usr.id"],
                "groupByFields": ["@network.client.ip"],
            }
        ],
        "cases": [{"status": "high", "condition": "a >= 10"}],
        "options": {"evaluationWindow": 300, "keepAlive": 3600, "maxSignalDuration": 86400},
    }


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """Two hours of a Datadog log archive (`dt=/hour=/archive_*.json.gz`): 12 accounts failing from one IP
    in the second hour, background failures from other IPs in both."""
    root = tmp_path / "archive"
    for hour in (13, 14):
        folder = root / "dt=20260402" / f"hour={hour}"
        folder.mkdir(parents=True)
        base = (hour - 13) * 3600
        entries = [_archive_entry(base + 60 * n, f"198.51.100.{n}", f"u{n}") for n in range(20)]
        if hour == 14:
            entries += [_archive_entry(base + 1000 + n, "203.0.113.66", f"victim{n}") for n in range(12)]
        entries.sort(key=lambda e: e["date"])
        with gzip.open(folder / f"archive_{hour}0000.0000.AbCdEf.json.gz", "wb") as handle:
            handle.write(b"".join(orjson.dumps(e) + b"\n" for e in entries))
    return root


def test_detect_reads_a_directory_of_gzip_archive_files(
    archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([_stuffing_rule()]))
    assert main(["detect", str(archive), "--rules", str(rules), "--format", "json", "--fail-on", "high"]) == 1
    body = json.loads(capsys.readouterr().out)
    assert (body["files"], body["records"], body["no_timestamp"]) == (2, 52, 0)
    [signal] = body["signals"]
    assert signal["group"] == {"network.client.ip": "203.0.113.66"}
    assert signal["first_seen"] == _when(3600 + 1000).replace("Z", "000Z")
    assert signal["values"] == {"a": 10.0}
    assert signal["records"][0].endswith(
        "hour=14/archive_140000.0000.AbCdEf.json.gz:18"
    )  # 17 background logs precede it


def test_detect_reads_gzip_and_plain_lines_from_stdin(archive: Path, tmp_path: Path) -> None:
    """`zcat`-free: the gzip bytes of an archive file piped in, in a real subprocess, as a CI step runs it."""
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([_stuffing_rule()]))
    [hour14] = sorted(archive.glob("dt=*/hour=14/*.json.gz"))
    for payload in (hour14.read_bytes(), gzip.decompress(hour14.read_bytes())):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "graffer_secevents._tools.cli",
                "detect",
                "-",
                "--rules",
                str(rules),
                "--explain",
            ],
            input=payload,
            capture_output=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        out = done.stdout.decode()
        assert "203.0.113.66" in out
        assert "values when it opened: a=10" in out
        assert "<stdin>:18" in out


def test_rules_run_over_cloudtrail_records_not_only_ours() -> None:
    """A CloudTrail file (`{"Records": [...]}`) and a rule on its own attributes: the engine reads any JSON."""
    trail = {
        "Records": [
            {
                "eventTime": "2026-04-02T13:00:00Z",
                "eventName": "StopLogging",
                "eventSource": "cloudtrail.amazonaws.com",
                "userIdentity": {"arn": "arn:aws:iam::1:user/mallory"},
            },
            {
                "eventTime": "2026-04-02T13:01:00Z",
                "eventName": "DescribeTrails",
                "eventSource": "cloudtrail.amazonaws.com",
                "userIdentity": {"arn": "arn:aws:iam::1:user/alice"},
            },
        ]
    }
    import io

    from graffer_secevents._tools.detect.loading import LineCounts, read_records

    records = list(read_records(io.BytesIO(orjson.dumps(trail) + b"\n"), LineCounts()))
    stopped = {
        "name": "trail stopped",
        "message": "m",
        "queries": [{"query": "@eventName:StopLogging", "groupByFields": ["@userIdentity.arn"]}],
        "cases": [{"status": "high", "condition": "a > 0"}],
        "options": {"evaluationWindow": 300, "keepAlive": 300, "maxSignalDuration": 300},
    }
    [signal] = evaluate([stopped], records)
    assert signal.group == {"userIdentity.arn": "arn:aws:iam::1:user/mallory"}


def _default_rules() -> list[dict[str, Any]]:
    document = json.loads(FIXTURE.read_text())
    assert document["source"].startswith("DataDog/terraform-provider-datadog@")
    return document["rules"]


@needs_default_rules
def test_datadogs_default_rules_pass_the_datadog_checks() -> None:
    """Every default rule Datadog's API returned passes the checks `rules --check` and `detect` share:
    unnamed queries (`a > 0`), `customQueryExtension`, `instantaneousBaselineTimeoutMinutes`, `THEN`,
    the deprecated `metric`, the API's own fields."""
    for index, rule in enumerate(_default_rules()):
        assert check_rule(rule, path=f"$[{index}]") == [], rule["name"]


@needs_default_rules
def test_datadogs_default_rules_are_evaluated_or_refused_naming_the_construct() -> None:
    rules = _default_rules()
    runnable = [rule for rule in rules if not engine_problems(rule)]
    refused = {rule["name"]: engine_problems(rule)[0].message for rule in rules if engine_problems(rule)}
    assert len(runnable) == 73 and len(refused) == 11
    constructs = (
        "anomaly_detection",
        "THEN",
        "thirdPartyCases",
        "signal_correlation",
        "application_security",
        "host:",
    )
    for name, message in refused.items():
        assert any(c in message for c in constructs), (name, message)
    # The 73 run over CloudTrail-shaped records without an error (the engine evaluates every one of them).
    record = {"eventTime": "2026-04-02T13:00:00Z", "source": "cloudtrail", "userIdentity": {"arn": "x"}}
    assert evaluate(runnable, [record]) == []
    # `rules --check` lists exactly the refused ones, naming the construct.
    findings = check_rules(json.dumps(rules))
    assert {f.rule for f in findings} == set(refused)


def test_a_misspelt_key_is_refused_never_silently_lumped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`groupByField` (a typo for `groupByFields`) used to put every user in one group: now both commands
    refuse it and name it."""
    rule = _stuffing_rule()
    rule["queries"][0]["groupByField"] = rule["queries"][0].pop("groupByFields")
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([rule]))
    log = tmp_path / "x.log"
    log.write_text("{}\n")
    assert main(["detect", str(log), "--rules", str(rules)]) == 4
    assert "queries[0].groupByField: unknown field" in capsys.readouterr().err
    assert main(["rules", "--check", str(rules)]) == 1
    assert "groupByField" in capsys.readouterr().out


@needs_default_rules
def test_the_default_rules_through_both_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`rules --check` over the recorded file lists the 11 rules the engine refuses, one line each naming the
    construct (exit 1); `detect` with the 73 others replays a CloudTrail log (exit 0), and with all of them
    refuses before reading a record (exit 3), naming the first refused rule."""
    assert main(["rules", "--check", str(FIXTURE)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].endswith(": 11 findings")
    assert len(lines) == 12
    assert all("the replay engine cannot evaluate it: " in line for line in lines[:-1])
    runnable = [rule for rule in _default_rules() if not engine_problems(rule)]
    rules = tmp_path / "runnable.json"
    rules.write_text(json.dumps({"rules": runnable}))
    trail = tmp_path / "trail.json"
    trail.write_text(
        json.dumps({"Records": [{"eventTime": "2026-04-02T13:00:00Z", "eventName": "StopLogging"}]})
    )
    assert main(["detect", str(trail), "--rules", str(rules), "--format", "json"]) == 0
    disabled = sum(1 for rule in runnable if rule.get("isEnabled") is False)
    assert json.loads(capsys.readouterr().out)["rules"] == 73 - disabled
    assert main(["detect", str(trail), "--rules", str(FIXTURE)]) == 4
    assert "anomaly_detection" in capsys.readouterr().err
