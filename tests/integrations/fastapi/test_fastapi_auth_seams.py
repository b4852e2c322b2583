"""FastAPI's own security tools with no event code in the app: the security tutorial exactly as the FastAPI
tutorial teaches (tutorial004_app.py, written from its documented pattern), plus dependencies, login routes and users written here for the seams."""

from __future__ import annotations

import importlib
import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Annotated, Any

import jwt
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import (
    APIKeyCookie,
    APIKeyHeader,
    APIKeyQuery,
    HTTPAuthorizationCredentials,
    HTTPBearer,
    OAuth2PasswordRequestForm,
)
from pydantic import BaseModel

import graffer_secevents as api
from graffer_secevents import ConfigurationError
from graffer_secevents.integrations.fastapi import SecurityEventsMiddleware
from graffer_secevents.testing import Capture, hashed

with warnings.catch_warnings():  # starlette.testclient prefers httpx2 and says so when importing
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PEER = "203.0.113.9"
PASSWORD = "secret"  # johndoe's password in the tutorial


@pytest.fixture(scope="module")
def tutorial() -> ModuleType:
    return importlib.import_module("tests.integrations.fastapi.tutorial004_app")


@pytest.fixture(scope="module")
def tutorial_client(tutorial: ModuleType) -> Iterator[TestClient]:
    app = tutorial.app
    # The only line the application adds: the middleware, and how a login names its account.
    app.add_middleware(
        SecurityEventsMiddleware, find_account=lambda name: tutorial.get_user(tutorial.fake_users_db, name)
    )
    with TestClient(app, client=(PEER, 1)) as client:
        yield client


def secrets_absent(records: list[dict[str, Any]], *secrets: str) -> None:
    text = json.dumps(records)
    for secret in secrets:
        assert secret not in text


def only(security_events: Capture, evt_type: str, **match: Any) -> dict[str, Any]:
    assert [r["evt"]["type"] for r in security_events.records] == [evt_type], security_events.records
    return security_events.assert_emitted(evt_type, network__client__ip=PEER, **match)


def token_for(tutorial: ModuleType, *, key: str | None = None, minutes: int = 30) -> str:
    expire = datetime.now(UTC) + timedelta(minutes=minutes)
    return jwt.encode({"sub": "johndoe", "exp": expire}, key or tutorial.SECRET_KEY, algorithm="HS256")


# --- the tutorial, flow by flow: each exactly one right record ------------------------------------------------


def test_tutorial_token_login_is_a_login_success(
    tutorial_client: TestClient, security_events: Capture
) -> None:
    response = tutorial_client.post(
        "/token", data={"username": "johndoe", "password": PASSWORD}, headers={"X-Request-ID": "tok-1"}
    )
    assert response.status_code == 200
    token = response.json()["access_token"]
    only(
        security_events,
        "authn_login_success",
        usr__id="johndoe",
        usr__login=hashed("johndoe"),
        http__request_id="tok-1",
        http__route="/token",
    )
    secrets_absent(security_events.records, PASSWORD, token, "johndoe@example.com")


def test_tutorial_wrong_password_names_the_account(
    tutorial_client: TestClient, security_events: Capture
) -> None:
    response = tutorial_client.post("/token", data={"username": "johndoe", "password": "guess"})
    assert response.status_code == 401
    only(
        security_events,
        "authn_login_fail",
        usr__id="johndoe",
        usr__exists=True,
        usr__login=hashed("johndoe"),
        evt__reason="invalid_credentials",
        http__request_id=response.headers["X-Request-ID"],
    )
    secrets_absent(security_events.records, "guess")


def test_tutorial_unknown_user_is_a_failure_for_no_account(
    tutorial_client: TestClient, security_events: Capture
) -> None:
    response = tutorial_client.post("/token", data={"username": "mallory@example.com", "password": "guess"})
    assert response.status_code == 401
    record = only(
        security_events,
        "authn_login_fail",
        usr__exists=False,
        usr__login=hashed("mallory@example.com"),
        evt__reason="unknown_user",
    )
    assert record["usr"]["id"] == hashed("mallory@example.com")  # the hashed login stands in, never raw
    secrets_absent(security_events.records, "mallory", "guess")


