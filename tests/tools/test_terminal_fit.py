"""A terminal that fits: `detect`, `report`, `catalog`, `doctor` and `--help` at COLUMNS=80 and 100 write no
line wider than the terminal and never break a value; colour only on a terminal, never with NO_COLOR."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import graffer_secevents as secevents

SECEVENTS = Path(sys.executable).parent / "secevents"
ANSI = "\x1b["


@pytest.fixture(scope="module")
def attack_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = io.StringIO()
    secevents.configure(output=out, delivery="sync")
    for n in range(6):
        secevents.log_login(
            1001,
            "failure",
            "203.0.113.66",
            login="ada@example.com",
            exists=True,
            reason="invalid_credentials",
            attempt=n,
        )
    secevents.log_login(1001, "success", "203.0.113.66")
    for n in range(12):
        secevents.log_login(
            None, "failure", "192.0.2.200", login=f"user{n}@example.org", exists=False, reason="unknown_user"
        )
    secevents.log_access_denied(7, "/admin/users", "198.51.100.2")
    # Spread over 7 seconds, as the demo's records are (its chart once had 4 columns)
    records = [orjson.loads(line) for line in out.getvalue().splitlines()]
    for n, record in enumerate(records):
        record["timestamp"] = f"2026-03-01T09:00:{n * 0.35:06.3f}Z"
    path = tmp_path_factory.mktemp("logs") / "attack.log"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def run(*args: str, columns: int, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in {"NO_COLOR", "TERM"}}
    return subprocess.run(
        [str(SECEVENTS), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**base, "COLUMNS": str(columns), **env},
    )


COMMANDS = [
    ["detect", "{log}"],
    ["report", "{log}"],
    ["catalog"],
    ["doctor"],
    ["--help"],
    ["detect", "--help"],
]


@pytest.mark.parametrize("columns", [80, 100])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c).replace("{log}", "LOG"))
def test_no_line_is_wider_than_the_terminal(attack_log: Path, command: list[str], columns: int) -> None:
    result = run(*(a.format(log=attack_log) for a in command), columns=columns, SECEVENTS_METRICS="none")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines
    too_wide = [line for line in lines if len(line) > columns]
    assert too_wide == []
    assert ANSI not in result.stdout  # not a terminal


@pytest.mark.parametrize("columns", [80, 100])
def test_signal_values_are_never_broken(attack_log: Path, columns: int) -> None:
    out = run("detect", str(attack_log), columns=columns).stdout
    assert "network.client.ip=192.0.2.200" in out and "usr.id=1001" in out
    assert "brute_force_success" in out and "credential_stuffing" in out


@pytest.mark.parametrize("columns", [80, 100])
def test_catalog_values_are_never_broken(columns: int) -> None:
    from graffer_secevents._catalog import CATALOG

    out = run("catalog", columns=columns).stdout
    words = set(out.split())
    assert set(CATALOG) <= words  # every type whole
    assert {p.name for spec in CATALOG.values() for p in spec.params} <= {w.rstrip(",") for w in words}


def test_the_report_chart_uses_the_width(attack_log: Path) -> None:
    narrow = run("report", str(attack_log), columns=80).stdout.splitlines()
    wide = run("report", str(attack_log), columns=160).stdout.splitlines()
    chart = [line for line in narrow if "│" in line]
    wide_chart = [line for line in wide if "│" in line]
    assert len(chart[0]) > 40  # the events took under a second: sub-second columns, not 4 of them
    assert len(wide_chart[0]) > len(chart[0])


def on_a_terminal(args: list[str], **env: str) -> str:
    primary, secondary = pty.openpty()
    base = {k: v for k, v in os.environ.items() if k not in {"NO_COLOR", "TERM"}}
    process = subprocess.Popen(
        [str(SECEVENTS), *args],
        stdout=secondary,
        stderr=subprocess.PIPE,
        env={**base, "COLUMNS": "100", **env},
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.communicate(timeout=60)
    os.close(primary)
    return b"".join(chunks).decode()


def test_colour_on_a_terminal_for_severity(attack_log: Path) -> None:
    drawn = on_a_terminal(["detect", str(attack_log)])
    assert "\x1b[1;31mhigh" in drawn  # brute_force_success
    assert "\x1b[33mmedium" in drawn


def test_no_colour_with_no_color_on_a_terminal(attack_log: Path) -> None:
    drawn = on_a_terminal(["detect", str(attack_log)], NO_COLOR="1")
    assert ANSI not in drawn and "brute_force_success" in drawn


def test_json_for_machines_is_unchanged(attack_log: Path) -> None:
    import json

    body = json.loads(run("detect", "--format", "json", str(attack_log), columns=40).stdout)
    assert {s["rule_id"] for s in body["signals"]} >= {"brute_force_success", "credential_stuffing"}
