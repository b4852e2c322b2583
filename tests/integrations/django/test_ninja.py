"""django-ninja's auth classes and django-ninja-jwt's token endpoints, set up as their docs show, with no
event code: a refused API key or bearer token (whatever header it comes in) is one `invalid_token`, a Basic
password or a JWT pair obtained is one login with the account's pk, an anonymous session is not a bad key,
and no key, token or password reaches the output.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import authenticate
from django.test import AsyncClient, Client, override_settings
from django.urls import path
from seams_helpers import new_account, of_request, only, send

from graffer_secevents.testing import Capture

pytest.importorskip("ninja")
pytest.importorskip("ninja_jwt")

from ninja import NinjaAPI
from ninja.security import APIKeyHeader, APIKeyQuery, HttpBasicAuth, HttpBearer, django_auth
from ninja_extra import NinjaExtraAPI
from ninja_jwt.authentication import JWTAuth
from ninja_jwt.routers.obtain import obtain_pair_router


def _owner(key: str | None) -> Any:
    """Keys are `<username>.key`: the account, or None."""
    from django.contrib.auth import get_user_model

    if not key or not key.endswith(".key"):
        return None
    return get_user_model().objects.filter(username=key.removesuffix(".key")).first()


class HeaderKey(APIKeyHeader):
    param_name = "X-API-Key"

    def authenticate(self, request: Any, key: str | None) -> Any:
        return _owner(key)


class QueryKey(APIKeyQuery):
    param_name = "api_key"

    def authenticate(self, request: Any, key: str | None) -> Any:
        return _owner(key)


class AsyncHeaderKey(APIKeyHeader):
    param_name = "X-API-Key"

    async def authenticate(self, request: Any, key: str | None) -> Any:
        from asgiref.sync import sync_to_async

        return await sync_to_async(_owner)(key)


class TokenHeader(HttpBearer):
    header = "X-Token"

    def authenticate(self, request: Any, token: str) -> Any:
        return _owner(token)


class DjangoBasic(HttpBasicAuth):
    def authenticate(self, request: Any, username: str, password: str) -> Any:
        return authenticate(request, username=username, password=password)


api = NinjaAPI(urls_namespace="secevents-ninja-test")


@api.get("/key", auth=HeaderKey())
def by_key(request: Any) -> dict[str, int]:
    return {"pk": request.auth.pk}


@api.get("/query", auth=QueryKey())
def by_query(request: Any) -> dict[str, int]:
    return {"pk": request.auth.pk}


@api.get("/akey", auth=AsyncHeaderKey())
async def by_async_key(request: Any) -> dict[str, int]:
    return {"pk": request.auth.pk}


@api.get("/token", auth=TokenHeader())
def by_token(request: Any) -> dict[str, int]:
    return {"pk": request.auth.pk}


@api.get("/basic", auth=DjangoBasic())
def by_basic(request: Any) -> dict[str, int]:
    return {"pk": request.auth.pk}


@api.get("/session", auth=django_auth)
def by_session(request: Any) -> dict[str, int]:
    return {"pk": request.auth.pk}


@api.get("/jwt", auth=JWTAuth())
def by_jwt(request: Any) -> dict[str, int]:
    return {"pk": request.auth.pk}


jwt_api = NinjaExtraAPI(urls_namespace="secevents-ninja-jwt-test")
jwt_api.add_router("/token", router=obtain_pair_router)

# The project's URLconf (this directory's conftest configured Django and built it).
_PROJECT_URLS = sys.modules[settings.ROOT_URLCONF].urlpatterns

urlpatterns = [path("ninja/", api.urls), path("ninja-jwt/", jwt_api.urls), *_PROJECT_URLS]

pytestmark = pytest.mark.usefixtures("_ninja_urls")


@pytest.fixture
def _ninja_urls() -> Any:
    with override_settings(ROOT_URLCONF=__name__):
        yield


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_a_refused_api_key_header_is_one_invalid_token(security_events: Capture) -> None:
    user, _ = new_account("ninja")
    response, ip, rid = send("get", "/ninja/key", x_api_key=f"{user.username}.forged-key-value")
    assert response.status_code == 401
    record = only(security_events, rid, "authn_login_fail", ip, secrets=("forged-key-value",))
    assert record["evt"]["reason"] == "invalid_token"


def test_a_valid_api_key_writes_nothing_and_no_key_is_unauthenticated(security_events: Capture) -> None:
    user, _ = new_account("ninja")
    response, _, rid = send("get", "/ninja/key", x_api_key=f"{user.username}.key")
    assert response.status_code == 200 and response.json() == {"pk": user.pk}
    assert of_request(security_events, rid) == []
    response, ip, rid = send("get", "/ninja/key")
    assert response.status_code == 401
    assert only(security_events, rid, "authz_fail", ip)["evt"]["reason"] == "unauthenticated"


def test_a_refused_query_key_is_one_invalid_token_without_its_value(security_events: Capture) -> None:
    response, ip, rid = send("get", "/ninja/query", {"api_key": "query-secret-value"})
    assert response.status_code == 401
    record = only(security_events, rid, "authn_login_fail", ip, secrets=("query-secret-value",))
    assert record["evt"]["reason"] == "invalid_token"


def test_a_refused_bearer_token_in_its_own_header_is_one_invalid_token(security_events: Capture) -> None:
    response, ip, rid = send("get", "/ninja/token", x_token="Bearer bearer-secret-value")
    assert response.status_code == 401
    record = only(security_events, rid, "authn_login_fail", ip, secrets=("bearer-secret-value",))
    assert record["evt"]["reason"] == "invalid_token"


def test_an_anonymous_session_is_not_a_bad_key(security_events: Capture) -> None:
    client = Client()
    client.cookies["sessionid"] = "no-such-session"
    response, ip, rid = send("get", "/ninja/session", client=client)
    assert response.status_code == 401
    assert only(security_events, rid, "authz_fail", ip)["evt"]["reason"] == "unauthenticated"


def test_an_async_key_class_is_recorded_too(security_events: Capture) -> None:
    """Under ASGI: the class's `authenticate` is a coroutine, awaited by django-ninja."""
    headers = {"X-API-Key": "async-secret-value", "X-Request-ID": "ninja-async-1"}
    response = asyncio.run(AsyncClient().get("/ninja/akey", headers=headers))
    assert response.status_code == 401
    records = of_request(security_events, "ninja-async-1", ("async-secret-value",))
    assert [(r["evt"]["type"], r["evt"]["reason"]) for r in records] == [
        ("authn_login_fail", "invalid_token")
    ]


