"""Shared by the SSO tests (tests/integrations/django/test_sso_logins.py, tests/integrations/test_sso_callbacks.py):
the provider and client services as real server processes, and a browser that logs in through them.

The provider is django-oauth-toolkit as an OpenID Connect provider (`django/sso_servers.py`, role `idp`).
"""

from __future__ import annotations

import html
import os
import re
import sqlite3
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import orjson

IDP_SCRIPT = Path(__file__).with_name("django") / "sso_servers.py"
CLIENT_SECRET = "client-secret-" + "s3cr3t" * 4  # every client's, as the provider registers it
FORGED_IP = "203.0.113.66"


class Service:
    """A server process that prints ``PORT <n>`` once it listens on 127.0.0.1 and writes events to a file."""

    def __init__(self, script: Path, role: str, events: Path, env: dict[str, str]) -> None:
        self.role, self.events = role, events
        self.stderr = events.with_suffix(".stderr")
        self.url = ""
        with self.stderr.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(script), str(events)],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env={**os.environ, "SSO_ROLE": role, **env},
            )

    def wait_port(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the server prints its port once it listens, or dies
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"{self.role} did not start: {self.stderr.read_text()[-3000:]}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"
        return self.url

    def register_at(self, idp: Service, callback: str) -> None:
        """Register this service's redirect URI at the provider, its client id being its role."""
        params = {"client_id": self.role, "redirect_uri": self.wait_port() + callback}
        httpx.get(f"{idp.url}/idp/register/", params=params, timeout=20).raise_for_status()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def records(self, request_id: str) -> list[dict[str, Any]]:
        records = [orjson.loads(line) for line in self.events.read_bytes().splitlines() if line.strip()]
        return [r for r in records if "evt" in r and r.get("http", {}).get("request_id") == request_id]

    def whole_output(self) -> str:
        return (self.events.read_text() if self.events.exists() else "") + self.stderr.read_text()


def start_idp(tmp: Path) -> Service:
    idp = Service(IDP_SCRIPT, "idp", tmp / "idp.jsonl", {})
    idp.wait_port()
    return idp


class Browser:
    """One browser: its own cookie jar, a forged X-Forwarded-For and a request id on every request."""

    def __init__(
        self, service: Service, idp: Service, name: str, *, start: str, post_start: bool = False
    ) -> None:
        self.service, self.idp, self.start, self.post_start = service, idp, start, post_start
        self.request_id = f"sso-{service.role}-{name}"
        headers = {"X-Forwarded-For": FORGED_IP, "X-Request-ID": self.request_id}
        self.client = httpx.Client(headers=headers, timeout=30)
        self.seen: list[str] = []  # every code and state of this browser's flows

    def login_at_provider(self, user: str) -> None:
        self.client.get(f"{self.idp.url}/idp/login/", params={"u": user}).raise_for_status()

    def authorize(self, *, allow: bool = True) -> str:
        """Start the service's login and answer the provider's consent form; the callback URL it redirects to."""
        if self.post_start:  # social-auth's begin view takes a POST (with Django's CSRF token)
            token = "t" * 32
            self.client.cookies.set(f"{self.service.role}csrf", token)
            begin = self.client.post(self.service.url + self.start, data={"csrfmiddlewaretoken": token})
        else:
            begin = self.client.get(self.service.url + self.start)
        assert begin.status_code in (302, 307), begin.text[:500]
        authorize_url = begin.headers["location"]
        consent = self.client.get(authorize_url)
        assert consent.status_code == 200, consent.text[:500]
        fields = {
            name: html.unescape(value)
            for name, value in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', consent.text)
        }
        if allow:
            fields["allow"] = "Authorize"
        answer = self.client.post(authorize_url, data=fields)
        assert answer.status_code == 302, answer.text[:500]
        callback = answer.headers["location"]
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))
        self.seen += [v for k, v in query.items() if k in ("code", "state")]
        return callback

    def get(self, url: str) -> httpx.Response:
        return self.client.get(url, follow_redirects=True)

    def close(self) -> None:
        self.client.close()


def with_query(url: str, **changes: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = {**dict(urllib.parse.parse_qsl(parts.query)), **changes}
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def one_attempt(service: Service, browser: Browser) -> dict[str, Any]:
    """The one login record of the browser's flow (asserted alone), with the peer's IP and no secret written."""
    records = service.records(browser.request_id)
    attempts = [r for r in records if r["evt"]["name"] == "authentication"]
    assert len(attempts) == 1, [r["evt"] for r in records]
    record = attempts[0]
    assert record["network"]["client"]["ip"] == "127.0.0.1"  # the peer, never the forged header
    assert FORGED_IP not in orjson.dumps(records).decode()
    assert_no_secrets(service, browser)
    return record


def assert_no_secrets(service: Service, browser: Browser) -> None:
    """No code, state, token, ID token (a JWT: ``eyJ``) or client secret anywhere in the service's output."""
    output = service.whole_output()
    db = sqlite3.connect(browser.idp.events.with_suffix(".sqlite3"))
    try:
        tokens = [row[0] for row in db.execute("SELECT token FROM oauth2_provider_accesstoken")]
        tokens += [row[0] for row in db.execute("SELECT token FROM oauth2_provider_refreshtoken")]
    finally:
        db.close()
    leaked = [s for s in [*browser.seen, *tokens, CLIENT_SECRET] if s and s in output]
    assert not leaked
    assert "eyJ" not in output
