"""A login burst through fastapi-users' JWT /login on a real uvicorn server: every event is its own
request's, with that request's client IP and request id."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from fastapi_users_app import ACCOUNTS

SERVER = Path(__file__).with_name("fastapi_users_server.py")
ADA = "ada@secevents-test.net"


def attempt(n: int) -> tuple[dict[str, str], str, str | None]:
    """Request n's form, the event it must write and its evt.reason: a brute force with a success every 7th."""
    if n % 7 == 0:
        return {"username": ADA, "password": ACCOUNTS[ADA][0]}, "authn_login_success", None
    if n % 3 == 0:
        return (
            {"username": f"ghost{n}@secevents-test.net", "password": "guess"},
            "authn_login_fail",
            "unknown_user",
        )
    return {"username": ADA, "password": f"guess-{n}"}, "authn_login_fail", "invalid_credentials"


def wait_ready(url: str) -> None:
    """The lifespan creates the tables after the port is printed: wait (bounded) until the app answers."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/docs", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError("the app did not start")


def test_login_burst_keeps_every_event_with_its_request(loopback: Any) -> None:
    server = loopback.start(SERVER)
    wait_ready(server.url)
    plan = loopback.plan(90)
    requests = [
        {
            "method": "POST",
            "url": "/auth/jwt/login",
            "data": attempt(n)[0],
            "headers": {"X-Forwarded-For": p["xff"], "X-Request-ID": p["request_id"]},
        }
        for n, p in enumerate(plan)
    ]
    responses = loopback.drive(server.url, requests, threads=8)
    if any(response.status_code >= 500 for response in responses):
        raise AssertionError(f"the server failed:\n{server.stop()[-3000:]}")
    for n, response in enumerate(responses):
        assert response.status_code == (200 if n % 7 == 0 else 400), response.text
    stderr = server.stop()
    records = server.records()
    loopback.check_one_event_per_request(records, plan, lambda n: attempt(n)[1:])
    ada_ids = {r["usr"]["id"] for r in records if r["usr"].get("exists", True)}
    assert len(ada_ids) == 1  # successes and wrong passwords: one account, one usr.id (its UUID)
    text = server.events.read_text()
    assert ADA not in text and ACCOUNTS[ADA][0] not in text
    assert "Traceback" not in stderr
