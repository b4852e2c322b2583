"""Login endpoints that issue a token: they call Django's `authenticate()` and never `login()` (dj-rest-auth
without `SESSION_LOGIN`, django-ninja-jwt, the view every API tutorial writes), so no signal tells of the
success. A JSON answer (2xx) after a backend accepted an account, with no login recorded, is that account's
one `authn_login_success`; an HTML page after a first factor (a two-factor wizard) or a refusal is not.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest
from django.contrib.auth import authenticate
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import override_settings
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from seams_helpers import new_account, of_request, only, send

import conftest
from graffer_secevents.testing import Capture

pytest.importorskip("rest_framework")

from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView


class TokenLogin(APIView):
    """The DRF token login of countless tutorials: authenticate(), then a token, no login()."""

    authentication_classes: ClassVar[list[Any]] = []
    permission_classes: ClassVar[list[Any]] = [AllowAny]

    def post(self, request: Any) -> Response:
        user = authenticate(
            request, username=request.data.get("username"), password=request.data.get("password")
        )
        if user is None:
            return Response({"detail": "invalid credentials"}, status=400)
        if not user.email:
            return Response({"detail": "verify your e-mail first"}, status=403)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


@csrf_exempt
def json_token_login(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body)
    user = authenticate(request, username=body["username"], password=body["password"])
    if user is None:
        return JsonResponse({"error": "no"}, status=401)
    return JsonResponse({"access": f"issued-for-{user.pk}-secret"}, content_type="application/vnd.api+json")


@csrf_exempt
def first_factor_page(request: HttpRequest) -> HttpResponse:
    """A two-factor wizard's first step: the password is right, the next page asks for the code."""
    user = authenticate(request, username=request.POST["username"], password=request.POST["password"])
    return HttpResponse("<form>enter your code</form>" if user else "<p>wrong</p>")


urlpatterns = [
    path("tokens/drf/", TokenLogin.as_view()),
    path("tokens/json/", json_token_login),
    path("tokens/wizard/", first_factor_page),
    *conftest.URLS.urlpatterns,
]

pytestmark = pytest.mark.usefixtures("_token_urls")


@pytest.fixture
def _token_urls() -> Any:
    with override_settings(ROOT_URLCONF=__name__):
        yield


def test_a_drf_token_login_is_one_success_with_the_pk(security_events: Capture) -> None:
    user, password = new_account("tok")
    response, ip, rid = send(
        "post", "/tokens/drf/", {"username": user.username, "password": password}, json_body=True
    )
    assert response.status_code == 200
    token = response.json()["token"]
    only(security_events, rid, "authn_login_success", ip, secrets=(password, token), id=str(user.pk))


def test_a_drf_token_login_with_a_wrong_password_is_one_failure(security_events: Capture) -> None:
    user, _ = new_account("tok")
    response, ip, rid = send(
        "post", "/tokens/drf/", {"username": user.username, "password": "no"}, json_body=True
    )
    assert response.status_code == 400
    record = only(security_events, rid, "authn_login_fail", ip, id=str(user.pk), exists=True)
    assert record["evt"]["reason"] == "invalid_credentials"


def test_a_json_refusal_after_the_right_password_is_no_success(security_events: Capture) -> None:
    user, password = new_account("tok")
    user.email = ""
    user.save()
    response, _, rid = send(
        "post", "/tokens/drf/", {"username": user.username, "password": password}, json_body=True
    )
    assert response.status_code == 403
    assert "authn_login_success" not in [r["evt"]["type"] for r in of_request(security_events, rid)]


def test_a_plain_json_view_issuing_a_token_is_one_success(security_events: Capture) -> None:
    user, password = new_account("tok")
    response, ip, rid = send(
        "post", "/tokens/json/", {"username": user.username, "password": password}, json_body=True
    )
    assert response.status_code == 200
    secret = response.json()["access"]
    only(security_events, rid, "authn_login_success", ip, secrets=(password, secret), id=str(user.pk))


def test_a_first_factor_page_is_not_a_login(security_events: Capture) -> None:
    user, password = new_account("tok")
    response, _, rid = send("post", "/tokens/wizard/", {"username": user.username, "password": password})
    assert response.status_code == 200 and b"code" in response.content
    assert of_request(security_events, rid, (password,)) == []


def test_a_session_login_is_still_one_success(security_events: Capture) -> None:
    user, password = new_account("tok")
    response, ip, rid = send("post", "/api/login/", {"username": user.username, "password": password})
    assert response.status_code == 200
    only(security_events, rid, "authn_login_success", ip, id=str(user.pk))


def test_drf_basic_authentication_is_still_one_success_per_request(security_events: Capture) -> None:
    import base64

    user, password = new_account("tok")
    basic = "Basic " + base64.b64encode(f"{user.username}:{password}".encode()).decode()
    response, ip, rid = send("get", "/drf/me/", authorization=basic)
    assert response.status_code == 200, response.content
    only(security_events, rid, "authn_login_success", ip, secrets=(password,), id=str(user.pk))
