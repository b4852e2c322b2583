"""docs/detect.md tells the truth: its ``<!-- docs-test: run -->`` examples run, and the failure message it
shows is the one the fixture gives."""

from __future__ import annotations

import re
from pathlib import Path

import graffer_secevents as secevents
from graffer_secevents import User
from graffer_secevents.testing import capture_events

PAGE = Path(__file__).resolve().parents[2] / "docs" / "detect.md"
_RUN = re.compile(r"<!-- docs-test: run -->\n```python\n(.*?)^```$", re.M | re.S)


def test_the_pages_examples_run() -> None:
    blocks = _RUN.findall(PAGE.read_text(encoding="utf-8"))
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), {})  # our own documentation


def test_the_failure_message_shown_is_the_real_one() -> None:
    with capture_events() as events:
        for n in range(3):
            secevents.log_login(User(id=100 + n), "failure", "203.0.113.7", exists=True)
        for _ in range(10):
            secevents.log_login(User(id=7), "failure", "198.51.100.66", exists=True)
        try:
            events.assert_detected("credential_stuffing", network__client__ip="203.0.113.7")
        except AssertionError as exc:
            message = str(exc)
    assert f"```text\nAssertionError: {message}\n```" in PAGE.read_text(encoding="utf-8")


def test_the_command_output_shown_is_the_real_one(tmp_path: Path) -> None:
    """The `secevents detect --explain` session on the page, replayed on the log the page describes: every
    line it shows (the parts around a `…`) is in the real output, and the exit status is the one shown. It
    showed 13 rules (there are 16) and record lines a 13-line file cannot have."""
    import json
    import os
    import subprocess
    import sys

    text = PAGE.read_text(encoding="utf-8")
    block = re.search(r"<!-- docs-test: detect example -->\n```text\n(.*?)^```$", text, re.M | re.S)
    assert block is not None
    lines = [
        json.dumps({"timestamp": "2026-03-01T08:59:00Z", "message": "app started", "service": "auth-api"})
    ]
    with capture_events() as events:
        for n in range(12):
            secevents.log_login(User(id=100 + n), "failure", "192.0.2.200", exists=True)
    for n, record in enumerate(events.records):
        record["timestamp"] = f"2026-03-01T09:00:{n:02d}.000000Z"
        lines.append(json.dumps(record))
    (tmp_path / "recorded-attack.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    command, *shown, _, status = block.group(1).splitlines()
    result = subprocess.run(
        [sys.executable, "-m", "graffer_secevents._tools.cli", *command.split()[2:]],
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "400", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert str(result.returncode) == status, result.stderr
    real = " ".join(result.stdout.split())
    for line in shown:
        for part in line.split("…"):
            assert " ".join(part.strip(" ,").split()) in real, (part, result.stdout)