@pytest.mark.parametrize("kind", ["forged", "expired", "garbage"])
def test_tutorial_bad_jwt_is_an_invalid_token(
    tutorial: ModuleType, tutorial_client: TestClient, security_events: Capture, kind: str
) -> None:
    token = {
        "forged": token_for(tutorial, key="not-the-server-key" * 2),
        "expired": token_for(tutorial, minutes=-5),
        "garbage": "not.a.jwt",
    }[kind]
    response = tutorial_client.get("/users/me/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    record = only(security_events, "authn_login_fail", evt__reason="invalid_token", http__status_code=401)
    assert "usr" not in record  # a forged token's claims are never an identity
    secrets_absent(security_events.records, token)


def test_tutorial_missing_token_is_unauthenticated(
    tutorial_client: TestClient, security_events: Capture
) -> None:
    assert tutorial_client.get("/users/me/items/").status_code == 401
    only(security_events, "authz_fail", evt__reason="unauthenticated", evt__resource="/users/me/items/")


def test_tutorial_valid_token_writes_nothing(
    tutorial: ModuleType, tutorial_client: TestClient, security_events: Capture
) -> None:
    response = tutorial_client.get("/users/me/", headers={"Authorization": f"Bearer {token_for(tutorial)}"})
    assert response.status_code == 200
    assert security_events.records == []


def test_tutorial_brute_force_then_success_is_detected(
    tutorial_client: TestClient, security_events: Capture
) -> None:
    for n in range(5):
        tutorial_client.post("/token", data={"username": "johndoe", "password": f"guess{n}"})
    tutorial_client.post("/token", data={"username": "johndoe", "password": PASSWORD})
    security_events.assert_detected("brute_force_success", usr__id="johndoe")


# --- the seams, with auth written in the test -------------------------------------------------------------------


class Me(BaseModel):
    username: str


class Credentials(BaseModel):
    email: str
    password: str


def bearer_user(credentials: Annotated[HTTPAuthorizationCredentials, Depends(HTTPBearer())]) -> Me:
    """A dependency of our own: any bearer token but "good" is refused with a plain HTTPException(401)."""
    if credentials.credentials != "good":
        raise HTTPException(status_code=401, detail="bad token")
    return Me(username="ada")


api_key = APIKeyHeader(name="X-Service-Key")


def keyed(
    by_query: Annotated[str | None, Depends(APIKeyQuery(name="api_key", auto_error=False))],
    by_cookie: Annotated[str | None, Depends(APIKeyCookie(name="session_key", auto_error=False))],
) -> str:
    if "k-good" not in (by_query, by_cookie):
        raise HTTPException(status_code=401)
    return "partner"


def service(key: Annotated[str, Depends(api_key)]) -> str:
    if key != "k-good":
        raise HTTPException(status_code=401)
    return "billing"


def build_app(**middleware: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SecurityEventsMiddleware, **middleware)

    @app.get("/orders")
    def orders(me: Annotated[Me, Depends(bearer_user)]) -> list[str]:
        return []

    @app.get("/invoices")
    def invoices(caller: Annotated[str, Depends(service)]) -> list[str]:
        return []

    @app.get("/reports")
    def reports(caller: Annotated[str, Depends(keyed)]) -> list[str]:
        return []

    @app.get("/admin")
    def admin(request: Request, me: Annotated[Me, Depends(bearer_user)]) -> None:
        request.state.user = me  # where hand-written auth keeps its user
        raise HTTPException(status_code=403)

    @app.post("/session")
    async def session(request: Request) -> dict[str, bool]:
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(status_code=400) from None
        if body.get("email") != "ada@example.com" or body.get("password") != "right":
            raise HTTPException(status_code=401)
        return {"ok": True}

    @app.post("/api/login")  # an undeclared JSON login: a model with a login and a password
    def api_login(credentials: Credentials) -> dict[str, str]:
        if (credentials.email, credentials.password) != ("ada@example.com", "right"):
            raise HTTPException(status_code=401)
        return {"token": "t"}

    @app.post("/signup", status_code=201)  # the same shape: never a login
    def signup(credentials: Credentials) -> dict[str, str]:
        if credentials.email == "taken@example.com":
            raise HTTPException(status_code=409)
        return {"id": "new"}

    @app.post("/token")
    def token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, str]:
        if (form.username, form.password) != ("ada", "right"):
            raise HTTPException(status_code=400, detail="Incorrect username or password")
        return {"access_token": "t", "token_type": "bearer"}

    @app.post("/token-recorded")
    def token_recorded(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, str]:
        # The application records the attempt itself (once per request): the route's result adds nothing.
        api.record_login(api.User(id=42), "failure", login=form.username, exists=True, reason="locked_out")
        raise HTTPException(status_code=401)

    @app.post("/token-logged")
    def token_logged(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, str]:
        # The old docs' pattern: the route logs its own attempt with the plain helper; still one record.
        api.log_login(api.User(id=1001), "success", login=form.username)
        return {"access_token": "t", "token_type": "bearer"}

    @app.post("/token-suppressed")
    def token_suppressed(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, str]:
        api.suppress_request_events("authn_login_fail")
        api.log_account_locked(api.User(id=42), reason="maxretries")
        raise HTTPException(status_code=401)

    return app


