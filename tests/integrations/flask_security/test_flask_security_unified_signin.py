"""Flask-Security-Too's unified sign-in (`SECURITY_UNIFIED_SIGNIN`) through its own views, `/us-signin` and
`/us-signin/send-code`, with Flask's test client: one event per attempt, with the account's id."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_security import us_security_token_sent
from flask_security_app import ACCOUNTS, User, build_app, db, user_id

from graffer_secevents.testing import Capture

# Flask-Security's unified sign-in form builds its `chosen_method` RadioField with tuple choices, which the
# newest WTForms deprecates (Flask-Security's code, not ours).
pytestmark = pytest.mark.filterwarnings("ignore:Passing SelectField choices as tuples:DeprecationWarning")

PEER = "203.0.113.22"
ADA = "ada@secevents-test.net"
ADA_PW = ACCOUNTS[ADA][1]
OFF = "off@secevents-test.net"
PHONES = {ADA: "+16505551212", OFF: "+16505551213"}
_ids = itertools.count()


@pytest.fixture
def app() -> Flask:
    app = build_app(unified_signin=True)
    security: Any = app.extensions["security"]
    with app.app_context():
        for email, phone in PHONES.items():
            user = db.session.query(User).filter_by(email=email).one()
            security.datastore.us_set(user, "email", security.totp_factory.generate_totp_secret())
            security.datastore.us_set(user, "sms", security.totp_factory.generate_totp_secret(), phone=phone)
        db.session.commit()
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def codes(app: Flask) -> Iterator[list[str]]:
    """The one-time codes Flask-Security sends (by e-mail or SMS), as its signal reports them."""
    sent: list[str] = []

    def keep(_sender: Any, login_token: str | None = None, **_extra: Any) -> None:
        if login_token:
            sent.append(login_token)

    us_security_token_sent.connect(keep, sender=app)
    yield sent
    us_security_token_sent.disconnect(keep, sender=app)


def call(client: FlaskClient, url: str, **kwargs: Any) -> tuple[Any, str]:
    """One POST from PEER with a fresh X-Request-ID; returns the response and that id."""
    request_id = f"us-{next(_ids)}"
    response = client.post(
        url, headers={"X-Request-ID": request_id}, environ_base={"REMOTE_ADDR": PEER}, **kwargs
    )
    return response, request_id


def signin(client: FlaskClient, identity: str, passcode: str) -> tuple[Any, str]:
    return call(client, "/us-signin", json={"identity": identity, "passcode": passcode})


def mine(events: Capture, request_id: str) -> list[dict[str, Any]]:
    return [r for r in events.records if r.get("http", {}).get("request_id") == request_id]


def only(events: Capture, request_id: str) -> dict[str, Any]:
    """The one record of this request (exactly one), with the request's IP and id."""
    records = mine(events, request_id)
    assert len(records) == 1, records
    assert records[0]["network"]["client"]["ip"] == PEER
    return records[0]


def assert_no_secrets(events: Capture, *more: str) -> None:
    text = b"\n".join(events.lines).decode()
    for email, (_username, password, _active) in ACCOUNTS.items():
        assert email not in text and password not in text
    for secret in more:
        assert secret not in text


def test_password_signin_and_wrong_password_share_the_account_id(
    app: Flask, client: FlaskClient, security_events: Capture
) -> None:
    response, bad = signin(client, ADA, "wrong password")
    assert response.status_code == 400
    response, ok = signin(client, ADA, ADA_PW)
    assert response.status_code == 200, response.json
    failure, success = only(security_events, bad), only(security_events, ok)
    assert failure["evt"]["type"] == "authn_login_fail"
    assert failure["evt"]["reason"] == "invalid_credentials"
    assert failure["usr"]["exists"] is True
    assert failure["usr"]["login"].startswith("anon_")  # what was typed, hashed
    assert success["evt"]["type"] == "authn_login_success"
    assert success["usr"]["id"] == failure["usr"]["id"] == user_id(app, ADA)  # the id, not fs_uniquifier
    assert len(security_events.records) == 2
    assert_no_secrets(security_events)


def test_signin_by_username(app: Flask, client: FlaskClient, security_events: Capture) -> None:
    response, rid = signin(client, "adalovelace", ADA_PW)
    assert response.status_code == 200, response.json
    assert only(security_events, rid)["usr"]["id"] == user_id(app, ADA)


