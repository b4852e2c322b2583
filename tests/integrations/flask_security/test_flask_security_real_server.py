"""A login burst through Flask-Security's JSON /login on a real waitress server: every event is its own
request's, with that request's client IP and request id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask_security_app import ACCOUNTS

SERVER = Path(__file__).with_name("flask_security_server.py")
ADA = "ada@secevents-test.net"


def attempt(n: int) -> tuple[dict[str, str], str, str | None]:
    """Request n's body, the event it must write and its evt.reason: a brute force with a success every 7th."""
    if n % 7 == 0:
        return {"email": ADA, "password": ACCOUNTS[ADA][1]}, "authn_login_success", None
    if n % 3 == 0:
        return (
            {"email": f"ghost{n}@secevents-test.net", "password": "guess"},
            "authn_login_fail",
            "unknown_user",
        )
    return {"email": ADA, "password": f"guess-{n}"}, "authn_login_fail", "invalid_credentials"


def test_login_burst_keeps_every_event_with_its_request(loopback: Any) -> None:
    server = loopback.start(SERVER)
    plan = loopback.plan(90)
    requests = [
        {
            "method": "POST",
            "url": "/login?include_auth_token",
            "json": attempt(n)[0],
            "headers": {"X-Forwarded-For": p["xff"], "X-Request-ID": p["request_id"]},
        }
        for n, p in enumerate(plan)
    ]
    responses = loopback.drive(server.url, requests, threads=8)
    if any(response.status_code >= 500 for response in responses):
        raise AssertionError(f"the server failed:\n{server.stop()[-3000:]}")
    for n, response in enumerate(responses):
        assert response.status_code == (200 if n % 7 == 0 else 400), response.text
        if n % 7 == 0:
            assert response.json()["response"]["user"]["authentication_token"]
    stderr = server.stop()
    records = server.records()
    loopback.check_one_event_per_request(records, plan, lambda n: attempt(n)[1:])
    ada_ids = {r["usr"]["id"] for r in records if r["usr"].get("exists", True)}
    assert len(ada_ids) == 1  # successes and wrong passwords: one account, one usr.id
    text = server.events.read_text()
    assert ADA not in text and ACCOUNTS[ADA][1] not in text
    assert "Traceback" not in stderr
