"""Flask-Security-Too's own views, through Flask's test client: every flow of issue 14 writes its one event."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_security import reset_password_instructions_sent
from flask_security_app import ACCOUNTS, build_app, db, user_id

from graffer_secevents.testing import Capture

PEER = "203.0.113.21"
ADA = "ada@secevents-test.net"
ADA_PW = ACCOUNTS[ADA][1]
_ids = itertools.count()


@pytest.fixture
def app() -> Flask:
    return build_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def call(client: FlaskClient, method: str, url: str, **kwargs: Any) -> tuple[Any, str]:
    """One request from PEER with a fresh X-Request-ID; returns the response and that id."""
    request_id = f"fs-{next(_ids)}"
    headers = {"X-Request-ID": request_id, **kwargs.pop("headers", {})}
    response = client.open(url, method=method, headers=headers, environ_base={"REMOTE_ADDR": PEER}, **kwargs)
    return response, request_id


def only(events: Capture, request_id: str) -> dict[str, Any]:
    """The one record of this request (exactly one), with the request's IP and id."""
    mine = [r for r in events.records if r.get("http", {}).get("request_id") == request_id]
    assert len(mine) == 1, mine
    assert mine[0]["network"]["client"]["ip"] == PEER
    return mine[0]


def assert_no_secrets(events: Capture) -> None:
    text = b"\n".join(events.lines).decode()
    for email, (_username, password, _active) in ACCOUNTS.items():
        assert email not in text and password not in text
    assert "new-Passw0rd-long" not in text


def login(client: FlaskClient, **body: str) -> tuple[Any, str]:
    return call(client, "POST", "/login", json=body)


@pytest.mark.parametrize("identity", [{"email": ADA}, {"username": "adalovelace"}], ids=["email", "username"])
def test_json_login_success_is_one_event_with_the_account_id(
    app: Flask, client: FlaskClient, security_events: Capture, identity: dict[str, str]
) -> None:
    response, rid = login(client, password=ADA_PW, **identity)
    assert response.status_code == 200
    record = only(security_events, rid)
    assert record["evt"]["type"] == "authn_login_success"
    assert record["usr"]["id"] == user_id(app, ADA)  # the id, not fs_uniquifier
    assert_no_secrets(security_events)


def test_form_login_success(app: Flask, client: FlaskClient, security_events: Capture) -> None:
    response, rid = call(client, "POST", "/login", data={"email": ADA, "password": ADA_PW})
    assert response.status_code == 302
    assert only(security_events, rid)["usr"]["id"] == user_id(app, ADA)


def test_wrong_password_has_the_same_id_as_the_success(
    app: Flask, client: FlaskClient, security_events: Capture
) -> None:
    response, rid = login(client, email=ADA, password="wrong")
    assert response.status_code == 400
    record = only(security_events, rid)
    assert record["evt"] == {
        "type": "authn_login_fail",
        "name": "authentication",
        "category": "authentication",
        "outcome": "failure",
        "reason": "invalid_credentials",
    }
    assert record["usr"]["id"] == user_id(app, ADA)
    assert record["usr"]["exists"] is True
    assert record["usr"]["login"].startswith("anon_")
    assert_no_secrets(security_events)


def test_unknown_account_by_username(client: FlaskClient, security_events: Capture) -> None:
    response, rid = login(client, username="nobodyhere", password="whatever")
    assert response.status_code == 400
    record = only(security_events, rid)
    assert record["evt"]["reason"] == "unknown_user"
    assert record["usr"]["exists"] is False
    assert record["usr"]["id"] == record["usr"]["login"]  # the processed login (docs/record.md)


def test_unknown_account_by_email_is_hashed(client: FlaskClient, security_events: Capture) -> None:
    _response, rid = call(
        client, "POST", "/login", data={"email": "ghost@secevents-test.net", "password": "x"}
    )
    record = only(security_events, rid)
    assert record["evt"]["reason"] == "unknown_user"
    assert "ghost@secevents-test.net" not in b"\n".join(security_events.lines).decode()


