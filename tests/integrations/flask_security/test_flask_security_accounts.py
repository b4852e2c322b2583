"""Flask-Security-Too account changes with no event code: roles given and taken through the app's datastore
(in a view and in a script), accounts (de)activated and deleted, second factors added and removed."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask_security import auth_required
from flask_security_app import ACCOUNTS, User, build_app, db, user_id

import graffer_secevents as secevents
from graffer_secevents.testing import Capture

ADA = "ada@secevents-test.net"
OFF = "off@secevents-test.net"
PEER = "203.0.113.90"


def app_with_admin_routes() -> Flask:
    app = build_app()
    security = app.extensions["security"]
    with app.app_context():
        security.datastore.create_role(name="admin")
        db.session.commit()

    @app.post("/staff/<int:uid>/promote")
    @auth_required("session")
    def promote(uid: int) -> dict[str, Any]:
        target = db.session.get(User, uid)
        added = security.datastore.add_role_to_user(target, "admin")
        db.session.commit()
        return {"added": added}

    return app


def no_secrets(events: Capture) -> None:
    text = b"\n".join(events.lines).decode()
    for email, (_username, password, _active) in ACCOUNTS.items():
        assert email not in text and password not in text


def test_a_role_granted_in_a_view_names_the_actor_target_and_role(security_events: Capture) -> None:
    app = app_with_admin_routes()
    client = app.test_client()
    login = client.post(
        "/login", json={"email": ADA, "password": ACCOUNTS[ADA][1]}, environ_base={"REMOTE_ADDR": PEER}
    )
    assert login.status_code == 200
    off_id = user_id(app, OFF)
    response = client.post(f"/staff/{off_id}/promote", environ_base={"REMOTE_ADDR": PEER})
    assert response.json == {"added": True}
    again = client.post(f"/staff/{off_id}/promote", environ_base={"REMOTE_ADDR": PEER})
    assert again.json == {"added": False}  # no change, no event
    [change] = [r for r in security_events.records if r["evt"]["type"] == "authz_change"]
    assert change["evt"]["to_role"] == "admin" and change["evt"]["granted"] == ["admin"]
    assert change["usr"]["id"] == user_id(app, ADA)
    assert change["target"]["usr"]["id"] == off_id
    assert change["network"]["client"]["ip"] == PEER
    no_secrets(security_events)


def test_a_script_revokes_a_role_deactivates_and_deletes(security_events: Capture) -> None:
    app = app_with_admin_routes()
    datastore = app.extensions["security"].datastore
    with app.app_context():
        ada = db.session.query(User).filter_by(email=ADA).one()
        ada_id = str(ada.id)
        datastore.add_role_to_user(ada, "admin")
        secevents.set_user("ops:offboarding-script")
        try:
            assert datastore.remove_role_from_user(ada, "admin") is True
            assert datastore.remove_role_from_user(ada, "admin") is False
            assert datastore.deactivate_user(ada) is True
            assert datastore.deactivate_user(ada) is False
            datastore.toggle_active(ada)
            datastore.delete_user(ada)
            db.session.commit()
        finally:
            secevents.set_user(None)
    records = security_events.records
    assert [r["evt"]["type"] for r in records] == [
        "authz_change",
        "authz_change",
        "user_disabled",
        "user_enabled",
        "user_deleted",
    ]
    assert records[1]["evt"]["revoked"] == ["admin"] and records[1]["evt"]["from_role"] == "admin"
    assert "usr" not in records[0]  # nobody bound yet: no actor is invented
    assert {r["usr"]["id"] for r in records[1:]} == {"ops:offboarding-script"}
    assert {r["target"]["usr"]["id"] for r in records} == {ada_id}
    no_secrets(security_events)


# Flask-Security's own two-factor form passes SelectField choices the way wtforms now deprecates.
@pytest.mark.filterwarnings("ignore:Passing SelectField choices as tuples:DeprecationWarning")
def test_two_factor_set_up_then_disabled_through_its_views(security_events: Capture) -> None:
    app = build_app()
    client = app.test_client()
    env = {"REMOTE_ADDR": PEER}
    assert (
        client.post("/login", json={"email": ADA, "password": ACCOUNTS[ADA][1]}, environ_base=env).status_code
        == 200
    )
    assert client.post("/tf-setup", json={"setup": "authenticator"}, environ_base=env).status_code == 200
    with client.session_transaction() as session:
        secret = session["tf_totp_secret"]
    code = app.extensions["security"].totp_factory.generate_totp_password(secret)
    assert client.post("/tf-validate", json={"code": code}, environ_base=env).status_code == 200
    assert client.post("/tf-setup", json={"setup": "disable"}, environ_base=env).status_code == 200
    changes = ("authn_mfa_enabled", "authn_mfa_disabled")
    enabled, disabled = [r for r in security_events.records if r["evt"]["type"] in changes]
    assert (enabled["evt"]["type"], enabled["evt"]["method"]) == ("authn_mfa_enabled", "authenticator")
    assert disabled["evt"]["type"] == "authn_mfa_disabled"
    assert {enabled["usr"]["id"], disabled["usr"]["id"]} == {user_id(app, ADA)}
    assert {enabled["network"]["client"]["ip"], disabled["network"]["client"]["ip"]} == {PEER}
    assert secret not in b"\n".join(security_events.lines).decode()


def test_an_unknown_role_still_raises_and_writes_nothing(security_events: Capture) -> None:
    app = app_with_admin_routes()
    datastore = app.extensions["security"].datastore
    with app.app_context():
        ada = db.session.query(User).filter_by(email=ADA).one()
        with pytest.raises(
            ValueError, match="doesn't exist"
        ):  # Flask-Security's own error reaches the caller
            datastore.add_role_to_user(ada, "no-such-role")
    assert security_events.records == []
