"""Credentials that are not a typed login and a password, through Django's `authenticate()`: a magic-link
token checked by a backend (as django-sesame does), and the name a web server vouches for through Django's
own `RemoteUserMiddleware` / `RemoteUserBackend`. A refused token is one `invalid_token` (never its value);
a vouched name is a login, an unknown one `unknown_user`.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import authenticate, get_user_model, login
from django.contrib.auth.backends import ModelBackend, RemoteUserBackend
from django.contrib.auth.middleware import RemoteUserMiddleware
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path
from seams_helpers import new_account, of_request, only, send

from graffer_secevents.testing import Capture


class MagicLinkBackend(ModelBackend):
    """Logs in with a one-time token naming no account by itself, as django-sesame's backend does."""

    def authenticate(self, request: Any, magic: str | None = None, **_kwargs: Any) -> Any:
        if not magic or "." not in magic:
            return None
        username, _, signature = magic.partition(".")
        if signature != f"signed-{username}":
            return None
        return get_user_model().objects.filter(username=username).first()


class HeaderRemoteUserMiddleware(RemoteUserMiddleware):
    header = "HTTP_X_REMOTE_USER"


class KnownRemoteUserBackend(RemoteUserBackend):
    create_unknown_user = False


def magic_login(request: HttpRequest) -> HttpResponse:
    user = authenticate(request, magic=request.GET.get("magic"))
    if user is None:
        return HttpResponse("link expired", status=403)
    login(request, user)
    return HttpResponse("welcome")


def whoami(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(request.user.pk) if request.user.is_authenticated else "anonymous")


# The project's URLconf (this directory's conftest configured Django and built it).
_PROJECT_URLS = sys.modules[settings.ROOT_URLCONF].urlpatterns

urlpatterns = [path("magic/", magic_login), path("whoami/", whoami), *_PROJECT_URLS]

MAGIC = override_settings(
    ROOT_URLCONF=__name__,
    AUTHENTICATION_BACKENDS=[f"{__name__}.MagicLinkBackend", "django.contrib.auth.backends.ModelBackend"],
)


@pytest.fixture
def remote_user() -> Any:
    with override_settings(
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[*settings.MIDDLEWARE, f"{__name__}.HeaderRemoteUserMiddleware"],
        AUTHENTICATION_BACKENDS=[f"{__name__}.KnownRemoteUserBackend"],
    ):
        yield


@MAGIC
def test_a_forged_magic_link_is_one_invalid_token_without_its_value(security_events: Capture) -> None:
    user, _ = new_account("magic")
    forged = f"{user.username}.forged-signature-value"
    response, ip, rid = send("get", "/magic/", {"magic": forged})
    assert response.status_code == 403
    record = only(security_events, rid, "authn_login_fail", ip, secrets=("forged-signature-value",))
    assert record["evt"]["reason"] == "invalid_token"
    assert "id" not in record.get("usr", {})  # the token names no account by itself: no guessed id
    assert security_events.metric_total("secevents.login.attempts", "reason:invalid_token") == 1


@MAGIC
def test_a_valid_magic_link_is_one_login_with_the_pk(security_events: Capture) -> None:
    user, _ = new_account("magic")
    response, ip, rid = send("get", "/magic/", {"magic": f"{user.username}.signed-{user.username}"})
    assert response.status_code == 200
    only(
        security_events, rid, "authn_login_success", ip, secrets=(f"signed-{user.username}",), id=str(user.pk)
    )


@MAGIC
def test_a_password_login_on_the_same_backends_is_unchanged(security_events: Capture) -> None:
    user, password = new_account("magic")
    request = send("post", "/login/", {"username": user.username, "password": "nope"})
    record = only(security_events, request[2], "authn_login_fail", request[1], id=str(user.pk), exists=True)
    assert record["evt"]["reason"] == "invalid_credentials"
    empty = send("post", "/login/", {"username": "", "password": password})
    assert of_request(security_events, empty[2]) == []  # the form refuses it before authenticate()


def test_a_vouched_remote_user_is_one_login_per_session(remote_user: None, security_events: Capture) -> None:
    user, _ = new_account("remote")
    client = Client()
    response, ip, rid = send("get", "/whoami/", client=client, x_remote_user=user.username)
    assert response.content.decode() == str(user.pk)
    only(security_events, rid, "authn_login_success", ip, id=str(user.pk))
    response, _, rid = send("get", "/whoami/", client=client, x_remote_user=user.username)
    assert response.content.decode() == str(user.pk)
    assert of_request(security_events, rid) == []  # the session carries it: no second login


def test_an_unknown_remote_user_is_one_unknown_user_failure(
    remote_user: None, security_events: Capture
) -> None:
    response, ip, rid = send("get", "/whoami/", x_remote_user="nobody-vouched-for")
    assert response.content.decode() == "anonymous"
    record = only(security_events, rid, "authn_login_fail", ip, exists=False)
    assert record["evt"]["reason"] == "unknown_user"
    assert record["usr"]["login"].startswith("anon_") and record["usr"]["id"] == record["usr"]["login"]
