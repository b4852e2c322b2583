"""A real uvicorn server on loopback under concurrent load: every event carries its own request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SERVER = Path(__file__).with_name("fastapi_server.py")
KINDS = ("async", "sync", "stream")


def test_concurrent_requests_never_share_context(loopback: Any) -> None:
    server = loopback.start(SERVER)
    plan = loopback.plan(300)
    requests = loopback.requests(plan, lambda n: f"/{KINDS[n % 3]}/{n}")
    responses = loopback.drive(server.url, requests)
    for n, response in enumerate(responses):
        assert response.status_code == (403 if KINDS[n % 3] == "sync" else 200)
        assert response.headers["X-Request-ID"] == plan[n]["request_id"]
    stderr = server.stop()
    expected = {
        "async": ["sensitive_read"],
        "sync": ["sensitive_read", "authz_fail"],
        "stream": ["data_export"],
    }
    loopback.check_no_bleed(server.records(), plan, lambda n: expected[KINDS[n % 3]])
    assert "Traceback" not in stderr