ACCOUNTS = {"ada": api.User(id=1001, login="ada"), "ada@example.com": api.User(id=1001)}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = build_app(find_account=ACCOUNTS.get, login_routes={"/session": "email"})
    with TestClient(app, client=(PEER, 1)) as client:
        yield client


def test_own_dependency_refusing_a_bearer_token_is_an_invalid_token(
    client: TestClient, security_events: Capture
) -> None:
    assert client.get("/orders", headers={"Authorization": "Bearer stolen"}).status_code == 401
    only(security_events, "authn_login_fail", evt__reason="invalid_token", http__route="/orders")
    security_events.clear()
    assert client.get("/orders").status_code == 401  # HTTPBearer: no credential at all
    only(security_events, "authz_fail", evt__reason="unauthenticated")
    security_events.clear()
    assert client.get("/orders", headers={"Authorization": "Bearer good"}).status_code == 200
    assert security_events.records == []


def test_api_key_header_of_the_app_is_a_credential(client: TestClient, security_events: Capture) -> None:
    assert client.get("/invoices", headers={"X-Service-Key": "k-bad"}).status_code == 401
    only(security_events, "authn_login_fail", evt__reason="invalid_token")
    secrets_absent(security_events.records, "k-bad")
    security_events.clear()
    assert client.get("/invoices").status_code == 401
    only(security_events, "authz_fail", evt__reason="unauthenticated")


def test_api_keys_in_the_query_or_a_cookie_are_credentials(
    client: TestClient, security_events: Capture
) -> None:
    assert client.get("/reports", params={"api_key": "k-bad"}).status_code == 401
    only(security_events, "authn_login_fail", evt__reason="invalid_token")
    assert "k-bad" not in str(security_events.lines)  # nor in the logged URL: the query is not written
    security_events.clear()
    client.cookies.set("session_key", "k-bad")
    assert client.get("/reports").status_code == 401
    only(security_events, "authn_login_fail", evt__reason="invalid_token")
    client.cookies.clear()
    security_events.clear()
    assert client.get("/reports").status_code == 401
    only(security_events, "authz_fail", evt__reason="unauthenticated")
    security_events.clear()
    assert client.get("/reports", params={"api_key": "k-good"}).status_code == 200
    assert security_events.records == []


def test_403_names_the_user_kept_in_request_state(client: TestClient, security_events: Capture) -> None:
    assert client.get("/admin", headers={"Authorization": "Bearer good"}).status_code == 403
    only(security_events, "authz_fail", usr__id="ada", evt__resource="/admin")


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_password_form_route_outcomes(client: TestClient, security_events: Capture, encoding: str) -> None:
    def post(username: str, password: str) -> int:
        fields = {"username": username, "password": password}
        if encoding == "multipart":
            files = {name: (None, value) for name, value in fields.items()}
            return client.post("/token", files=files).status_code
        return client.post("/token", data=fields).status_code

    assert post("ada", "wrong") == 400  # the route's own refusal status
    only(security_events, "authn_login_fail", usr__id="1001", usr__exists=True, usr__login=hashed("ada"))
    security_events.clear()
    assert post("ada", "right") == 200
    only(security_events, "authn_login_success", usr__id="1001")
    secrets_absent(security_events.records, "right", "wrong")


def test_a_declared_json_login_route(client: TestClient, security_events: Capture) -> None:
    response = client.post("/session", json={"email": "ada@example.com", "password": "nope"})
    assert response.status_code == 401
    only(
        security_events,
        "authn_login_fail",
        usr__id="1001",
        usr__exists=True,
        evt__reason="invalid_credentials",
    )
    secrets_absent(security_events.records, "ada@example.com", "nope")
    security_events.clear()
    client.post("/session", json={"email": "ada@example.com", "password": "right"})
    only(security_events, "authn_login_success", usr__id="1001", usr__login=hashed("ada@example.com"))