def test_basic_auth_is_one_login_per_request_and_a_wrong_password_one_failure(
    security_events: Capture,
) -> None:
    user, password = new_account("ninja")
    response, ip, rid = send("get", "/ninja/basic", authorization=_basic(user.username, password))
    assert response.status_code == 200
    record = only(security_events, rid, "authn_login_success", ip, secrets=(password,), id=str(user.pk))
    assert record["usr"]["login"].startswith("anon_")
    response, ip, rid = send("get", "/ninja/basic", authorization=_basic(user.username, "wrong-" + password))
    assert response.status_code == 401
    failed = only(
        security_events, rid, "authn_login_fail", ip, secrets=(password,), id=str(user.pk), exists=True
    )
    assert failed["evt"]["reason"] == "invalid_credentials"


def _obtain(username: str, password: str) -> tuple[Any, str, str]:
    return send("post", "/ninja-jwt/token/pair", {"username": username, "password": password}, json_body=True)


def test_a_jwt_pair_obtained_is_one_login_and_its_tokens_are_never_written(security_events: Capture) -> None:
    user, password = new_account("ninja")
    response, ip, rid = _obtain(user.username, password)
    assert response.status_code == 200
    tokens = (response.json()["access"], response.json()["refresh"])
    only(security_events, rid, "authn_login_success", ip, secrets=(password, *tokens), id=str(user.pk))
    response, _, rid = send("get", "/ninja/jwt", authorization=f"Bearer {tokens[0]}")
    assert response.status_code == 200 and of_request(security_events, rid, tokens) == []


def test_jwt_obtain_refusals_are_one_failure_each_with_the_pk(security_events: Capture) -> None:
    user, _ = new_account("ninja")
    response, ip, rid = _obtain(user.username, "wrong")
    assert response.status_code == 401
    only(security_events, rid, "authn_login_fail", ip, id=str(user.pk), exists=True)
    response, ip, rid = _obtain("nobody-at-all", "wrong")
    assert response.status_code == 401
    assert only(security_events, rid, "authn_login_fail", ip, exists=False)["evt"]["reason"] == "unknown_user"
    inactive, inactive_password = new_account("ninja", active=False)
    response, ip, rid = _obtain(inactive.username, inactive_password)
    assert response.status_code == 401
    record = only(security_events, rid, "authn_login_fail", ip, id=str(inactive.pk), exists=True)
    assert record["evt"]["reason"] == "account_disabled"


@override_settings(AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.AllowAllUsersModelBackend"])
def test_an_inactive_account_the_backend_returns_is_refused_by_the_schema_once(
    security_events: Capture,
) -> None:
    inactive, password = new_account("ninja", active=False)
    response, ip, rid = _obtain(inactive.username, password)
    assert response.status_code == 401
    record = only(security_events, rid, "authn_login_fail", ip, secrets=(password,), id=str(inactive.pk))
    assert record["evt"]["reason"] == "account_disabled"


def test_a_forged_access_token_is_one_invalid_token(security_events: Capture) -> None:
    response, ip, rid = send("get", "/ninja/jwt", authorization="Bearer eyJhbGciOiJIUzI1NiJ9.e30.forged")
    assert response.status_code == 401
    assert only(security_events, rid, "authn_login_fail", ip)["evt"]["reason"] == "invalid_token"
