"""Gates that can fail: exit 3 when a command reads no security record (`--allow-empty` accepts it),
repeated findings capped with a count, one wording for file errors, help and errors pointing at the
documentation's URL; the statuses documented in the help and docs/cli.md."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import graffer_secevents as secevents
from graffer_secevents._tools import cli
from graffer_secevents._tools.gates import EXIT_ERROR

ROOT = Path(__file__).resolve().parents[2]
DOCS_URL = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Documentation"]


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graffer_secevents._tools.cli", *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def one_record(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import io

    out = io.StringIO()
    secevents.configure(output=out, delivery="sync")
    secevents.log_login(42, "success", "203.0.113.5")
    path = tmp_path_factory.mktemp("logs") / "one.log"
    path.write_text("an application log line\n" + out.getvalue())
    return path


@pytest.mark.parametrize("command", ["validate", "detect", "report"])
def test_no_security_record_exits_3_unless_allowed(command: str, tmp_path: Path, one_record: Path) -> None:
    wrong_log = tmp_path / "nginx.log"
    wrong_log.write_text('127.0.0.1 - - "GET / HTTP/1.1" 200\n{"level": "info", "msg": "started"}\n')
    result = run(command, str(wrong_log))
    assert result.returncode == cli.EXIT_NO_RECORDS == 3
    assert f"secevents {command}: no security record in the input" in result.stderr
    assert f"{DOCS_URL}/cli.md" in result.stderr
    assert run(command, "--allow-empty", str(wrong_log)).returncode == 0
    assert run(command, "-", stdin=b"").returncode == 3  # stdin too
    assert run(command, str(one_record)).returncode == 0


def test_a_binary_file_gives_a_capped_list_of_findings(tmp_path: Path) -> None:
    binary = tmp_path / "rules.bin"
    binary.write_bytes(b"\x00\x01\xfe\xff garbage\n" * 110)
    result = run("rules", "--check", str(binary))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) <= cli.MAX_SAME_FINDING + 2, lines
    assert re.search(r"\.\.\. and 107 more like: .*line N", result.stdout)
    assert lines[-1].endswith(": 110 findings")


@pytest.mark.parametrize("command", [["validate"], ["detect"], ["report"], ["rules", "--check"]])
def test_one_wording_for_an_unreadable_file(command: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.log"
    result = run(*command, str(missing))
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert first == f"secevents {' '.join(command)}: cannot read {missing}: No such file or directory"
    assert f"{DOCS_URL}/cli.md" in result.stderr and "Traceback" not in result.stderr


def test_help_documents_the_exit_statuses_and_the_documentation_url() -> None:
    result = run("--help")
    assert result.returncode == 0
    for status in ("0  success", "1  findings", "2  a usage error", "3  no security record"):
        assert status in result.stdout
    assert f"documentation: {DOCS_URL}" in result.stdout
    assert "docs/index.md" not in result.stdout and "make docs" not in result.stdout
    for command in ("validate", "detect", "report"):
        assert "--allow-empty" in run(command, "--help").stdout


def test_a_usage_error_points_at_the_documentation() -> None:
    result = run("validate", "--no-such-option", "x.log")
    assert result.returncode == 2
    assert f"secevents: see {DOCS_URL}/cli.md" in result.stderr


def test_docs_page_lists_the_same_statuses() -> None:
    page = (ROOT / "docs" / "cli.md").read_text()
    statuses = {int(n) for n in re.findall(r"^\| `(\d)` \|", page, re.M)}
    assert statuses == {cli.EXIT_OK, cli.EXIT_FINDINGS, cli.EXIT_USAGE, cli.EXIT_NO_RECORDS, EXIT_ERROR}
    assert "--allow-empty" in page


def test_the_docs_url_is_the_installed_packages() -> None:
    assert cli.docs_url("cli.md") == f"{DOCS_URL}/cli.md"
