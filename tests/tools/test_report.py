"""``secevents report`` on a fixed input: the exact picture a reviewer gets."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

import graffer_secevents as secevents
from graffer_secevents import User
from graffer_secevents._tools.cli import main
from graffer_secevents.testing import capture_events

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def scenario() -> list[dict[str, Any]]:
    """Real records from the library, re-stamped from T0 so the picture is fixed: 12 failed
    logins of distinct accounts from one IP, 5 on account 7 from another then its success, a success
    elsewhere, 2 denied requests."""
    with capture_events() as events:
        secevents.log_login(User(id=1), "success", "198.51.100.10")
        for n in range(12):
            secevents.log_login(
                User(id=100 + n), "failure", "192.0.2.200", exists=True, reason="invalid_credentials"
            )
        for _ in range(5):
            secevents.log_login(
                User(id=7), "failure", "203.0.113.66", exists=True, reason="invalid_credentials"
            )
        secevents.log_login(User(id=7), "success", "203.0.113.66")
        secevents.log_access_denied(User(id=2), "/admin", "198.51.100.20")
        secevents.log_access_denied(User(id=2), "/admin/users", "198.51.100.20")
    records = events.records
    offsets = [0, *range(60, 84, 2), *range(120, 170, 10), 175, 180, 185]
    for record, offset in zip(records, offsets, strict=True):
        record["timestamp"] = (T0 + timedelta(seconds=offset)).isoformat().replace("+00:00", ".000000Z")
    return records


EXPECTED = """\
Login attempts over time
  2026-03-01 09:00:00Z → 2026-03-01 09:03:00Z, one column per 5 s
  success  │▃                                  ▃│ 2
  failure  │            █▆█▆▆       ▃ ▃ ▃ ▃ ▃   │ 17
  (the tallest column is 3 attempts)

Top failing IPs (failed logins)
  192.0.2.200      12  ████████████████████  (12 accounts)
  203.0.113.66      5  ████████  (1 account)

Top failing accounts (failed logins)
  7        5  ████████████████████  (1 IP)
  100      1  ████  (1 IP)
  101      1  ████  (1 IP)
  102      1  ████  (1 IP)
  103      1  ████  (1 IP)
  … and 8 more

Denied requests by IP
  198.51.100.20      2  ████████████████████

Denied requests by route or resource
  /admin            1  ████████████████████
  /admin/users      1  ████████████████████

Signals (2)
rule                 severity  group                          seen       events
credential_stuffing  medium    network.client.ip=192.0.2.200  09:01:22Z      12
brute_force_success  high      usr.id=7                       09:02:55Z       6

  credential_stuffing [medium] network.client.ip=192.0.2.200
    case: credential stuffing attempt
    values when it opened: failed_users=10 successes=0
    records (and 2 more): <stdin>:3, <stdin>:4, <stdin>:5, <stdin>:6, <stdin>:7,
      <stdin>:8, <stdin>:9, <stdin>:10, <stdin>:11, <stdin>:12

  brute_force_success [high] usr.id=7
    case: brute force followed by a success
    values when it opened: failures=5 successes=1
    records: <stdin>:15, <stdin>:16, <stdin>:17, <stdin>:18, <stdin>:19,
      <stdin>:20
21 log records read (21 security records) from 1 file; 1 other lines skipped (1
not JSON, 0 JSON but not an object, 0 blank)
"""
# At 80 columns (the test sets COLUMNS): the signal table keeps the last time only, and the summary wraps
# between words; tests/tools/test_terminal_fit.py checks every command at 80 and 100 columns.


def test_report_draws_attempts_top_failures_denials_and_signals(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = b"a log line from the framework\n" + b"".join(orjson.dumps(r) + b"\n" for r in scenario())
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(lines)))
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["report", "-"]) == 0
    assert capsys.readouterr().out == EXPECTED


def test_report_escapes_control_characters_from_the_records(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    records = scenario()
    records[1]["network"]["client"]["ip"] = "192.0.2.200\x1b[2J"
    lines = b"".join(orjson.dumps(r) + b"\n" for r in records)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(lines)))
    assert main(["report", "-"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "192.0.2.200\\x1b[2J" in out