def test_inactive_account(app: Flask, client: FlaskClient, security_events: Capture) -> None:
    _response, rid = login(
        client, email="off@secevents-test.net", password=ACCOUNTS["off@secevents-test.net"][1]
    )
    record = only(security_events, rid)
    assert record["evt"]["type"] == "authn_login_fail"
    assert record["evt"]["reason"] == "account_disabled"
    assert record["usr"] == {
        "id": user_id(app, "off@secevents-test.net"),
        "login": record["usr"]["login"],
        "email": record["usr"]["email"],
        "exists": True,
    }
    assert_no_secrets(security_events)


def test_locked_account_is_authn_login_lock(app: Flask, security_events: Capture) -> None:
    from flask_security_app import User

    User.is_locked = lambda self, form_error=None: True  # type: ignore[method-assign]
    try:
        _response, rid = login(app.test_client(), email=ADA, password=ADA_PW)
    finally:
        del User.is_locked
    record = only(security_events, rid)
    assert record["evt"]["type"] == "authn_login_lock"
    assert record["usr"]["id"] == user_id(app, ADA)


def test_logout(app: Flask, client: FlaskClient, security_events: Capture) -> None:
    login(client, email=ADA, password=ADA_PW)
    response, rid = call(client, "POST", "/logout", json={})
    assert response.status_code == 200
    record = only(security_events, rid)
    assert record["evt"]["type"] == "session_logout"
    assert record["usr"]["id"] == user_id(app, ADA)


def test_signup_and_its_auto_login_carry_the_new_id_once_each(
    app: Flask, client: FlaskClient, security_events: Capture
) -> None:
    body = {
        "email": "new@secevents-test.net",
        "password": "new-Passw0rd-long",
        "password_confirm": "new-Passw0rd-long",
    }
    response, rid = call(client, "POST", "/register", json=body)
    assert response.status_code == 200, response.json
    mine = [r for r in security_events.records if r["http"]["request_id"] == rid]
    assert sorted(r["evt"]["type"] for r in mine) == ["authn_login_success", "user_signup"]
    new_id = user_id(app, "new@secevents-test.net")
    assert {r["usr"]["id"] for r in mine} == {new_id}
    assert_no_secrets(security_events)
    assert "new@secevents-test.net" not in b"\n".join(security_events.lines).decode()


@pytest.fixture
def reset_tokens(app: Flask) -> Iterator[list[str]]:
    tokens: list[str] = []

    def keep(_sender: Any, token: str, **_extra: Any) -> None:
        tokens.append(token)

    reset_password_instructions_sent.connect(keep, sender=app)
    yield tokens
    reset_password_instructions_sent.disconnect(keep, sender=app)


def test_reset_request_known_and_unknown(app: Flask, client: FlaskClient, security_events: Capture) -> None:
    _response, known = call(client, "POST", "/reset", json={"email": ADA})
    _response, unknown = call(client, "POST", "/reset", json={"email": "ghost@secevents-test.net"})
    first, second = only(security_events, known), only(security_events, unknown)
    assert first["evt"]["type"] == second["evt"]["type"] == "authn_password_reset_request"
    assert first["usr"]["exists"] is True and first["usr"]["id"] == user_id(app, ADA)
    assert second["usr"]["exists"] is False and second["usr"]["login"].startswith("anon_")
    assert "ghost@secevents-test.net" not in b"\n".join(security_events.lines).decode()


def test_reset_request_unknown_with_generic_responses(security_events: Capture) -> None:
    app = build_app()
    app.config["SECURITY_RETURN_GENERIC_RESPONSES"] = True
    response, rid = call(app.test_client(), "POST", "/reset", json={"email": "ghost@secevents-test.net"})
    assert response.status_code == 200  # Flask-Security hides that the account does not exist
    assert only(security_events, rid)["usr"]["exists"] is False


