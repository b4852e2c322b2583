"""`secevents verify` as a CI gate, run as the console script: an input with no numbered record (empty, or
the wrong log) fails with status 3 as `validate` and `detect` do, unless `--allow-empty`; a real log of the
library's records passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SECEVENTS = Path(sys.executable).parent / "secevents"


def verify(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(SECEVENTS), "verify", *args], input=stdin, capture_output=True, timeout=60, check=False
    )


def written_log(tmp_path: Path) -> Path:
    """A log as the library writes it: a process that logs two events and exits cleanly."""
    code = (
        "import graffer_secevents as s\n"
        "s.configure(service='gate', metrics='none')\n"
        "s.log_login(1, 'failure', '203.0.113.7')\n"
        "s.log_login(1, 'success', '203.0.113.7')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, check=True)
    path = tmp_path / "app.log"
    path.write_bytes(result.stdout)
    return path


def test_an_input_with_no_numbered_record_fails_the_gate(tmp_path: Path) -> None:
    other = tmp_path / "other.log"
    other.write_text('{"message": "GET / 200", "timestamp": "2026-12-06T00:00:00Z"}\n', encoding="utf-8")
    for args, stdin in [(("-",), b""), ((str(other),), b""), (("-",), b"\n\n")]:
        result = verify(*args, stdin=stdin)
        assert result.returncode == 3, (args, result.stdout, result.stderr)
        assert b"secevents verify: no security record in the input" in result.stderr
        assert b"Traceback" not in result.stderr
        accepted = verify(*args, "--allow-empty", stdin=stdin)
        assert accepted.returncode == 0, accepted.stderr


def test_a_written_log_passes_and_a_gap_still_fails(tmp_path: Path) -> None:
    log = written_log(tmp_path)
    assert verify(str(log)).returncode == 0
    lines = log.read_bytes().splitlines(keepends=True)
    gapped = tmp_path / "gapped.log"
    gapped.write_bytes(lines[0] + b"".join(lines[2:]))  # the second record lost downstream
    result = verify(str(gapped), "--allow-empty")
    assert result.returncode == 1, result.stdout
    assert b"missing" in result.stdout
