"""A real waitress server running Django on loopback under concurrent load: every event carries its request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SERVER = Path(__file__).with_name("django_server.py")


def test_concurrent_requests_never_share_context(loopback: Any) -> None:
    server = loopback.start(SERVER)
    plan = loopback.plan(300)
    requests = []
    for n, p in enumerate(plan):
        headers = {"X-Forwarded-For": p["xff"], "X-Request-ID": p["request_id"]}
        if n % 2:
            requests.append(
                {"method": "GET", "url": f"/work/{n}", "headers": {**headers, "X-Test-User": p["user"]}}
            )
        else:
            data = {"username": p["user"], "password": "wrong"}
            requests.append({"method": "POST", "url": f"/login/{n}", "headers": headers, "data": data})
    responses = loopback.drive(server.url, requests)
    for n, response in enumerate(responses):
        assert response.status_code == (403 if n % 2 else 401), response.text[:300]
        assert response.headers["X-Request-ID"] == plan[n]["request_id"]
    stderr = server.stop()
    records = server.records()
    loopback.check_no_bleed(
        records, plan, lambda n: ["sensitive_read", "authz_fail"] if n % 2 else ["authn_login_fail"]
    )
    assert all(r["usr"]["exists"] is True for r in records if r["evt"]["type"] == "authn_login_fail")
    assert "Traceback" not in stderr
