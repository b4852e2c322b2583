"""fastapi-users' own routers, through FastAPI's TestClient: every flow of issue 14 writes its one event."""

from __future__ import annotations

import itertools
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi_users.jwt import generate_jwt
from fastapi_users_app import ACCOUNTS, SECRET, UserManager, build_app

from graffer_secevents.testing import Capture

with warnings.catch_warnings():  # starlette.testclient prefers httpx2 and says so when importing
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PEER = "203.0.113.31"
ADA = "ada@secevents-test.net"
ADA_PW = ACCOUNTS[ADA][0]
_ids = itertools.count()


def open_client(tmp_path: Path, **options: Any) -> TestClient:
    app = build_app(f"sqlite+aiosqlite:///{tmp_path / 'users.db'}", **options)
    return TestClient(app, client=(PEER, 50123))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    UserManager.sent_reset_tokens.clear()
    with open_client(tmp_path) as test_client:
        yield test_client


def call(client: TestClient, method: str, url: str, **kwargs: Any) -> tuple[Any, str]:
    """One request from PEER with a fresh X-Request-ID; returns the response and that id."""
    request_id = f"fu-{next(_ids)}"
    headers = {"X-Request-ID": request_id, **kwargs.pop("headers", {})}
    return client.request(method, url, headers=headers, **kwargs), request_id


def only(events: Capture, request_id: str) -> dict[str, Any]:
    """The one record of this request (exactly one), with the request's IP and id."""
    mine = [r for r in events.records if r.get("http", {}).get("request_id") == request_id]
    assert len(mine) == 1, mine
    assert mine[0]["network"]["client"]["ip"] == PEER
    return mine[0]


def assert_no_secrets(events: Capture) -> None:
    text = b"\n".join(events.lines).decode()
    for email, (password, _active, _superuser) in ACCOUNTS.items():
        assert email not in text and password not in text
    assert "new-password-long" not in text


def login(client: TestClient, username: str, password: str) -> tuple[Any, str]:
    return call(client, "POST", "/auth/jwt/login", data={"username": username, "password": password})


def me(client: TestClient, token: str) -> dict[str, Any]:
    response = client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def test_login_success_and_wrong_password_share_the_users_uuid(
    client: TestClient, security_events: Capture
) -> None:
    response, ok = login(client, ADA, ADA_PW)
    assert response.status_code == 200
    token = response.json()["access_token"]
    response, bad = login(client, ADA, "wrong password")
    assert response.status_code == 400
    success, failure = only(security_events, ok), only(security_events, bad)
    assert success["evt"]["type"] == "authn_login_success"
    assert failure["evt"]["type"] == "authn_login_fail"
    assert failure["evt"]["reason"] == "invalid_credentials"
    assert failure["usr"]["exists"] is True
    assert success["usr"]["id"] == failure["usr"]["id"] == str(uuid.UUID(me(client, token)["id"]))
    assert_no_secrets(security_events)


def test_unknown_account(client: TestClient, security_events: Capture) -> None:
    response, rid = login(client, "ghost@secevents-test.net", "whatever")
    assert response.status_code == 400
    record = only(security_events, rid)
    assert record["evt"]["reason"] == "unknown_user"
    assert record["usr"]["exists"] is False
    assert record["usr"]["id"] == record["usr"]["login"]
    assert "ghost@secevents-test.net" not in b"\n".join(security_events.lines).decode()


def test_inactive_account(client: TestClient, security_events: Capture) -> None:
    response, rid = login(client, "off@secevents-test.net", ACCOUNTS["off@secevents-test.net"][0])
    assert response.status_code == 400
    record = only(security_events, rid)
    assert (record["evt"]["type"], record["evt"]["reason"]) == ("authn_login_fail", "account_disabled")
    assert record["usr"]["exists"] is True and "-" in record["usr"]["id"]  # the UUID
    assert_no_secrets(security_events)


