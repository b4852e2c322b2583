"""SSO logins through a real OpenID Connect provider: mozilla-django-oidc, python-social-auth and django-allauth's
socialaccount, each a Django service on its own real server on 127.0.0.1, the provider django-oauth-toolkit on
another (``sso_servers.py``), driven by a browser (httpx, one cookie jar per browser, following the
redirects, posting the provider's consent form). No event code in the services.

Every attempt is exactly one record: ``authn_login_success`` with the service's own account id, or
``authn_login_fail`` with a bounded ``evt.reason`` (``not_allowed``: the user or the provider declined, or the
service refused the identity; ``invalid_token``: a forged state, a replayed code; ``account_disabled``: the
identity is an inactive account, named by its id). The IP is the peer's (a forged ``X-Forwarded-For`` is
ignored), the request id is the browser's, and no code, state, token, ID token or client secret is written.
"""

from __future__ import annotations

import html
import os
import re
import sqlite3
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

pytest.importorskip("oauth2_provider")
pytest.importorskip("waitress")

SCRIPT = Path(__file__).with_name("sso_servers.py")
CLIENT_SECRET = "client-secret-" + "s3cr3t" * 4
FORGED_IP = "203.0.113.66"
STACKS: dict[str, dict[str, str]] = {
    # start: where the browser starts the login (social-auth's is a POST); callback: the redirect URI
    "mozilla": {
        "module": "mozilla_django_oidc",
        "start": "/oidc/authenticate/",
        "callback": "/oidc/callback/",
    },
    "social": {"module": "social_django", "start": "/login/oidc/", "callback": "/complete/oidc/"},
    "allauth": {
        "module": "allauth.socialaccount",
        "start": "/accounts/oidc/idp/login/",
        "callback": "/accounts/oidc/idp/login/callback/",
    },
}


class Service:
    def __init__(self, role: str, events: Path, env: dict[str, str]) -> None:
        self.role, self.events = role, events
        self.stderr = events.with_suffix(".stderr")
        with self.stderr.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(SCRIPT), str(events)],
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
        return self.events.read_text() + self.stderr.read_text()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Service]]:
    """The provider, then every installed client stack (started together), each registered at the provider."""
    tmp = tmp_path_factory.mktemp("sso")
    idp = Service("idp", tmp / "idp.jsonl", {})
    started: dict[str, Service] = {"idp": idp}
    try:
        idp_url = idp.wait_port()
        for role, stack in STACKS.items():
            try:
                __import__(stack["module"])
            except ImportError:
                continue
            started[role] = Service(role, tmp / f"{role}.jsonl", {"SSO_IDP": idp_url, "SSO_CLIENT": role})
        for role, service in started.items():
            if role != "idp":
                redirect_uri = service.wait_port() + STACKS[role]["callback"]
                params = {"client_id": role, "redirect_uri": redirect_uri}
                httpx.get(f"{idp_url}/idp/register/", params=params, timeout=20).raise_for_status()
        yield started
    finally:
        for service in started.values():
            service.stop()


@pytest.fixture(params=list(STACKS))
def stack(request: pytest.FixtureRequest, servers: dict[str, Service]) -> Service:
    if request.param not in servers:
        pytest.skip(f"{STACKS[request.param]['module']} is not installed")
    return servers[request.param]


class Browser:
    """One browser: its own cookie jar, a forged X-Forwarded-For and a request id on every request."""

    def __init__(self, service: Service, idp: Service, name: str) -> None:
        self.service, self.idp = service, idp
        self.request_id = f"sso-{service.role}-{name}"
        headers = {"X-Forwarded-For": FORGED_IP, "X-Request-ID": self.request_id}
        self.client = httpx.Client(headers=headers, timeout=30)
        self.seen: list[str] = []  # every code and state of this browser's flows

    def login_at_provider(self, user: str) -> None:
        self.client.get(f"{self.idp.url}/idp/login/", params={"u": user}).raise_for_status()

    def authorize(self, *, allow: bool = True) -> str:
        """Start the service's login and answer the provider's consent form; the callback URL it redirects to."""
        stack = STACKS[self.service.role]
        if self.service.role == "social":  # social-auth's begin view takes a POST (with Django's CSRF token)
            token = "t" * 32
            self.client.cookies.set("socialcsrf", token)
            begin = self.client.post(self.service.url + stack["start"], data={"csrfmiddlewaretoken": token})
        else:
            begin = self.client.get(self.service.url + stack["start"])
        assert begin.status_code == 302, begin.text[:500]
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


