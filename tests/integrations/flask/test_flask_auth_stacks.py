"""Flask-JWT-Extended and Flask-HTTPAuth set up as their own docs show, the `SecurityEvents` extension added,
no event code in the app; plus a hand-written Flask view that answers 401 to a bad `Authorization` header.
Every flow through the stacks' own endpoints with Flask's test client: exactly one right record."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask, abort, jsonify, request
from flask_httpauth import HTTPBasicAuth, HTTPTokenAuth, MultiAuth
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    get_jwt,
    get_jwt_identity,
    jwt_required,
)

import graffer_secevents as api
from graffer_secevents._errors import reset_warnings
from graffer_secevents.integrations.flask import SecurityEvents
from graffer_secevents.testing import Capture, hashed

PEER = "203.0.113.21"
USERS = {"test": "test", "ada": "correct horse"}  # Flask-JWT-Extended's docs log in "test"/"test"
BLOCKLIST: set[str] = set()


def only(security_events: Capture, evt_type: str, **match: Any) -> dict[str, Any]:
    assert [r["evt"]["type"] for r in security_events.records] == [evt_type], security_events.records
    return security_events.assert_emitted(evt_type, network__client__ip=PEER, **match)


def absent(security_events: Capture, *secrets: str) -> None:
    text = json.dumps(security_events.records)
    for secret in secrets:
        assert secret not in text


# --- Flask-JWT-Extended, as its "Basic Usage" page and its blocklist / user-lookup pages show ---------------


def jwt_app(**extension: Any) -> Flask:
    app = Flask(__name__)
    app.config["JWT_SECRET_KEY"] = "super-secret-key-for-the-tests-only-32b"
    jwt = JWTManager(app)
    SecurityEvents(app, **extension)

    @jwt.token_in_blocklist_loader
    def check_if_token_revoked(jwt_header: dict[str, Any], jwt_payload: dict[str, Any]) -> bool:
        return jwt_payload["jti"] in BLOCKLIST

    @jwt.user_lookup_loader
    def user_lookup_callback(_jwt_header: dict[str, Any], jwt_data: dict[str, Any]) -> str | None:
        return jwt_data["sub"] if jwt_data["sub"] in USERS else None

    @app.route("/login", methods=["POST"])
    def login() -> Any:
        username = request.json.get("username", None)  # type: ignore[union-attr]
        password = request.json.get("password", None)  # type: ignore[union-attr]
        if USERS.get(username) != password:
            return jsonify({"msg": "Bad username or password"}), 401
        access_token = create_access_token(identity=username)
        refresh_token = create_refresh_token(identity=username)
        return jsonify(access_token=access_token, refresh_token=refresh_token)

    @app.route("/refresh", methods=["POST"])
    @jwt_required(refresh=True)
    def refresh() -> Any:
        return jsonify(access_token=create_access_token(identity=get_jwt_identity()))

    @app.route("/protected", methods=["GET"])
    @jwt_required()
    def protected() -> Any:
        return jsonify(logged_in_as=get_jwt_identity()), 200

    @app.route("/admin", methods=["GET"])
    @jwt_required()
    def admin() -> Any:
        abort(403)

    @app.route("/logout", methods=["DELETE"])
    @jwt_required()
    def logout() -> Any:
        BLOCKLIST.add(get_jwt()["jti"])
        return jsonify(msg="JWT revoked")

    return app


@pytest.fixture
def jwt_client() -> Any:
    return jwt_app().test_client()


def token(client: Any, username: str = "test", password: str = "test") -> str:
    response = client.post("/login", json={"username": username, "password": password})
    return str(response.json["access_token"])


def get(client: Any, path: str, bearer: str | None = None, method: str = "GET") -> Any:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    return client.open(path, method=method, headers=headers, environ_base={"REMOTE_ADDR": PEER})


def test_jwt_login_is_a_login_success_with_the_identity(jwt_client: Any, security_events: Capture) -> None:
    response = jwt_client.post(
        "/login", json={"username": "test", "password": "test"}, environ_base={"REMOTE_ADDR": PEER}
    )
    assert response.status_code == 200
    only(security_events, "authn_login_success", usr__id="test", usr__login=hashed("test"))
    absent(security_events, response.json["access_token"], response.json["refresh_token"])


def test_jwt_wrong_password_is_a_failed_login(security_events: Capture) -> None:
    client = jwt_app(find_account=lambda login: login if login in USERS else None).test_client()
    for username, exists in (("test", True), ("mallory", False)):
        response = client.post(
            "/login", json={"username": username, "password": "guess"}, environ_base={"REMOTE_ADDR": PEER}
        )
        assert response.status_code == 401
        record = only(security_events, "authn_login_fail", usr__exists=exists, usr__login=hashed(username))
        assert record["evt"]["reason"] == ("invalid_credentials" if exists else "unknown_user")
        assert record["usr"]["id"] == ("test" if exists else hashed(username))
        absent(security_events, "guess", "mallory")
        security_events.clear()


def test_jwt_brute_force_then_success_is_detected(security_events: Capture) -> None:
    client = jwt_app(find_account=lambda login: login if login in USERS else None).test_client()
    for n in range(5):
        client.post("/login", json={"username": "test", "password": f"guess{n}"})
    client.post("/login", json={"username": "test", "password": "test"})
    security_events.assert_detected("brute_force_success", usr__id="test")


@pytest.mark.parametrize(
    ("kind", "status"), [("garbage", 422), ("forged", 422), ("wrong type", 422), ("expired", 401)]
)
def test_jwt_bad_tokens_are_invalid_token(
    jwt_client: Any, security_events: Capture, kind: str, status: int
) -> None:
    app = jwt_client.application
    with app.app_context():
        bad = {
            "garbage": "abc.def.ghi",
            "forged": token(jwt_client)[:-4] + "AAAA",
            "wrong type": create_refresh_token(identity="test"),
            "expired": create_access_token(identity="test", expires_delta=timedelta(seconds=-5)),
        }[kind]
    security_events.clear()
    response = get(jwt_client, "/protected", bad)
    assert response.status_code == status
    record = only(security_events, "authn_login_fail", evt__reason="invalid_token", http__route="/protected")
    if kind == "expired":  # its signature was checked: the token named this account
        assert record["usr"]["id"] == "test"
    else:
        assert "usr" not in record  # never an identity from a token that was not verified
    absent(security_events, bad)


def test_jwt_revoked_and_deleted_account_tokens(jwt_client: Any, security_events: Capture) -> None:
    revoked = token(jwt_client)
    assert get(jwt_client, "/logout", revoked, method="DELETE").status_code == 200
    security_events.clear()
    assert get(jwt_client, "/protected", revoked).status_code == 401
    only(security_events, "authn_login_fail", evt__reason="invalid_token", usr__id="test")
    security_events.clear()
    with jwt_client.application.app_context():
        orphan = create_access_token(identity="deleted-user")  # user_lookup_loader finds no such user
    assert get(jwt_client, "/protected", orphan).status_code == 401
    only(security_events, "authn_login_fail", evt__reason="invalid_token", usr__id="deleted-user")


def test_jwt_missing_token_is_unauthenticated(jwt_client: Any, security_events: Capture) -> None:
    assert get(jwt_client, "/protected").status_code == 401
    only(security_events, "authz_fail", evt__reason="unauthenticated", evt__resource="/protected")


def test_jwt_403_names_the_token_user_and_refresh_is_no_login(
    jwt_client: Any, security_events: Capture
) -> None:
    access = token(jwt_client)
    with jwt_client.application.app_context():
        refresh = create_refresh_token(identity="test")
    security_events.clear()
    assert get(jwt_client, "/admin", access).status_code == 403
    only(security_events, "authz_fail", usr__id="test", evt__resource="/admin")
    security_events.clear()
    assert get(jwt_client, "/refresh", refresh, method="POST").status_code == 200
    assert get(jwt_client, "/protected", access).status_code == 200
    assert security_events.records == []


# --- Flask-HTTPAuth, as its docs show: Basic with verify_password, tokens with verify_token ------------------


class Account:
    def __init__(self, pk: int, username: str) -> None:
        self.id = pk
        self.username = username


ACCOUNTS = {"ada": Account(1001, "ada")}


def httpauth_app() -> Flask:
    app = Flask(__name__)
    SecurityEvents(app)
    basic = HTTPBasicAuth()
    token_auth = HTTPTokenAuth(scheme="Bearer")
    key_auth = HTTPTokenAuth(header="X-API-Key")
    multi = MultiAuth(basic, token_auth)
    tokens = {"tok-ada": ACCOUNTS["ada"]}

    @basic.verify_password
    def verify_password(username: str, password: str) -> Account | None:
        if username in ACCOUNTS and USERS.get(username) == password:
            return ACCOUNTS[username]
        return None

    @token_auth.verify_token
    def verify_token(value: str) -> Account | None:
        return tokens.get(value)

    @key_auth.verify_token
    def verify_key(value: str) -> bool:
        return value == "k-good"

    @basic.get_user_roles
    def roles(user: Account) -> list[str]:
        return []

    @app.route("/basic")
    @basic.login_required
    def basic_view() -> str:
        return f"Hello, {basic.current_user().username}!"

    @app.route("/token")
    @token_auth.login_required
    def token_view() -> str:
        return "ok"

    @app.route("/key")
    @key_auth.login_required
    def key_view() -> str:
        return "ok"

    @app.route("/either")
    @multi.login_required
    def either() -> str:
        return "ok"

    @app.route("/admin")
    @basic.login_required(role="admin")
    def admin() -> str:
        return "never"

    @app.route("/hand-written")
    def hand_written() -> Any:
        # A view of our own: anything but the one key is answered 401, with no event code.
        if request.headers.get("Authorization") != "Key s3cret":
            return jsonify(error="unauthorized"), 401
        return "ok"

    return app


@pytest.fixture
def auth_client() -> Any:
    return httpauth_app().test_client()


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def open_(client: Any, path: str, headers: dict[str, str] | None = None) -> Any:
    return client.get(path, headers=headers or {}, environ_base={"REMOTE_ADDR": PEER})


def test_httpauth_basic_success_is_a_per_request_login(auth_client: Any, security_events: Capture) -> None:
    assert open_(auth_client, "/basic", basic("ada", "correct horse")).status_code == 200
    only(security_events, "authn_login_success", usr__id="1001", usr__login=hashed("ada"))
    absent(security_events, "correct horse")


def test_httpauth_basic_wrong_password(auth_client: Any, security_events: Capture) -> None:
    assert open_(auth_client, "/basic", basic("ada", "guess")).status_code == 401
    only(security_events, "authn_login_fail", evt__reason="invalid_credentials", usr__login=hashed("ada"))
    absent(security_events, "guess")


def test_httpauth_no_credential_is_unauthenticated(auth_client: Any, security_events: Capture) -> None:
    assert open_(auth_client, "/basic").status_code == 401
    only(security_events, "authz_fail", evt__reason="unauthenticated")


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/token", {"Authorization": "Bearer stolen"}),
        ("/key", {"X-API-Key": "k-bad"}),  # a custom header: no configuration needed
        ("/either", {"Authorization": "Bearer stolen"}),
    ],
)
def test_httpauth_refused_tokens_are_invalid_token(
    auth_client: Any, security_events: Capture, path: str, headers: dict[str, str]
) -> None:
    assert open_(auth_client, path, headers).status_code == 401
    only(security_events, "authn_login_fail", evt__reason="invalid_token")
    absent(security_events, "stolen", "k-bad")


def test_httpauth_accepted_token_writes_nothing(auth_client: Any, security_events: Capture) -> None:
    assert open_(auth_client, "/token", {"Authorization": "Bearer tok-ada"}).status_code == 200
    assert open_(auth_client, "/key", {"X-API-Key": "k-good"}).status_code == 200
    assert security_events.records == []


def test_httpauth_403_names_the_authenticated_user(auth_client: Any, security_events: Capture) -> None:
    assert open_(auth_client, "/admin", basic("ada", "correct horse")).status_code == 403
    assert [r["evt"]["type"] for r in security_events.records] == ["authn_login_success", "authz_fail"]
    security_events.assert_emitted("authz_fail", usr__id="1001", evt__resource="/admin")


def test_a_hand_written_view_answering_401(auth_client: Any, security_events: Capture) -> None:
    assert open_(auth_client, "/hand-written", {"Authorization": "Key forged"}).status_code == 401
    only(security_events, "authn_login_fail", evt__reason="invalid_token", http__route="/hand-written")
    absent(security_events, "forged")
    security_events.clear()
    assert open_(auth_client, "/hand-written", basic("ada", "pw")).status_code == 401
    only(security_events, "authn_login_fail", evt__reason="invalid_credentials", usr__login=hashed("ada"))
    security_events.clear()
    assert open_(auth_client, "/hand-written").status_code == 401
    only(security_events, "authz_fail", evt__reason="unauthenticated")


def test_the_application_suppresses_and_records_itself(security_events: Capture) -> None:
    app = httpauth_app()

    @app.route("/locked")
    def locked() -> Any:
        api.suppress_request_events()
        api.log_account_locked(ACCOUNTS["ada"], reason="maxretries", login="ada")
        return jsonify(error="locked"), 401

    client = app.test_client()
    assert open_(client, "/locked", {"Authorization": "Bearer whatever"}).status_code == 401
    only(security_events, "authn_login_lock", usr__id="1001", usr__login=hashed("ada"))


def test_a_find_account_that_raises_still_records_the_attempt(security_events: Capture) -> None:
    """The application's lookup failing (its database down) costs the attempt its account, not its event."""

    def find_account(login: str) -> Any:
        raise ConnectionError("the user database is down")

    reset_warnings()  # the warning is given once per process
    client = jwt_app(find_account=find_account).test_client()
    with pytest.warns(Warning, match="find_account"):
        response = client.post(
            "/login", json={"username": "test", "password": "guess"}, environ_base={"REMOTE_ADDR": PEER}
        )
    assert response.status_code == 401
    record = only(
        security_events, "authn_login_fail", evt__reason="invalid_credentials", usr__login=hashed("test")
    )
    assert "exists" not in record["usr"]
    absent(security_events, "guess")
