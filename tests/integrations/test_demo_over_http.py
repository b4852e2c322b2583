"""``secevents demo``: the example Flask shop on a real loopback server, driven over HTTP."""

from __future__ import annotations

import io
import re
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from graffer_secevents._tools import demo as _demo
from graffer_secevents._tools.schema import check_record
from graffer_secevents.detect import Signal, default_rules, evaluate


@pytest.fixture(scope="module")
def demo_run() -> tuple[io.StringIO, io.StringIO, int]:
    """One run of the demo's Flask story over HTTP (the records, the stderr summary, the count), shared by the
    tests. The Django token-API part runs only in a process that has not set up another Django project, so
    it depends on what else this test process ran: it is left out here and tested on its own, in a fresh
    process, by tests/integrations/django/test_demo_token_api.py."""
    out, summary = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_demo, "run_token_api_demo", lambda step: step("(the token-API part is tested apart)"))
        count = _demo.run_demo(out, summary, raw=True)
    return out, summary, count


def test_the_demo_drives_the_example_app_over_http(demo_run: tuple[io.StringIO, io.StringIO, int]) -> None:
    out, summary, count = demo_run
    records = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert count == len(records) == 30
    assert all(check_record(record) == [] for record in records)
    assert "is serving on http://127.0.0.1:" in summary.getvalue()
    types = Counter(r["evt"]["type"] for r in records)
    assert types == {
        "authn_login_success": 3,
        "session_logout": 1,
        "authn_login_fail": 22,
        "authn_login_lock": 1,
        "authn_password_reset_request": 1,
        "authz_fail": 1,
        "authz_admin": 1,
    }
    # Every record came through the middleware: a request id, and the client IP the proxy saw.
    assert all(len(r["http"]["request_id"]) == 32 for r in records)
    brute_force = [r for r in records if r["network"]["client"]["ip"] == "203.0.113.66"]
    assert len(brute_force) == 11  # 10 attempts and the account lock
    assert "10.1.2.3" not in out.getvalue()  # the attacker's forged X-Forwarded-For never wins
    denied = next(r for r in records if r["evt"]["type"] == "authz_fail")
    assert denied["usr"]["id"] == "1002" and denied["http"]["status_code"] == 403


def test_without_the_example_the_demo_calls_the_api_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_demo, "_EXAMPLE", Path("/nonexistent/flask_app.py"))
    out, summary = io.StringIO(), io.StringIO()
    count = _demo.run_demo(out, summary, raw=True)
    assert count == len(out.getvalue().splitlines()) > 15
    assert "calling the API directly" in summary.getvalue()
    tail = summary.getvalue().split("signals the detection rules raise")[1]
    assert "credential_stuffing" in tail and "network.client.ip=192.0.2.200" in tail
    assert "brute_force" in tail and "usr.id=1001" in tail


def _about_the_attack(signal: Signal) -> bool:
    ip = signal.group.get("network.client.ip")
    account = signal.group.get("usr.id")
    return ip in _demo.ATTACKERS["ip"] or account in _demo.ATTACKERS["account"]


def test_the_demo_ends_with_the_signals_of_its_attacks_only(
    demo_run: tuple[io.StringIO, io.StringIO, int],
) -> None:
    """Replayed through the default rules, the demo's records raise credential stuffing for the stuffing IP
    and brute force for the attacked account, nothing about anyone else; the normal traffic alone raises
    nothing. The demo prints the same signals at its end."""
    out, summary, _count = demo_run
    records = [orjson.loads(line) for line in out.getvalue().splitlines()]
    signals = evaluate(default_rules(service="demo-shop", env="demo"), records)
    fired = {(s.rule_id, tuple(s.group.items())) for s in signals}
    assert ("credential_stuffing", (("network.client.ip", "192.0.2.200"),)) in fired
    assert ("brute_force", (("usr.id", "1001"),)) in fired
    assert all(_about_the_attack(s) for s in signals), signals
    normal = [r for r in records if r["network"]["client"]["ip"] not in _demo.ATTACKERS["ip"]]
    assert len(normal) == 7
    assert evaluate(default_rules(service="demo-shop", env="demo"), normal) == []
    printed = summary.getvalue().split("signals the detection rules raise")[1]
    for rule_id, group in fired:
        assert any(
            rule_id in line and f"{group[0][0]}={group[0][1]}" in line for line in printed.splitlines()
        )


class _SlowStream(io.StringIO):
    """A log reader that takes its time: each write waits, so the writer thread lags behind the scenario."""

    def write(self, text: str) -> int:
        time.sleep(0.01)
        return super().write(text)


def test_the_summary_waits_until_every_record_is_delivered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The records go through the writer thread (delivery="queue", as in production); with a slow reader the
    scenario ends long before they are all written. The signals must still be computed on all of them."""
    monkeypatch.setattr(_demo, "_EXAMPLE", Path("/nonexistent/flask_app.py"))  # the quick, in-process story
    out, summary = _SlowStream(), io.StringIO()
    count = _demo.run_demo(out, summary, raw=True)
    written = len(out.getvalue().splitlines())
    assert count == written > 15
    assert f"signals the detection rules raise on these {written} records" in summary.getvalue()
    assert "brute_force" in summary.getvalue() and "credential_stuffing" in summary.getvalue()


def test_by_default_the_demo_shows_one_readable_line_per_record(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_demo, "_EXAMPLE", Path("/nonexistent/flask_app.py"))
    out, summary = io.StringIO(), io.StringIO()
    count = _demo.run_demo(out, summary)
    lines = out.getvalue().splitlines()
    assert len(lines) == count
    assert not any(line.startswith("{") for line in lines)
    assert all(len(line) <= 140 for line in lines)
    assert any(
        re.search(r"WARN +authn_login_fail +failure usr=1001 ip=203\.0\.113\.66 reason=", line)
        for line in lines
    )
    assert "\x1b[" not in out.getvalue()  # not a terminal: no colour
    assert "site-packages" not in summary.getvalue() and "/examples/" not in summary.getvalue()
