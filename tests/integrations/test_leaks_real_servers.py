"""The leak suite: tokens, JWTs, API keys and e-mails in every request field and identity the integrations read,
sent to the three frameworks' real servers on 127.0.0.1 (uvicorn; waitress for Flask and Django): not one raw
value in the output, and every replacement noted in ``secevents.errors``.

The fields: the URL path (and the path a 403 copies into ``evt.resource``), the query string, the user agent,
``X-Request-ID``, and the user the stack names (Flask-Login's README user whose ``id`` is the address, a
Django user whose username is the address, a FastAPI ``set_user`` of the address).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

SERVER = Path(__file__).with_name("leak_server.py")
KEY = "leak-suite-key-0123456789"

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZGEiLCJleHAiOjE3MDAwMDAwMDB9"
    ".c2lnbmF0dXJlLXNlY3JldC12YWx1ZS0xMjM0NTY"
)
JWT_AS_REQUEST_ID = "eyJhbGciOiJSUzI1NiJ9.eyJzY29wZSI6ImFkbWluIn0.QmFzZTY0VXJsU2lnbmF0dXJlMDEyMzQ1Njc4OQ"
GITHUB = "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
GITHUB_AS_REQUEST_ID = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
GITLAB = "glpat-Zx9Yw8Vu7Ts6Rq5Po4Nm"
SLACK = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
AWS = "AKIAZ7Q2X9W4V5U6T3S8"
STRIPE = "sk_live_51HqLyjWDarjtT1zdp7dcAbC"
GOOGLE = "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"
HEX_TOKEN = "3f786850e387550fdab836ed7e6dc881de23001b"  # 40 hex digits: a DRF token's shape
RANDOM_TOKEN = "h7G2kQ9xZp4LmN8vR3tY6wB1cD5fJ0sA"
BEARER = "opaque9f8e7d6c5b4a"
QUERY_TOKEN = "query-secret-0f9e8d7c"
EMAIL_IN_PATH = "ada.lovelace@example.com"
EMAIL_IN_QUERY = "grace.hopper@example.org"
EMAIL_IN_AGENT = "alan.turing@example.net"
EMAIL_AS_USER = "katherine.johnson@example.com"
EMAIL_AT_LOGIN = "dorothy.vaughan@example.com"
RAW = [
    JWT,
    *JWT.split("."),
    JWT_AS_REQUEST_ID,
    *JWT_AS_REQUEST_ID.split("."),
    GITHUB,
    GITHUB_AS_REQUEST_ID,
    GITLAB,
    SLACK,
    AWS,
    STRIPE,
    GOOGLE,
    HEX_TOKEN,
    RANDOM_TOKEN,
    BEARER,
    QUERY_TOKEN,
    EMAIL_IN_PATH,
    EMAIL_IN_QUERY,
    EMAIL_IN_AGENT,
    EMAIL_AS_USER,
    EMAIL_AT_LOGIN,
]


def pseudonym(value: str) -> str:
    return "anon_" + hmac.new(KEY.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]


class LeakServer:
    def __init__(self, framework: str, events: Path) -> None:
        self.framework = framework
        self.events = events
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), str(events)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "LEAK_FRAMEWORK": framework},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        port = int(line.split()[1])
        try:  # it listens before it announces the port: a quick client is never refused
            socket.create_connection(("127.0.0.1", port), timeout=10).close()
        except ConnectionRefusedError:
            self.stop()
            raise AssertionError(f"{framework}: port {port} announced before listening on it") from None
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def text(self) -> str:
        return self.events.read_text()

    def records(self) -> list[dict[str, Any]]:
        lines = self.events.read_bytes().splitlines()
        return [
            r for r in (orjson.loads(line) for line in lines if line.strip()) if "evt" in r
        ]  # no end records


@pytest.fixture(scope="module", params=["fastapi", "flask", "django"])
def driven(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Each framework's server, started once, sent every leaking request; yields (server, responses)."""
    framework: str = request.param
    server = LeakServer(framework, tmp_path_factory.mktemp(framework) / "events.jsonl")
    responses: dict[str, httpx.Response] = {}
    try:
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            responses["jwt"] = client.get(
                f"/deny/{JWT}",
                headers={"User-Agent": f"leak-test/1.0 Bearer {BEARER}", "X-Request-ID": JWT_AS_REQUEST_ID},
            )
            responses["keys"] = client.get(
                f"/deny/keys/{GITHUB}/{GITLAB}/{SLACK}/{AWS}/{STRIPE}/{GOOGLE}",
                params={"access_token": QUERY_TOKEN, "email": EMAIL_IN_QUERY},
                headers={"X-Request-ID": GITHUB_AS_REQUEST_ID},
            )
            responses["user"] = client.get(
                f"/deny/users/{EMAIL_IN_PATH}/files/{HEX_TOKEN}/{RANDOM_TOKEN}",
                headers={
                    "User-Agent": f"Mozilla/5.0 (compatible; contact {EMAIL_IN_AGENT})",
                    "X-Test-User": EMAIL_AS_USER,
                },
            )
            if framework != "fastapi":
                responses["login"] = client.post("/login", data={"email": EMAIL_AT_LOGIN})
        deadline = time.monotonic() + 10
        while len(server.records()) < len(responses) and time.monotonic() < deadline:
            time.sleep(0.05)  # records are written by the library's writer thread
    finally:
        server.stop()
    return server, responses


