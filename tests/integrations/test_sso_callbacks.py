"""The SSO callback rule of every middleware (`integrations/_sso.py`), proven on stacks that hook nothing of their
own: Authlib's OpenID Connect client in a Flask service (Flask-Login) and in a FastAPI service, each on a real
server, logging in through a real provider (django-oauth-toolkit, `django/sso_servers.py`) with a browser
(httpx, one cookie jar per browser). No event code in the services but FastAPI's documented success recipe.

A refusal Authlib raises (a declined consent, a forged state, a code the provider refuses: a 500, which on
FastAPI Starlette's ServerErrorMiddleware answers outside our middleware) and a 403 the service answers to an
identity it refuses are each exactly one ``authn_login_fail`` with a bounded ``evt.reason``, the peer's IP and
the browser's request id, and no code, state, token or client secret written. Django's stacks:
`django/test_sso_logins.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("authlib")
pytest.importorskip("oauth2_provider")
pytest.importorskip("waitress")

from sso_helpers import Browser, Service, one_attempt, start_idp, with_query

CLIENTS = Path(__file__).with_name("sso_clients.py")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Service]]:
    tmp = tmp_path_factory.mktemp("sso-clients")
    idp = start_idp(tmp)
    started = {"idp": idp}
    try:
        for role in ("flask", "fastapi"):
            started[role] = Service(
                CLIENTS, role, tmp / f"{role}.jsonl", {"SSO_IDP": idp.url, "SSO_CLIENT": role}
            )
        for role in ("flask", "fastapi"):
            started[role].register_at(idp, "/auth")
        yield started
    finally:
        for service in started.values():
            service.stop()


@pytest.fixture(params=["flask", "fastapi"])
def browser(request: pytest.FixtureRequest, servers: dict[str, Service]) -> Iterator[Browser]:
    name = request.node.name.split("[")[0].removeprefix("test_")
    one = Browser(servers[request.param], servers["idp"], name, start="/login")
    yield one
    one.close()


def test_sso_login_is_one_success_with_the_account(browser: Browser) -> None:
    browser.login_at_provider("alice")
    landed = browser.get(browser.authorize())
    assert landed.text == "hello 1001", landed.text[:300]
    record = one_attempt(browser.service, browser)
    assert record["evt"]["type"] == "authn_login_success"
    assert record["usr"]["id"] == "1001"


def test_consent_declined_is_one_failed_login_not_allowed(browser: Browser) -> None:
    browser.login_at_provider("alice")
    callback = browser.authorize(allow=False)
    assert "error=access_denied" in callback
    assert browser.get(callback).status_code == 500  # Authlib raises the provider's error
    record = one_attempt(browser.service, browser)
    assert (record["evt"]["type"], record["evt"]["reason"]) == ("authn_login_fail", "not_allowed")


@pytest.mark.parametrize("tamper", ["state", "code"])
def test_a_forged_state_or_code_is_one_failed_login_invalid_token(browser: Browser, tamper: str) -> None:
    browser.login_at_provider("alice")
    browser.request_id += f"-{tamper}"
    browser.client.headers["X-Request-ID"] = browser.request_id
    callback = with_query(browser.authorize(), **{tamper: "forged-" + "z" * 24})
    assert browser.get(callback).status_code == 500
    record = one_attempt(browser.service, browser)
    assert (record["evt"]["type"], record["evt"]["reason"]) == ("authn_login_fail", "invalid_token")


@pytest.mark.parametrize("user", ["carol", "ina"])
def test_an_identity_the_service_refuses_is_one_failed_login_not_allowed(browser: Browser, user: str) -> None:
    """No account for it (carol), an inactive one (ina): the service answers 403."""
    browser.login_at_provider(user)
    browser.request_id += f"-{user}"
    browser.client.headers["X-Request-ID"] = browser.request_id
    assert browser.get(browser.authorize()).status_code == 403
    record = one_attempt(browser.service, browser)
    assert (record["evt"]["type"], record["evt"]["reason"]) == ("authn_login_fail", "not_allowed")