def test_unverified_user_refused_by_requires_verification(tmp_path: Path, security_events: Capture) -> None:
    with open_client(tmp_path, requires_verification=True) as client:
        response, refused = login(client, ADA, ADA_PW)
        assert response.status_code == 400
        assert response.json()["detail"] == "LOGIN_USER_NOT_VERIFIED"
        response, bad = login(client, ADA, "wrong password")  # a wrong password stays a wrong password
        response, ok = login(client, "root@secevents-test.net", ACCOUNTS["root@secevents-test.net"][0])
        assert response.status_code == 200  # verified: logged in
    record = only(security_events, refused)
    assert record["evt"] == {
        "type": "authn_login_fail",
        "name": "authentication",
        "category": "authentication",
        "outcome": "failure",
        "reason": "unverified",
    }
    assert record["usr"]["exists"] is True
    assert record["usr"]["login"].startswith("anon_")
    failure = only(security_events, bad)
    assert failure["evt"]["reason"] == "invalid_credentials"
    assert record["usr"]["id"] == failure["usr"]["id"]
    assert uuid.UUID(record["usr"]["id"])  # the account's UUID, not its e-mail
    assert only(security_events, ok)["evt"]["type"] == "authn_login_success"
    assert len(security_events.records) == 3
    assert_no_secrets(security_events)


def test_unverified_user_logs_in_without_requires_verification(
    client: TestClient, security_events: Capture
) -> None:
    response, rid = login(client, ADA, ADA_PW)  # the default router: an unverified user may log in
    assert response.status_code == 200
    assert only(security_events, rid)["evt"]["type"] == "authn_login_success"
    assert len(security_events.records) == 1


