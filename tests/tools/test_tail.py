"""`secevents tail` and `output="console"`: one readable line per record, fitted to the terminal without
cutting a value, coloured only on a terminal (and never with NO_COLOR)."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

import graffer_secevents as secevents

SECEVENTS = Path(sys.executable).parent / "secevents"
ANSI = "\x1b["


@pytest.fixture(scope="module")
def records() -> bytes:
    out = io.StringIO()
    secevents.configure(output=out, delivery="sync")
    secevents.log_login(
        1001, "failure", "203.0.113.66", login="ada@example.com", exists=True, reason="invalid_credentials"
    )
    secevents.log_login(
        None,
        "failure",
        "2001:db8:85a3::8a2e:370:7334",
        login="nobody@example.org",
        exists=False,
        reason="unknown_user",
    )
    secevents.log_access_denied(7, "/admin/users/1002/disable-this-account-with-a-long-path", "198.51.100.2")
    secevents.log_login(42, "success", "198.51.100.10")
    return ("a plain application log line\n" + out.getvalue()).encode()


def tail(data: bytes, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in {"NO_COLOR", "COLUMNS", "TERM"}}
    return subprocess.run(
        [str(SECEVENTS), "tail", *args],
        input=data.decode(),
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.mark.parametrize("columns", [80, 100])
def test_no_line_is_wider_than_the_terminal_and_no_value_is_cut(records: bytes, columns: int) -> None:
    lines = tail(records, "--events-only", COLUMNS=str(columns)).stdout.splitlines()
    assert len(lines) == 4
    assert all(len(line) <= columns for line in lines), [len(line) for line in lines]
    for line, raw in zip(lines, records.splitlines()[1:], strict=True):
        record = orjson.loads(raw)
        assert record["evt"]["type"] in line
        for field in line.split()[4:]:  # every key=value shown is whole
            if field.startswith("ip="):
                assert field == f"ip={record['network']['client']['ip']}"
            if field.startswith("reason="):
                assert field == f"reason={record['evt']['reason']}"


def test_other_lines_pass_through_unless_events_only(records: bytes) -> None:
    assert tail(records).stdout.splitlines()[0] == "a plain application log line"
    assert "a plain application log line" not in tail(records, "--events-only").stdout


def test_no_colour_in_a_pipe(records: bytes) -> None:
    assert ANSI not in tail(records).stdout


def _on_a_terminal(records: bytes, **env: str) -> str:
    """Run `secevents tail FILE` with its stdout on a pseudo-terminal; return what it drew."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".log") as file:
        file.write(records)
        file.flush()
        primary, secondary = pty.openpty()
        base = {k: v for k, v in os.environ.items() if k not in {"NO_COLOR", "TERM"}}
        process = subprocess.Popen(
            [str(SECEVENTS), "tail", "--events-only", file.name],
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
        process.communicate(timeout=60)  # reads and closes its stderr pipe
        os.close(primary)
    return b"".join(chunks).decode()


def test_colour_on_a_terminal_for_level_and_outcome(records: bytes) -> None:
    drawn = _on_a_terminal(records)
    assert "\x1b[33mWARN" in drawn and "\x1b[31mfailure" in drawn and "\x1b[32msuccess" in drawn
    assert "\x1b[1;31mCRIT" in drawn  # authz_fail is critical


def test_no_colour_with_no_color_even_on_a_terminal(records: bytes) -> None:
    drawn = _on_a_terminal(records, NO_COLOR="1")
    assert ANSI not in drawn and "authn_login_fail" in drawn


def test_output_console_writes_readable_lines() -> None:
    script = textwrap.dedent(
        """
        import graffer_secevents as s
        s.configure(output="console", hash_key="k" * 16)
        s.log_login(1001, "failure", "203.0.113.66", login="ada@example.com", exists=True, reason="invalid_credentials")
        s.flush(timeout=5)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECEVENTS_")}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    [line, end] = result.stdout.splitlines()  # the event, then the writer's clean end at exit
    assert " END   writer " in end and end.endswith("stopped cleanly after record 1")
    assert (
        "WARN" in line
        and "authn_login_fail" in line
        and "usr=1001 ip=203.0.113.66 reason=invalid_credentials" in line
    )
    assert not line.startswith("{") and ANSI not in line


def test_a_writers_clean_end_is_one_readable_line_not_raw_json() -> None:
    """The end record a writer leaves when it stops cleanly (docs/delivery.md) has no `evt`: it is shown as
    one line naming the writer and its last record, never as the raw JSON."""
    from graffer_secevents._console import format_record

    end = {
        "timestamp": "2026-12-05T21:10:10.134575Z",
        "status": "info",
        "message": "secevents_writer_end: this writer wrote every record it was given and stopped cleanly",
        "secevents": {"schema": 1, "end": True, "writer": "b450030e3f73d5bc", "seq": 39},
    }
    assert format_record(end) == "21:10:10 END   writer b450030e3f73d5bc stopped cleanly after record 38"
    assert format_record({"message": "another service's log"}) is None