def test_an_undeclared_password_body_refused_401_is_a_failed_login(
    client: TestClient, security_events: Capture
) -> None:
    client.post("/api/login", json={"email": "ada@example.com", "password": "nope"})
    only(
        security_events,
        "authn_login_fail",
        usr__id="1001",
        usr__exists=True,
        evt__reason="invalid_credentials",
    )
    secrets_absent(security_events.records, "ada@example.com", "nope")
    security_events.clear()
    client.post("/api/login", json={"email": "who@example.com", "password": "nope"})
    only(security_events, "authn_login_fail", usr__exists=False, evt__reason="unknown_user")
    security_events.clear()
    # Its success, and a signup of the same shape, are not guessed to be logins.
    assert (
        client.post("/api/login", json={"email": "ada@example.com", "password": "right"}).status_code == 200
    )
    assert client.post("/signup", json={"email": "new@example.com", "password": "pw"}).status_code == 201
    assert client.post("/signup", json={"email": "taken@example.com", "password": "pw"}).status_code == 409
    assert security_events.records == []


def test_a_malformed_login_is_no_attempt(client: TestClient, security_events: Capture) -> None:
    assert client.post("/token", data={"username": "ada"}).status_code == 422  # FastAPI's validation
    assert security_events.records == []
    response = client.post("/session", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    record = only(security_events, "authn_login_fail", evt__reason="invalid_credentials")
    assert "usr" not in record  # the attempt, without a login


def test_the_application_records_the_attempt_once(client: TestClient, security_events: Capture) -> None:
    client.post("/token-recorded", data={"username": "ada", "password": "x"})
    only(security_events, "authn_login_fail", usr__id="42", evt__reason="locked_out")


def test_a_route_that_logs_its_own_attempt_writes_one_record(
    client: TestClient, security_events: Capture
) -> None:
    client.post("/token-logged", data={"username": "ada", "password": "x"})
    only(security_events, "authn_login_success", usr__id="1001")


def test_the_application_replaces_the_integrations_event(
    client: TestClient, security_events: Capture
) -> None:
    client.post("/token-suppressed", data={"username": "ada", "password": "x"})
    only(security_events, "authn_login_lock", usr__id="42", evt__reason="maxretries")


def test_without_find_account_the_login_is_the_account_key(security_events: Capture) -> None:
    with TestClient(build_app(), client=(PEER, 1)) as plain:
        plain.post("/token", data={"username": "ada", "password": "right"})
        only(security_events, "authn_login_success", usr__id="ada", usr__login=hashed("ada"))
        security_events.clear()
        plain.post("/token", data={"username": "ada", "password": "wrong"})
    record = only(security_events, "authn_login_fail", usr__login=hashed("ada"))
    assert "exists" not in record["usr"]  # unknown without find_account: never guessed


def test_async_find_account_and_a_disabled_account(security_events: Capture) -> None:
    class Account(BaseModel):
        username: str
        disabled: bool

    async def find(login: str) -> Account | None:
        return Account(username=login, disabled=True) if login == "ada" else None

    with TestClient(build_app(find_account=find), client=(PEER, 1)) as plain:
        plain.post("/token", data={"username": "ada", "password": "wrong"})
    only(security_events, "authn_login_fail", usr__id="ada", usr__exists=True, evt__reason="account_disabled")


def test_options_turn_each_part_off(security_events: Capture) -> None:
    app = build_app(record_unauthenticated=False, record_invalid_credentials=False)
    with TestClient(app, client=(PEER, 1)) as plain:
        plain.get("/orders")
        plain.get("/orders", headers={"Authorization": "Bearer stolen"})
    assert security_events.records == []


@pytest.mark.parametrize(
    "options",
    [
        {"find_account": "users"},
        {"login_routes": {"login": "email"}},
        {"login_routes": ["/login"]},
        {"credential_headers": "X-Key"},
        {"credential_statuses": [500]},
        {"record_unauthenticated": "no"},
    ],
)
def test_bad_options_fail_at_start_up(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        SecurityEventsMiddleware(FastAPI(), **options)


def test_a_username_only_user_is_an_identity(security_events: Capture) -> None:
    api.log_login(Me(username="ada"), "success")
    api.log_login(Me(username="ada@example.com"), "success")
    first, second = security_events.records
    assert first["usr"] == {"id": "ada", "login": hashed("ada")}
    assert second["usr"]["id"] == hashed("ada@example.com")  # an e-mail as the identity is never raw