def test_logout(client: TestClient, security_events: Capture) -> None:
    token = login(client, ADA, ADA_PW)[0].json()["access_token"]
    response, rid = call(client, "POST", "/auth/jwt/logout", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 204
    record = only(security_events, rid)
    assert record["evt"]["type"] == "session_logout"
    assert record["usr"]["id"] == me(client, token)["id"]


def test_register(client: TestClient, security_events: Capture) -> None:
    response, rid = call(
        client,
        "POST",
        "/auth/register",
        json={"email": "new@secevents-test.net", "password": "new-password-long"},
    )
    assert response.status_code == 201, response.json()
    record = only(security_events, rid)
    assert record["evt"]["type"] == "user_signup"
    assert record["usr"]["id"] == response.json()["id"]
    assert "new@secevents-test.net" not in b"\n".join(security_events.lines).decode()
    assert_no_secrets(security_events)


@pytest.mark.parametrize(
    ("email", "exists"),
    [(ADA, True), ("ghost@secevents-test.net", False), ("off@secevents-test.net", True)],
    ids=["known", "unknown", "inactive"],
)
def test_forgot_password(client: TestClient, security_events: Capture, email: str, exists: bool) -> None:
    response, rid = call(client, "POST", "/auth/forgot-password", json={"email": email})
    assert response.status_code == 202  # the same answer for all three
    record = only(security_events, rid)
    assert record["evt"]["type"] == "authn_password_reset_request"
    assert record["usr"]["exists"] is exists
    assert_no_secrets(security_events)


def test_reset_password_completed(client: TestClient, security_events: Capture) -> None:
    call(client, "POST", "/auth/forgot-password", json={"email": ADA})
    token = UserManager.sent_reset_tokens[-1]
    response, rid = call(
        client, "POST", "/auth/reset-password", json={"token": token, "password": "new-password-long"}
    )
    assert response.status_code == 200, response.json()
    record = only(security_events, rid)
    assert (record["evt"]["type"], record["evt"]["outcome"]) == ("authn_password_reset", "success")
    assert (
        record["usr"]["id"]
        == me(client, login(client, ADA, "new-password-long")[0].json()["access_token"])["id"]
    )
    assert_no_secrets(security_events)


def _ada_id(client: TestClient) -> str:
    return me(client, login(client, ADA, ADA_PW)[0].json()["access_token"])["id"]  # type: ignore[no-any-return]


def test_reset_password_refused(client: TestClient, security_events: Capture) -> None:
    ada = _ada_id(client)
    expired = generate_jwt(
        {"sub": ada, "password_fgpt": "x", "aud": "fastapi-users:reset"}, SECRET, lifetime_seconds=-60
    )
    call(client, "POST", "/auth/forgot-password", json={"email": ADA})
    valid = UserManager.sent_reset_tokens[-1]
    cases = [
        ("garbage", "new-password-long", "invalid_token", False),
        (expired, "new-password-long", "expired_token", True),
        (valid, "short", "password_policy", True),
    ]
    for token, password, reason, exists in cases:
        response, rid = call(
            client, "POST", "/auth/reset-password", json={"token": token, "password": password}
        )
        assert response.status_code == 400
        record = only(security_events, rid)
        assert (record["evt"]["type"], record["evt"]["outcome"], record["evt"]["reason"]) == (
            "authn_password_reset",
            "failure",
            reason,
        )
        assert record["usr"]["exists"] is exists
        if exists:
            assert record["usr"]["id"] == ada


@pytest.mark.parametrize("token", ["forged.jwt.value", "expired"], ids=["forged", "expired"])
def test_a_bad_bearer_token_is_one_event_even_with_the_401_rule_on(
    tmp_path: Path, security_events: Capture, token: str
) -> None:
    if token == "expired":
        token = generate_jwt(
            {"sub": str(uuid.uuid4()), "aud": ["fastapi-users:auth"]}, SECRET, lifetime_seconds=-60
        )
    with open_client(tmp_path, status_events={401: "authz_fail"}) as client:
        response, rid = call(client, "GET", "/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    record = only(security_events, rid)
    assert (record["evt"]["type"], record["evt"]["reason"]) == ("authn_login_fail", "invalid_token")


def test_superuser_route_403_names_the_authenticated_user(
    client: TestClient, security_events: Capture
) -> None:
    token = login(client, ADA, ADA_PW)[0].json()["access_token"]
    response, rid = call(
        client, "GET", f"/users/{uuid.uuid4()}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 403
    record = only(security_events, rid)
    assert record["evt"]["type"] == "authz_fail"
    assert record["usr"]["id"] == me(client, token)["id"]


def test_a_token_request_is_not_a_login(client: TestClient, security_events: Capture) -> None:
    token = login(client, ADA, ADA_PW)[0].json()["access_token"]
    before = len(security_events.records)
    me(client, token)
    assert len(security_events.records) == before


def test_with_a_plain_backend_the_mixin_still_records_the_login(
    tmp_path: Path, security_events: Capture
) -> None:
    from fastapi_users.authentication import AuthenticationBackend

    with open_client(tmp_path, backend_class=AuthenticationBackend) as client:
        response, rid = login(client, ADA, ADA_PW)
        assert response.status_code == 200
        assert only(security_events, rid)["usr"]["id"] == me(client, response.json()["access_token"])["id"]


# --- account changes through fastapi-users' own `/users/{id}` routes (a superuser acting on another account) -

ROOT = "root@secevents-test.net"


def _as_root(client: TestClient) -> tuple[dict[str, str], str]:
    token = login(client, ROOT, ACCOUNTS[ROOT][0])[0].json()["access_token"]
    return {"Authorization": f"Bearer {token}"}, me(client, token)["id"]


def test_a_superuser_granting_superuser_through_patch_is_one_authz_change(
    client: TestClient, security_events: Capture
) -> None:
    headers, root_id = _as_root(client)
    ada = _ada_id(client)
    response, rid = call(client, "PATCH", f"/users/{ada}", headers=headers, json={"is_superuser": True})
    assert response.status_code == 200 and response.json()["is_superuser"] is True
    record = only(security_events, rid)
    assert record["evt"]["type"] == "authz_change"
    assert (record["evt"]["from_role"], record["evt"]["to_role"]) == ("user", "superuser")
    assert record["evt"]["granted"] == ["superuser"]
    assert record["usr"]["id"] == root_id
    assert record["target"]["usr"]["id"] == ada
    response, rid = call(client, "PATCH", f"/users/{ada}", headers=headers, json={"is_superuser": False})
    assert response.status_code == 200
    revoked = only(security_events, rid)
    assert (revoked["evt"]["type"], revoked["evt"]["revoked"]) == ("authz_change", ["superuser"])
    assert_no_secrets(security_events)


def test_patch_disabling_changing_email_and_password_of_another_account(
    client: TestClient, security_events: Capture
) -> None:
    headers, root_id = _as_root(client)
    ada = _ada_id(client)
    body = {"is_active": False, "email": "ada2@secevents-test.net", "password": "new-password-long"}
    response, rid = call(client, "PATCH", f"/users/{ada}", headers=headers, json=body)
    assert response.status_code == 200
    mine = [r for r in security_events.records if r.get("http", {}).get("request_id") == rid]
    assert sorted(r["evt"]["type"] for r in mine) == [
        "authn_password_change",
        "user_disabled",
        "user_updated",
    ]
    for record in mine:
        assert record["usr"]["id"] == root_id and record["target"]["usr"]["id"] == ada
        assert record["network"]["client"]["ip"] == PEER
    updated = next(r for r in mine if r["evt"]["type"] == "user_updated")
    assert updated["evt"]["attributes"] == ["email"]
    text = b"\n".join(security_events.lines).decode()
    assert "ada2@secevents-test.net" not in text and "$2b$" not in text  # no address, no bcrypt hash
    assert_no_secrets(security_events)


def test_a_patch_that_changes_nothing_writes_nothing(client: TestClient, security_events: Capture) -> None:
    headers, _root_id = _as_root(client)
    ada = _ada_id(client)
    response, rid = call(client, "PATCH", f"/users/{ada}", headers=headers, json={"is_superuser": False})
    assert response.status_code == 200
    assert [r for r in security_events.records if r.get("http", {}).get("request_id") == rid] == []


def test_a_user_editing_their_own_email_is_not_an_administrative_event(
    client: TestClient, security_events: Capture
) -> None:
    token = login(client, ADA, ADA_PW)[0].json()["access_token"]
    response, rid = call(
        client,
        "PATCH",
        "/users/me",
        headers={"Authorization": f"Bearer {token}"},
        json={"email": "ada3@secevents-test.net", "is_superuser": True},  # `safe`: the flag is ignored
    )
    assert response.status_code == 200 and response.json()["is_superuser"] is False
    assert [r for r in security_events.records if r.get("http", {}).get("request_id") == rid] == []


def test_a_superuser_deleting_an_account_is_one_user_deleted(
    client: TestClient, security_events: Capture
) -> None:
    headers, root_id = _as_root(client)
    ada = _ada_id(client)
    response, rid = call(client, "DELETE", f"/users/{ada}", headers=headers)
    assert response.status_code == 204
    record = only(security_events, rid)
    assert record["evt"]["type"] == "user_deleted"
    assert (record["usr"]["id"], record["target"]["usr"]["id"]) == (root_id, ada)
    assert_no_secrets(security_events)


def test_a_user_changing_their_own_password_through_patch_me(
    client: TestClient, security_events: Capture
) -> None:
    token = login(client, ADA, ADA_PW)[0].json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    response, rid = call(
        client, "PATCH", "/users/me", headers=headers, json={"password": "new-password-long"}
    )
    assert response.status_code == 200
    record = only(security_events, rid)
    assert (record["evt"]["type"], record["evt"]["outcome"]) == ("authn_password_change", "success")
    assert record["usr"]["id"] == me(client, token)["id"] and "target" not in record
    assert "$2b$" not in b"\n".join(security_events.lines).decode()
    assert_no_secrets(security_events)