@pytest.mark.parametrize("method", ["email", "sms"])
def test_code_sent_then_signin_with_it(
    app: Flask, client: FlaskClient, security_events: Capture, codes: list[str], method: str
) -> None:
    response, sent = call(client, "/us-signin/send-code", json={"identity": ADA, "chosen_method": method})
    assert response.status_code == 200, response.json
    assert mine(security_events, sent) == []  # a code sent is not a login yet
    response, bad = signin(client, ADA, "000000" if codes[-1] != "000000" else "111111")
    assert response.status_code == 400
    response, ok = signin(client, ADA, codes[-1])
    assert response.status_code == 200, response.json
    failure, success = only(security_events, bad), only(security_events, ok)
    assert (failure["evt"]["type"], failure["evt"]["reason"]) == ("authn_login_fail", "invalid_credentials")
    assert failure["usr"]["exists"] is True
    assert success["evt"]["type"] == "authn_login_success"
    assert success["usr"]["id"] == failure["usr"]["id"] == user_id(app, ADA)
    assert len(security_events.records) == 2
    assert_no_secrets(security_events, codes[-1])


@pytest.mark.parametrize("url", ["/us-signin", "/us-signin/send-code"])
def test_unknown_identity(client: FlaskClient, security_events: Capture, url: str) -> None:
    body = {"identity": "ghost@secevents-test.net", "passcode": "whatever", "chosen_method": "email"}
    response, rid = call(client, url, json=body)
    assert response.status_code == 400
    record = only(security_events, rid)
    assert (record["evt"]["type"], record["evt"]["reason"]) == ("authn_login_fail", "unknown_user")
    assert record["usr"]["exists"] is False
    assert record["usr"]["id"] == record["usr"]["login"]  # the processed login (docs/record.md)
    assert len(security_events.records) == 1
    assert_no_secrets(security_events, "ghost@secevents-test.net")


def test_unknown_identity_with_generic_responses(security_events: Capture) -> None:
    app = build_app(unified_signin=True)
    app.config["SECURITY_RETURN_GENERIC_RESPONSES"] = True  # Flask-Security moves the field errors away
    response, rid = signin(app.test_client(), "ghost@secevents-test.net", "whatever")
    assert response.status_code == 400
    record = only(security_events, rid)
    assert (record["evt"]["reason"], record["usr"]["exists"]) == ("unknown_user", False)
    assert len(security_events.records) == 1


@pytest.mark.parametrize("url", ["/us-signin", "/us-signin/send-code"])
def test_disabled_account(app: Flask, client: FlaskClient, security_events: Capture, url: str) -> None:
    body = {"identity": OFF, "passcode": ACCOUNTS[OFF][1], "chosen_method": "email"}
    _response, rid = call(client, url, json=body)
    record = only(security_events, rid)
    assert (record["evt"]["type"], record["evt"]["reason"]) == ("authn_login_fail", "account_disabled")
    assert record["usr"]["id"] == user_id(app, OFF)
    assert record["usr"]["exists"] is True
    assert len(security_events.records) == 1
    assert_no_secrets(security_events)


def test_locked_account_is_authn_login_lock(app: Flask, security_events: Capture) -> None:
    User.is_locked = lambda self, form_error=None: True  # type: ignore[method-assign]
    try:
        _response, rid = signin(app.test_client(), ADA, "wrong password")  # refused before the passcode
    finally:
        del User.is_locked
    record = only(security_events, rid)
    assert record["evt"]["type"] == "authn_login_lock"
    assert record["usr"]["id"] == user_id(app, ADA)
    assert len(security_events.records) == 1


@pytest.mark.parametrize(
    "body",
    [{"identity": ADA}, {"identity": ADA, "passcode": ""}, {"passcode": "x"}],
    ids=["no-passcode", "empty-passcode", "no-identity"],
)
def test_no_credential_presented_is_no_login_attempt(
    client: FlaskClient, security_events: Capture, body: dict[str, str]
) -> None:
    response, _rid = call(client, "/us-signin", json=body)
    assert response.status_code == 400
    assert security_events.records == []


def test_send_code_by_a_method_not_set_up_is_no_login_attempt(security_events: Capture) -> None:
    client = build_app(unified_signin=True).test_client()  # no code method set up for anyone
    response, _rid = call(client, "/us-signin/send-code", json={"identity": ADA, "chosen_method": "sms"})
    assert response.status_code == 400
    assert security_events.records == []


def test_form_post_wrong_then_right_password(
    app: Flask, client: FlaskClient, security_events: Capture
) -> None:
    _response, bad = call(client, "/us-signin", data={"identity": ADA, "passcode": "wrong", "submit": "y"})
    response, ok = call(client, "/us-signin", data={"identity": ADA, "passcode": ADA_PW, "submit": "y"})
    assert response.status_code == 302
    assert only(security_events, bad)["evt"]["reason"] == "invalid_credentials"
    assert only(security_events, ok)["usr"]["id"] == user_id(app, ADA)
    assert len(security_events.records) == 2
