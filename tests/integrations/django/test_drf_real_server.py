"""A token-login burst through simplejwt's endpoint on a real waitress server: one event per attempt, each
with its own request's IP and id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("rest_framework_simplejwt")

SERVER = Path(__file__).with_name("django_server.py")  # with DRF + simplejwt when installed


def test_token_login_burst_never_shares_context(loopback: Any) -> None:
    server = loopback.start(SERVER)
    plan = loopback.plan(120)
    requests = []
    for n, p in enumerate(plan):
        k = int(p["user"].removeprefix("user-"))
        password = f"pw-{k}" if n % 2 == 0 else "wrong"
        requests.append(
            {
                "method": "POST",
                "url": f"/token/{n}",
                "headers": {"X-Forwarded-For": p["xff"], "X-Request-ID": p["request_id"]},
                "json": {"username": p["user"], "password": password},
            }
        )
    responses = loopback.drive(server.url, requests)
    for n, response in enumerate(responses):
        assert response.status_code == (200 if n % 2 == 0 else 401), response.text[:300]
        assert response.headers["X-Request-ID"] == plan[n]["request_id"]
    stderr = server.stop()
    records = server.records()
    # One event per attempt (the 401 rule is on and adds nothing), each with its own request's IP and id.
    loopback.check_no_bleed(
        records, plan, lambda n: ["authn_login_success"] if n % 2 == 0 else ["authn_login_fail"]
    )
    by_login: dict[str, set[str]] = {}
    for record in records:
        by_login.setdefault(record["usr"]["login"], set()).add(record["usr"]["id"])
    assert all(len(ids) == 1 for ids in by_login.values())  # failures and successes share the pk
    assert all(r["usr"]["exists"] is True for r in records if r["evt"]["type"] == "authn_login_fail")
    assert "Traceback" not in stderr