def test_no_raw_token_or_email_reaches_the_output(driven: Any) -> None:
    server, responses = driven
    text = server.text()
    records = server.records()
    # One record per request; the Django app creates its users in the request, which is a signup (the user
    # model's post_save seam): those records are checked for leaks too, not counted.
    answered = [r for r in records if r["evt"]["type"] != "user_signup"]
    assert len(answered) == len(responses), text
    leaked = [value for value in RAW if value in text]
    assert leaked == [], leaked
    assert "%40" not in text


def test_the_403_resource_and_path_keep_their_shape_with_the_secrets_replaced(driven: Any) -> None:
    server, responses = driven
    assert {r.status_code for name, r in responses.items() if name != "login"} == {403}
    denied = {
        r["http"]["url_details"]["path"]: r for r in server.records() if r["evt"]["type"] == "authz_fail"
    }
    assert set(denied) == {
        "/deny/[REDACTED]",
        "/deny/keys/" + "/".join(["[REDACTED]"] * 6),
        f"/deny/users/{pseudonym(EMAIL_IN_PATH)}/files/[REDACTED]/[REDACTED]",
    }
    for path, record in denied.items():
        assert record["evt"]["resource"] == path
        notes = record["secevents"]["errors"]
        assert any(n.startswith("http.url_details.path: ") for n in notes), notes
        assert any(n.startswith("evt.resource: ") for n in notes), notes
    keys = denied["/deny/keys/" + "/".join(["[REDACTED]"] * 6)]["secevents"]["errors"]
    for kind in ("GitHub", "GitLab", "Slack", "AWS", "Stripe", "Google"):
        assert any(kind in note for note in keys), (kind, keys)


def test_a_secret_shaped_request_id_is_replaced_echoed_new_and_noted(driven: Any) -> None:
    server, responses = driven
    by_path = {
        r["http"]["url_details"]["path"]: r for r in server.records() if r["evt"]["type"] == "authz_fail"
    }
    for name, path in (("jwt", "/deny/[REDACTED]"), ("keys", "/deny/keys/" + "/".join(["[REDACTED]"] * 6))):
        record = by_path[path]
        written = record["http"]["request_id"]
        assert len(written) == 32 and int(written, 16) >= 0
        assert responses[name].headers.get("X-Request-ID", written) == written  # echoed as written, if echoed
        assert any(n.startswith("http.request_id: ") for n in record["secevents"]["errors"])


def test_the_user_agent_keeps_its_text_with_the_bearer_and_the_address_replaced(driven: Any) -> None:
    server, _ = driven
    agents = {r["http"].get("useragent") for r in server.records()}
    assert "leak-test/1.0 Bearer [REDACTED]" in agents
    assert f"Mozilla/5.0 (compatible; contact {pseudonym(EMAIL_IN_AGENT)})" in agents


def test_an_email_identity_is_written_as_its_pseudonym(driven: Any) -> None:
    server, _ = driven
    records = server.records()
    denied = next(r for r in records if "/deny/users/" in r["http"]["url_details"]["path"])
    if server.framework == "django":  # the account's pk is the id; the username (the address) is the login
        assert denied["usr"]["login"] == pseudonym(EMAIL_AS_USER)
        assert denied["usr"]["id"].isdigit()
    else:
        assert denied["usr"]["id"] == pseudonym(EMAIL_AS_USER)
        assert any(n.startswith("usr.id: an e-mail address") for n in denied["secevents"]["errors"])
    if server.framework != "fastapi":
        login = next(r for r in records if r["evt"]["type"] == "authn_login_success")
        if server.framework == "flask":  # Flask-Login's README user: user.id = email
            assert login["usr"]["id"] == pseudonym(EMAIL_AT_LOGIN)
        else:
            assert login["usr"]["login"] == pseudonym(EMAIL_AT_LOGIN)
