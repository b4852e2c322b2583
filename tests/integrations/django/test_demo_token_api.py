"""``secevents demo``'s token-API part: examples/django_app's simplejwt endpoint on 127.0.0.1, brute-forced.

Run as the real command in a fresh process (Django settings are once per process, and this test process
already runs the test project).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from graffer_secevents._tools.schema import check_record
from graffer_secevents.detect import default_rules, evaluate

pytest.importorskip("rest_framework_simplejwt")

CONSOLE_SCRIPT = Path(sys.executable).with_name("secevents")


def test_the_demo_brute_forces_the_django_examples_token_endpoint() -> None:
    demo = subprocess.run(
        [str(CONSOLE_SCRIPT), "demo", "--json"], capture_output=True, timeout=120, check=False
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert b"token API (DRF + simplejwt) is serving on http://127.0.0.1:" in demo.stderr
    records = [orjson.loads(line) for line in demo.stdout.splitlines()]
    records = [r for r in records if "evt" in r]  # not the writers' end records
    assert all(check_record(record) == [] for record in records)
    token_api = [r for r in records if r.get("http", {}).get("route", "").startswith("/api/")]
    assert [r["evt"]["type"] for r in token_api] == ["authn_login_fail"] * 6 + [
        "authn_login_success",
        "authn_login_fail",
    ]
    logins = token_api[:7]
    # What Datadog's brute-force-with-success rules group on: one @usr.id, one @network.client.ip (the
    # address the proxy saw, not 127.0.0.1), failures then a success, each its own request.
    assert len({r["usr"]["id"] for r in logins}) == 1
    assert {r["network"]["client"]["ip"] for r in token_api} == {"203.0.113.77"}
    assert all(r["usr"]["exists"] is True and r["evt"]["reason"] == "invalid_credentials" for r in logins[:6])
    assert len({r["http"]["request_id"] for r in token_api}) == len(token_api)
    assert (
        token_api[-1]["evt"]["reason"] == "invalid_token" and token_api[-1]["http"]["route"] == "/api/orders/"
    )
    assert all(r["service"] == "demo-shop" for r in records)
    assert b"hopper-1906" not in demo.stdout and b"grace@example.com" not in demo.stdout
    # And the Cloud SIEM rules do fire on them: brute force followed by a success, for that account only.
    token_account = logins[0]["usr"]["id"]
    signals = evaluate(default_rules(service="demo-shop", env="demo"), token_api)
    assert [(s.rule_id, dict(s.group)) for s in signals] == [
        ("brute_force_success", {"usr.id": token_account})
    ]
    assert b"brute_force_success" in demo.stderr and f"usr.id={token_account}".encode() in demo.stderr
