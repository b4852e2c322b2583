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

import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("oauth2_provider")
pytest.importorskip("waitress")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared SSO helpers
from sso_helpers import IDP_SCRIPT, Browser, Service, one_attempt, start_idp, with_query

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


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Service]]:
    """The provider, then every installed client stack (started together), each registered at the provider."""
    tmp = tmp_path_factory.mktemp("sso")
    idp = start_idp(tmp)
    started: dict[str, Service] = {"idp": idp}
    try:
        for role, stack in STACKS.items():
            try:
                __import__(stack["module"])
            except ImportError:
                continue
            env = {"SSO_IDP": idp.url, "SSO_CLIENT": role}
            started[role] = Service(IDP_SCRIPT, role, tmp / f"{role}.jsonl", env)
        for role, service in started.items():
            if role != "idp":
                service.register_at(idp, STACKS[role]["callback"])
        yield started
    finally:
        for service in started.values():
            service.stop()


@pytest.fixture(params=list(STACKS))
def stack(request: pytest.FixtureRequest, servers: dict[str, Service]) -> Service:
    if request.param not in servers:
        pytest.skip(f"{STACKS[request.param]['module']} is not installed")
    return servers[request.param]


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


@pytest.fixture
def browser(request: pytest.FixtureRequest, stack: Service, servers: dict[str, Service]) -> Iterator[Browser]:
    name = request.node.name.split("[")[0].removeprefix("test_")
    start = STACKS[stack.role]["start"]
    one = Browser(stack, servers["idp"], name, start=start, post_start=stack.role == "social")
    yield one
    one.close()


def test_sso_login_is_one_success_with_the_services_account(stack: Service, browser: Browser) -> None:
    browser.login_at_provider("alice")
    landed = browser.get(browser.authorize())
    assert landed.url.path == "/private/" and landed.text.startswith("hello"), landed.text[:300]
    record = one_attempt(stack, browser)
    assert record["evt"]["type"] == "authn_login_success"
    assert record["usr"]["id"] == _account_id(stack, "alice@example.com")
    assert record["http"]["request_id"] == browser.request_id


def test_consent_declined_at_the_provider_is_one_failed_login(stack: Service, browser: Browser) -> None:
    browser.login_at_provider("alice")
    callback = browser.authorize(allow=False)
    assert "error=access_denied" in callback
    browser.get(callback)
    record = one_attempt(stack, browser)
    assert record["evt"]["type"] == "authn_login_fail"
    assert record["evt"]["reason"] == "not_allowed"


def test_a_forged_state_is_one_failed_login_invalid_token(stack: Service, browser: Browser) -> None:
    browser.login_at_provider("alice")
    callback = with_query(browser.authorize(), state="forged-" + "x" * 24)
    answer = browser.get(callback)
    assert "hello" not in answer.text
    record = one_attempt(stack, browser)
    assert (record["evt"]["type"], record["evt"]["reason"]) == ("authn_login_fail", "invalid_token")


def test_a_code_the_provider_refuses_is_one_failed_login_invalid_token(
    stack: Service, browser: Browser
) -> None:
    browser.login_at_provider("alice")
    callback = with_query(
        browser.authorize(), code="forged-code-" + "y" * 20
    )  # the right state, a forged code
    answer = browser.get(callback)
    assert "hello" not in answer.text
    record = one_attempt(stack, browser)
    assert (record["evt"]["type"], record["evt"]["reason"]) == ("authn_login_fail", "invalid_token")


def test_an_inactive_account_is_one_failed_login_with_its_id(stack: Service, browser: Browser) -> None:
    if stack.role == "social":  # social-auth only logs in the accounts it associated: a first login, then off
        first = Browser(stack, browser.idp, "inactive-first-login", start=browser.start, post_start=True)
        first.login_at_provider("ina")
        assert first.get(first.authorize()).url.path == "/private/"
        first.close()
        _deactivate(stack, "ina@example.com")
    browser.login_at_provider("ina")
    answer = browser.get(browser.authorize())
    assert "hello" not in answer.text
    record = one_attempt(stack, browser)
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
    record = one_attempt(stack, browser)
    assert (record["evt"]["type"], record["evt"]["reason"]) == ("authn_login_fail", "not_allowed")
    assert "usr" not in record or "id" not in record["usr"]
