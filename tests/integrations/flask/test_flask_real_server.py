"""A real waitress server on loopback under concurrent load: every event carries its own request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SERVER = Path(__file__).with_name("flask_server.py")


def test_concurrent_requests_never_share_context(loopback: Any) -> None:
    server = loopback.start(SERVER)
    plan = loopback.plan(300)
    requests = loopback.requests(plan, lambda n: f"/work/{n}")
    responses = loopback.drive(server.url, requests)
    for n, response in enumerate(responses):
        assert response.status_code == (403 if n % 2 else 200)
        assert response.headers["X-Request-ID"] == plan[n]["request_id"]
    stderr = server.stop()
    loopback.check_no_bleed(
        server.records(), plan, lambda n: ["sensitive_read", "authz_fail"] if n % 2 else ["sensitive_read"]
    )
    assert "Traceback" not in stderr
