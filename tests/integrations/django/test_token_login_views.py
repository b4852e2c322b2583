"""Login endpoints that issue a token: they call Django's `authenticate()` and never `login()` (dj-rest-auth
without `SESSION_LOGIN`, django-ninja-jwt, the view every API tutorial writes), so no signal tells of the
success. A JSON answer (2xx) after a backend accepted an account, with no login recorded, is that account's
one `authn_login_success`; an HTML page after a first factor (a two-factor wizard) or a refusal is not.
"""

from __future__ import annotations

import json
import sys
from typing import Any, ClassVar

import pytest
from django.conf import settings
from django.contrib.auth import authenticate, logout
from django.contrib.auth.signals import user_logged_out
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import override_settings
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from seams_helpers import new_account, of_request, only, send

from graffer_secevents.testing import Capture

pytest.importorskip("rest_framework")

from rest_framework.authentication import TokenAuthentication
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


class TokenLogout(APIView):
    """dj-rest-auth's logout without SESSION_LOGIN: the token is deleted, no user_logged_out is sent."""

    authentication_classes: ClassVar[list[Any]] = [TokenAuthentication]

    def post(self, request: Any) -> Response:
        request.user.auth_token.delete()
        return Response({"detail": "Successfully logged out."})


class RevokeToken(APIView):
    """An administrator revoking someone else's token: not a logout."""

    authentication_classes: ClassVar[list[Any]] = [TokenAuthentication]

    def post(self, request: Any) -> Response:
        Token.objects.filter(user__username=request.data["username"]).delete()
        return Response(status=204)


class SignalThenLogout(APIView):
    """djoser's logout with CREATE_SESSION_ON_LOGIN: user_logged_out sent, then Django's logout() sends it
    again."""

    authentication_classes: ClassVar[list[Any]] = [TokenAuthentication]

    def post(self, request: Any) -> Response:
        Token.objects.filter(user=request.user).delete()
        user_logged_out.send(sender=request.user.__class__, request=request, user=request.user)
        logout(request)
        return Response(status=204)


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


# The project's URLconf (this directory's conftest configured Django and built it).
_PROJECT_URLS = sys.modules[settings.ROOT_URLCONF].urlpatterns

urlpatterns = [
    path("tokens/drf/", TokenLogin.as_view()),
    path("tokens/logout/", TokenLogout.as_view()),
    path("tokens/revoke/", RevokeToken.as_view()),
    path("tokens/signal-logout/", SignalThenLogout.as_view()),
    path("tokens/json/", json_token_login),
    path("tokens/wizard/", first_factor_page),
    *_PROJECT_URLS,
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


def _token_of(user: Any) -> str:
    return str(Token.objects.get_or_create(user=user)[0].key)


def test_deleting_the_own_token_is_one_logout_without_its_value(security_events: Capture) -> None:
    user, _ = new_account("tok")
    key = _token_of(user)
    response, ip, rid = send("post", "/tokens/logout/", authorization=f"Token {key}")
    assert response.status_code == 200
    record = only(security_events, rid, "session_logout", ip, secrets=(key,), id=str(user.pk))
    assert record["evt"]["session_id"].startswith("anon_")
    response, ip, rid = send("post", "/tokens/logout/", authorization=f"Token {key}")
    assert response.status_code == 401  # the token is gone: a bad credential now, not a second logout
    assert (
        only(security_events, rid, "authn_login_fail", ip, secrets=(key,))["evt"]["reason"] == "invalid_token"
    )


def test_revoking_someone_elses_token_is_no_logout(security_events: Capture) -> None:
    admin, _ = new_account("tok", staff=True)
    other, _ = new_account("tok")
    _token_of(other)
    response, _, rid = send(
        "post",
        "/tokens/revoke/",
        {"username": other.username},
        json_body=True,
        authorization=f"Token {_token_of(admin)}",
    )
    assert response.status_code == 204
    assert "session_logout" not in [r["evt"]["type"] for r in of_request(security_events, rid)]


def test_a_logout_signalled_twice_is_one_logout(security_events: Capture) -> None:
    user, _ = new_account("tok")
    key = _token_of(user)
    response, ip, rid = send("post", "/tokens/signal-logout/", authorization=f"Token {key}")
    assert response.status_code == 204
    only(security_events, rid, "session_logout", ip, secrets=(key,), id=str(user.pk))