def test_reset_completed_and_bad_token(
    app: Flask, client: FlaskClient, security_events: Capture, reset_tokens: list[str]
) -> None:
    call(client, "POST", "/reset", json={"email": ADA})
    new = {"password": "new-Passw0rd-long", "password_confirm": "new-Passw0rd-long"}
    _response, bad = call(client, "POST", "/reset/not-a-token", json=new)
    record = only(security_events, bad)
    assert (record["evt"]["type"], record["evt"]["outcome"]) == ("authn_password_reset", "failure")
    assert record["evt"]["reason"] == "invalid_token"
    assert record["usr"]["exists"] is False
    response, good = call(client, "POST", f"/reset/{reset_tokens[0]}", json=new)
    assert response.status_code == 200, response.json
    done = [r for r in security_events.records if r["http"]["request_id"] == good]
    assert [r["evt"]["type"] for r in done] == ["authn_password_reset"]  # no auto-login (the default)
    assert done[0]["evt"]["outcome"] == "success" and done[0]["usr"]["id"] == user_id(app, ADA)
    assert_no_secrets(security_events)


def test_expired_reset_token(
    app: Flask, client: FlaskClient, security_events: Capture, reset_tokens: list[str]
) -> None:
    call(client, "POST", "/reset", json={"email": ADA})
    app.config["SECURITY_RESET_PASSWORD_WITHIN"] = timedelta(seconds=-1)
    new = {"password": "new-Passw0rd-long", "password_confirm": "new-Passw0rd-long"}
    _response, rid = call(client, "POST", f"/reset/{reset_tokens[0]}", json=new)
    record = only(security_events, rid)
    assert record["evt"]["reason"] == "expired_token"
    assert record["usr"]["id"] == user_id(app, ADA)


def test_password_change_is_never_a_second_login(
    app: Flask, client: FlaskClient, security_events: Capture
) -> None:
    login(client, email=ADA, password=ADA_PW)
    body = {
        "password": ADA_PW,
        "new_password": "new-Passw0rd-long",
        "new_password_confirm": "new-Passw0rd-long",
    }
    response, rid = call(client, "POST", "/change", json=body)
    assert response.status_code == 200, response.json
    record = only(security_events, rid)
    assert record["evt"]["type"] == "authn_password_change"
    assert record["usr"]["id"] == user_id(app, ADA)
    assert security_events.records.count(record) == 1
    assert [r["evt"]["type"] for r in security_events.records].count("authn_login_success") == 1
    assert_no_secrets(security_events)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("wrong-old-password", "new-Passw0rd-long", "invalid_credentials"),
        (ADA_PW, "short", "password_policy"),
    ],
)
def test_password_change_failures(
    app: Flask, client: FlaskClient, security_events: Capture, old: str, new: str, reason: str
) -> None:
    login(client, email=ADA, password=ADA_PW)
    response, rid = call(
        client, "POST", "/change", json={"password": old, "new_password": new, "new_password_confirm": new}
    )
    assert response.status_code == 400
    record = only(security_events, rid)
    assert record["evt"]["type"] == "authn_password_change_fail"
    assert record["evt"]["reason"] == reason
    assert record["usr"]["id"] == user_id(app, ADA)