def _with(url: str, **changes: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = {**dict(urllib.parse.parse_qsl(parts.query)), **changes}
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _account_id(service: Service, email: str) -> str:
    db = sqlite3.connect(service.events.with_suffix(".sqlite3"))
    try:
        return str(db.execute("SELECT id FROM auth_user WHERE email = ?", (email,)).fetchone()[0])
    finally:
        db.close()


def _deactivate(service: Service, email: str) -> None:
    db = sqlite3.connect(service.events.with_suffix(".sqlite3"))
    try:
        db.execute("UPDATE auth_user SET is_active = 0 WHERE email = ?", (email,))
        db.commit()
    finally:
        db.close()


def _one_attempt(service: Service, browser: Browser) -> dict[str, Any]:
    records = service.records(browser.request_id)
    attempts = [r for r in records if r["evt"]["name"] == "authentication"]
    assert len(attempts) == 1, [r["evt"] for r in records]
    record = attempts[0]
    assert record["network"]["client"]["ip"] == "127.0.0.1"  # the peer, never the forged header
    assert FORGED_IP not in orjson.dumps(records).decode()
    _no_secrets(service, browser)
    return record


def _no_secrets(service: Service, browser: Browser) -> None:
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


@pytest.fixture
def browser(request: pytest.FixtureRequest, stack: Service, servers: dict[str, Service]) -> Iterator[Browser]:
    one = Browser(stack, servers["idp"], request.node.name.split("[")[0].removeprefix("test_"))
    yield one
    one.close()


def test_sso_login_is_one_success_with_the_services_account(stack: Service, browser: Browser) -> None:
    browser.login_at_provider("alice")
    landed = browser.get(browser.authorize())
    assert landed.url.path == "/private/" and landed.text.startswith("hello"), landed.text[:300]
    record = _one_attempt(stack, browser)
    assert record["evt"]["type"] == "authn_login_success"
    assert record["usr"]["id"] == _account_id(stack, "alice@example.com")
    assert record["http"]["request_id"] == browser.request_id


def test_consent_declined_at_the_provider_is_one_failed_login(stack: Service, browser: Browser) -> None:
    browser.login_at_provider("alice")
    callback = browser.authorize(allow=False)
    assert "error=access_denied" in callback
    browser.get(callback)
    record = _one_attempt(stack, browser)
    assert record["evt"]["type"] == "authn_login_fail"
    assert record["evt"]["reason"] == "not_allowed"


def test_a_forged_state_is_one_failed_login_invalid_token(stack: Service, browser: Browser) -> None:
    browser.login_at_provider("alice")
    callback = _with(browser.authorize(), state="forged-" + "x" * 24)
    answer = browser.get(callback)
    assert "hello" not in answer.text
    record = _one_attempt(stack, browser)
    assert (record["evt"]["type"], record["evt"]["reason"]) == ("authn_login_fail", "invalid_token")


def test_a_code_the_provider_refuses_is_one_failed_login_invalid_token(
    stack: Service, browser: Browser
) -> None:
    browser.login_at_provider("alice")
    callback = _with(browser.authorize(), code="forged-code-" + "y" * 20)  # the right state, a forged code
    answer = browser.get(callback)
    assert "hello" not in answer.text
    record = _one_attempt(stack, browser)
    assert (record["evt"]["type"], record["evt"]["reason"]) == ("authn_login_fail", "invalid_token")


def test_an_inactive_account_is_one_failed_login_with_its_id(stack: Service, browser: Browser) -> None:
    if stack.role == "social":  # social-auth only logs in the accounts it associated: a first login, then off
        first = Browser(stack, browser.idp, "inactive-first-login")
        first.login_at_provider("ina")
        assert first.get(first.authorize()).url.path == "/private/"
        first.close()
        _deactivate(stack, "ina@example.com")
    browser.login_at_provider("ina")
    answer = browser.get(browser.authorize())
    assert "hello" not in answer.text
    record = _one_attempt(stack, browser)
    assert (record["evt"]["type"], record["evt"]["reason"]) == ("authn_login_fail", "account_disabled")
    assert record["usr"]["id"] == _account_id(stack, "ina@example.com")


def test_an_identity_the_service_refuses_is_one_failed_login_not_allowed(
    stack: Service, browser: Browser
) -> None:
    """mozilla-django-oidc creates no account (`OIDC_CREATE_USER=False`); social-auth's whitelist and allauth's
    adapter (signup closed) allow `example.com` only."""
    browser.login_at_provider("carol" if stack.role == "mozilla" else "mallory")
    answer = browser.get(browser.authorize())
    assert "hello" not in answer.text
    record = _one_attempt(stack, browser)
    assert (record["evt"]["type"], record["evt"]["reason"]) == ("authn_login_fail", "not_allowed")
    assert "usr" not in record or "id" not in record["usr"]
