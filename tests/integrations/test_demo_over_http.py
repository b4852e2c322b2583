"""``secevents demo``: the example Flask shop on a real loopback server, driven over HTTP."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import orjson
import pytest

from graffer_secevents._tools import demo as _demo
from graffer_secevents._tools.schema import check_record


def test_the_demo_drives_the_example_app_over_http() -> None:
    out, summary = io.StringIO(), io.StringIO()
    count = _demo.run_demo(out, summary)
    records = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert count == len(records)
    # The Django token-API part (tests/integrations/django/test_demo_token_api.py) runs only in a process
    # that has not configured another Django project; the Flask part is the same either way.
    records = [r for r in records if not r["http"].get("route", "").startswith("/api/")]
    assert len(records) == 22
    assert all(check_record(record) == [] for record in records)
    assert "is serving on http://127.0.0.1:" in summary.getvalue()
    types = Counter(r["evt"]["type"] for r in records)
    assert types == {
        "authn_login_success": 3,
        "session_logout": 1,
        "authn_login_fail": 14,
        "authn_login_lock": 1,
        "authn_password_reset_request": 1,
        "authz_fail": 1,
        "authz_admin": 1,
    }
    # Every record came through the middleware: a request id, and the client IP the proxy saw.
    assert all(len(r["http"]["request_id"]) == 32 for r in records)
    brute_force = [r for r in records if r["network"]["client"]["ip"] == "203.0.113.66"]
    assert len(brute_force) == 7
    assert "10.1.2.3" not in out.getvalue()  # the attacker's forged X-Forwarded-For never wins
    denied = next(r for r in records if r["evt"]["type"] == "authz_fail")
    assert denied["usr"]["id"] == "1002" and denied["http"]["status_code"] == 403


def test_without_the_example_the_demo_calls_the_api_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_demo, "_EXAMPLE", Path("/nonexistent/flask_app.py"))
    out, summary = io.StringIO(), io.StringIO()
    count = _demo.run_demo(out, summary)
    assert count == len(out.getvalue().splitlines()) > 15
    assert "calling the API directly" in summary.getvalue()