def test_two_factor_code_failure_then_success(
    app: Flask, client: FlaskClient, security_events: Capture
) -> None:
    security = app.extensions["security"]
    with app.app_context():
        account = security.datastore.find_user(email=ADA)
        secret = security.totp_factory.generate_totp_secret()
        security.datastore.tf_set(account, "authenticator", totp_secret=secret)
        db.session.commit()
    response, first = login(client, email=ADA, password=ADA_PW)
    assert response.json["response"]["tf_required"] is True
    assert not [r for r in security_events.records if r["http"]["request_id"] == first]  # not logged in yet
    _response, bad = call(client, "POST", "/tf-validate", json={"code": "000000"})
    failed = only(security_events, bad)
    assert (failed["evt"]["type"], failed["evt"]["outcome"]) == ("authn_mfa_challenge", "failure")
    assert failed["evt"]["method"] == "authenticator" and failed["usr"]["id"] == user_id(app, ADA)
    with app.app_context():
        code = security.totp_factory.generate_totp_password(secret)
    response, good = call(client, "POST", "/tf-validate", json={"code": code})
    assert response.status_code == 200, response.json
    done = [r for r in security_events.records if r["http"]["request_id"] == good]
    assert [(r["evt"]["type"], r["evt"]["outcome"]) for r in done] == [
        ("authn_mfa_challenge", "success"),
        ("authn_login_success", "success"),
    ]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Authentication-Token": "forged.token.value"}, "invalid_token"),
        (
            {"Authorization": "Basic " + base64.b64encode(f"{ADA}:wrong".encode()).decode()},
            "invalid_credentials",
        ),
    ],
    ids=["auth-token", "basic"],
)
def test_bad_credential_on_an_auth_required_view_is_one_event(
    security_events: Capture, headers: dict[str, str], reason: str
) -> None:
    app = build_app(status_events={401: "authz_fail"})  # the status rule is on, and still writes nothing more
    response, rid = call(
        app.test_client(), "GET", "/api/me", headers={"Accept": "application/json", **headers}
    )
    assert response.status_code == 401
    record = only(security_events, rid)
    assert record["evt"]["type"] == "authn_login_fail"
    assert record["evt"]["reason"] == reason
    assert_no_secrets(security_events)


def test_no_credential_on_an_auth_required_view_is_one_authz_fail(security_events: Capture) -> None:
    app = build_app(status_events={401: "authz_fail"})
    response, rid = call(app.test_client(), "GET", "/api/me", headers={"Accept": "application/json"})
    assert response.status_code == 401
    record = only(security_events, rid)
    assert record["evt"]["type"] == "authz_fail" and record["evt"]["resource"] == "/api/me"
    assert "usr" not in record


def test_token_login_then_token_request(app: Flask, client: FlaskClient, security_events: Capture) -> None:
    response, _rid = call(
        client, "POST", "/login?include_auth_token", json={"email": ADA, "password": ADA_PW}
    )
    token = response.json["response"]["user"]["authentication_token"]
    response, rid = call(app.test_client(), "GET", "/api/me", headers={"Authentication-Token": token})
    assert response.status_code == 200
    assert not [
        r for r in security_events.records if r["http"]["request_id"] == rid
    ]  # a token use is no login


def test_refresh_token_reused_after_rotation(
    app: Flask, client: FlaskClient, security_events: Capture
) -> None:
    response, _rid = call(
        client, "POST", "/login?include_auth_token", json={"email": ADA, "password": ADA_PW}
    )
    first = response.json["response"]["user"]["refresh_token"]
    fresh = app.test_client()  # a token client: no session
    response, rotated = call(fresh, "POST", "/refresh-token", json={"refresh_token": first})
    assert response.status_code == 200, response.json
    assert not [
        r for r in security_events.records if r["http"]["request_id"] == rotated
    ]  # an exchange is no event
    response, reused = call(app.test_client(), "POST", "/refresh-token", json={"refresh_token": first})
    assert response.status_code == 400
    record = only(security_events, reused)
    assert (record["evt"]["type"], record["evt"]["outcome"]) == ("authn_token_reuse", "failure")
    assert record["usr"]["id"] == user_id(app, ADA)
    assert record["evt"]["token_id"].startswith("anon_")  # always hashed
    response, garbage = call(app.test_client(), "POST", "/refresh-token", json={"refresh_token": "garbage"})
    assert response.status_code == 400
    bad = only(security_events, garbage)
    assert (bad["evt"]["type"], bad["evt"]["reason"]) == ("authn_login_fail", "invalid_token")


def test_a_role_403_names_the_authenticated_user(
    app: Flask, client: FlaskClient, security_events: Capture
) -> None:
    login(client, email=ADA, password=ADA_PW)
    response, rid = call(client, "GET", "/api/admin", headers={"Accept": "application/json"})
    assert response.status_code == 403
    record = only(security_events, rid)
    assert record["evt"]["type"] == "authz_fail" and record["evt"]["resource"] == "/api/admin"
    assert record["usr"]["id"] == user_id(app, ADA)
