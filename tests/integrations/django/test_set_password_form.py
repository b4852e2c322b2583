"""Django's `SetPasswordForm` outside a reset link: dj-rest-auth's password change (and many "new password"
pages) save the logged-in user's password through it. That is a change by that user, not a reset; a reset
is what `PasswordResetConfirmView` saves, and an anonymous save.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import SetPasswordForm
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from seams_helpers import new_account, only, send

from graffer_secevents.testing import Capture


@csrf_exempt
def new_password(request: HttpRequest) -> HttpResponse:
    """As dj-rest-auth's PasswordChangeView: the logged-in user's form (or, anonymously, a named account)."""
    user = (
        request.user
        if request.user.is_authenticated
        else get_user_model().objects.get(username=request.POST["who"])
    )
    form = SetPasswordForm(user, request.POST)
    if not form.is_valid():
        return HttpResponse(form.errors.as_text(), status=400)
    form.save()
    return HttpResponse("saved")


# The project's URLconf (this directory's conftest configured Django and built it).
_PROJECT_URLS = sys.modules[settings.ROOT_URLCONF].urlpatterns

urlpatterns = [path("new-password/", new_password), *_PROJECT_URLS]

pytestmark = pytest.mark.usefixtures("_urls")


@pytest.fixture
def _urls() -> Any:
    with override_settings(ROOT_URLCONF=__name__):
        yield


def test_the_logged_in_users_set_password_form_is_a_change(security_events: Capture) -> None:
    user, password = new_account("setpw")
    client = Client()
    assert client.login(username=user.username, password=password)
    new = "Fresh-Secret-Value-9!"
    response, ip, rid = send(
        "post", "/new-password/", {"new_password1": new, "new_password2": new}, client=client
    )
    assert response.status_code == 200, response.content
    only(security_events, rid, "authn_password_change", ip, secrets=(new, password), id=str(user.pk))


def test_an_anonymous_set_password_form_is_a_reset(security_events: Capture) -> None:
    user, _ = new_account("setpw")
    new = "Fresh-Secret-Value-9!"
    response, ip, rid = send(
        "post", "/new-password/", {"who": user.username, "new_password1": new, "new_password2": new}
    )
    assert response.status_code == 200, response.content
    record = only(
        security_events, rid, "authn_password_reset", ip, secrets=(new,), id=str(user.pk), exists=True
    )
    assert record["evt"]["outcome"] == "success"


def test_mismatched_new_passwords_write_nothing(security_events: Capture) -> None:
    user, password = new_account("setpw")
    client = Client()
    assert client.login(username=user.username, password=password)
    response, _, rid = send(
        "post", "/new-password/", {"new_password1": "a-Long-One-1!", "new_password2": "other"}, client=client
    )
    assert response.status_code == 400
    assert [r for r in security_events.records if r.get("http", {}).get("request_id") == rid] == []
