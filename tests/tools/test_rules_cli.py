"""``secevents rules`` and ``secevents rules --check`` as a real subprocess: outputs, exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_terraform import parse_hcl

from graffer_secevents._tools.rules import RULES, build_rules

CLI = [sys.executable, "-m", "graffer_secevents._tools.cli", "rules"]


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], input=stdin.decode() if stdin else None, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip


def test_rules_json_is_the_rule_set_and_passes_check(tmp_path: Path) -> None:
    result = run("--service", "auth-api", "--env", "prod", "--set", "brute_force.failures=20")
    assert result.returncode == 0, result.stderr
    rules = json.loads(result.stdout)
    assert rules == build_rules(service="auth-api", env="prod", brute_force__failures=20)
    path = tmp_path / "rules.json"
    path.write_text(result.stdout)
    check = run("--check", str(path))
    assert (check.returncode, check.stdout) == (0, f"{path}: ok\n")


def test_rules_terraform_and_terraform_json_for_everything() -> None:
    hcl = run("--what", "all", "--format", "terraform", "--env", "prod")
    assert hcl.returncode == 0, hcl.stderr
    parsed = parse_hcl(hcl.stdout)
    assert set(parsed) == {
        "datadog_security_monitoring_rule",
        "datadog_logs_metric",
        "datadog_dashboard_json",
    }
    assert len(parsed["datadog_security_monitoring_rule"]) == len(RULES)
    tf_json = run("--what", "all", "--format", "terraform-json", "--env", "prod")
    assert tf_json.returncode == 0, tf_json.stderr
    resources = json.loads(tf_json.stdout)["resource"]
    assert {kind: set(v) for kind, v in resources.items()} == {kind: set(v) for kind, v in parsed.items()}


@pytest.mark.parametrize(("what", "key"), [("metrics", "data"), ("dashboard", "widgets")])
def test_rules_json_for_metrics_and_the_dashboard(what: str, key: str) -> None:
    result = run("--what", what)
    assert result.returncode == 0, result.stderr
    value = json.loads(result.stdout)
    assert key in (value[0] if isinstance(value, list) else value)


def test_only_picks_rules() -> None:
    result = run("--only", "token_reuse", "--only", "mass_signup")
    assert [r["name"] for r in json.loads(result.stdout)] == [
        "[secevents] refresh-token reuse",
        "[secevents] mass signups from one IP",
    ]


def test_check_reports_findings_with_exit_1(tmp_path: Path) -> None:
    (rule,) = build_rules(only=["brute_force"])
    rule["options"]["evaluationWindow"] = 7200
    rule["cases"][0]["condition"] = "failure >= 10"
    path = tmp_path / "team.json"
    path.write_text(json.dumps([rule]))
    result = run("--check", str(path))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{path}: [secevents] brute force on one account: $[0].options.keepAlive: evaluationWindow (7200) must "
        "not exceed keepAlive (3600)",
        f"{path}: [secevents] brute force on one account: $[0].cases[0].condition: refers to failure, not a "
        "query name (queries: failures)",
        f"{path}: 2 findings",
    ]
    as_json = run("--check", "-", "--format", "json", stdin=path.read_bytes())
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["file"] == "<stdin>"
    assert report["ok"] is False
    assert [f["path"] for f in report["findings"]] == ["$[0].options.keepAlive", "$[0].cases[0].condition"]


@pytest.mark.parametrize(
    "args",
    [
        ("--check", "/nonexistent/rules.json"),
        ("--set", "brute_force.failures=0"),
        ("--set", "failures"),
        ("--only", "nope"),
        ("--service", "two words"),
        ("--what", "everything"),
        ("--format", "yaml"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.strip()
    assert "Traceback" not in result.stderr
