"""Work a request hands to another thread of the same process, on real servers: `ThreadPoolExecutor.submit`
and `loop.run_in_executor` do not copy context variables (`asyncio.to_thread` does). The documented recipes
(docs/integrations/task-queues.md, "Threads of the same process") keep the request's user, client IP and
request id in the thread's events; a plain hand-off writes none of them, and never another request's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

SERVER = Path(__file__).with_name("handoff_server.py")
FORGED = "198.51.100.66"


@pytest.mark.parametrize("stack", ["fastapi", "flask", "django"])
def test_a_thread_hand_off_keeps_the_request_s_user_ip_and_request_id(loopback: Any, stack: str) -> None:
    server = loopback.start(SERVER, env={"HANDOFF_STACK": stack})
    import time

    hows = ["plain", "copied", "job", "late"] + (["to_thread"] if stack == "fastapi" else [])
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for how in hows:
            response = client.post(
                f"/{how}/{stack}-{how}", headers={"X-Request-ID": f"req-{how}", "X-Forwarded-For": FORGED}
            )
            assert response.status_code == 200, response.text
    deadline = time.monotonic() + 10
    while b"-late" not in server.events.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.05)
    stderr = server.stop()
    records = {r["context"]["tag"]: r for r in server.records()}
    assert sorted(records) == sorted(f"{stack}-{how}" for how in hows), stderr

    plain = records[
        f"{stack}-plain"
    ]  # the standard library's hand-off: no request, no user, never a wrong one
    assert "usr" not in plain and "network" not in plain and "http" not in plain

    for how in ("copied", "to_thread", "late"):
        if how in hows:
            record = records[f"{stack}-{how}"]
            assert record["usr"]["id"] == "42", (how, record)
            assert record["network"]["client"]["ip"] == "127.0.0.1", (how, record)
            assert record["http"]["request_id"] == f"req-{how}", (how, record)

    job = records[f"{stack}-job"]  # a long-lived thread: the origin travels with each item
    assert job["usr"] == {"id": "42"}
    assert job["network"] == {"client": {"ip": "127.0.0.1"}}
    assert job["job"]["system"] == "thread"
    assert job["job"]["origin"]["request_id"] == "req-job"
    text = server.events.read_text()
    assert FORGED not in text and "alice@example.com" not in text
    assert "Traceback" not in stderr
