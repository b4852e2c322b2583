"""A wrong current password typed by the logged-in account and checked with the user model's
`check_password()` (djoser's `set_password`, account-deletion confirmations, DRF serializers of your own):
one `authn_password_change_fail`; a wrong password at login stays a login failure only.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.urls import path
from seams_helpers import new_account, of_request, only, send

from graffer_secevents.testing import Capture

pytest.importorskip("rest_framework")

from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView


class _NoCsrf(SessionAuthentication):
    def enforce_csrf(self, request: Any) -> None:
        return None


class SetPasswordSerializer(serializers.Serializer[Any]):
    """djoser's shape: the current password is confirmed with `request.user.check_password()`."""

    current_password = serializers.CharField()
    new_password = serializers.CharField()

    def validate_current_password(self, value: str) -> str:
        if not self.context["request"].user.check_password(value):
            raise serializers.ValidationError("Invalid password.")
        return value


class SetPassword(APIView):
    authentication_classes: ClassVar[list[Any]] = [_NoCsrf]

    def post(self, request: Any) -> Response:
        serializer = SetPasswordSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        request.user.set_password(serializer.validated_data["new_password"])
        request.user.save()
        return Response(status=204)


class CheckSomeoneElse(APIView):
    """A staff tool checking another account's password: not the actor's confirmation."""

    authentication_classes: ClassVar[list[Any]] = [_NoCsrf]

    def post(self, request: Any) -> Response:
        other = get_user_model().objects.get(username=request.data["username"])
        return Response({"ok": other.check_password(request.data["password"])})


# The project's URLconf (this directory's conftest configured Django and built it).
_PROJECT_URLS = sys.modules[settings.ROOT_URLCONF].urlpatterns

urlpatterns = [
    path("me/set-password/", SetPassword.as_view()),
    path("staff/check/", CheckSomeoneElse.as_view()),
    *_PROJECT_URLS,
]

pytestmark = pytest.mark.usefixtures("_urls")


@pytest.fixture
def _urls() -> Any:
    with override_settings(ROOT_URLCONF=__name__):
        yield


def _logged_in(user: Any, password: str) -> Client:
    client = Client()
    assert client.login(username=user.username, password=password)
    return client


def test_a_wrong_current_password_is_one_change_failure(security_events: Capture) -> None:
    user, password = new_account("curpw")
    client = _logged_in(user, password)
    body = {"current_password": "not-" + password, "new_password": "Next-Secret-1!"}
    response, ip, rid = send("post", "/me/set-password/", body, client=client, json_body=True)
    assert response.status_code == 400
    record = only(
        security_events,
        rid,
        "authn_password_change_fail",
        ip,
        secrets=(password, "Next-Secret-1!"),
        id=str(user.pk),
    )
    assert record["evt"]["reason"] == "invalid_credentials"


def test_the_right_current_password_is_one_change(security_events: Capture) -> None:
    user, password = new_account("curpw")
    client = _logged_in(user, password)
    body = {"current_password": password, "new_password": "Next-Secret-1!"}
    response, ip, rid = send("post", "/me/set-password/", body, client=client, json_body=True)
    assert response.status_code == 204
    only(
        security_events,
        rid,
        "authn_password_change",
        ip,
        secrets=(password, "Next-Secret-1!"),
        id=str(user.pk),
    )


def test_a_wrong_password_at_login_is_only_a_login_failure(security_events: Capture) -> None:
    user, _ = new_account("curpw")
    response, ip, rid = send("post", "/api/login/", {"username": user.username, "password": "nope"})
    assert response.status_code == 401
    only(security_events, rid, "authn_login_fail", ip, id=str(user.pk))


def test_checking_someone_elses_password_is_no_event(security_events: Capture) -> None:
    staff, password = new_account("curpw", staff=True)
    other, _ = new_account("curpw")
    client = _logged_in(staff, password)
    body = {"username": other.username, "password": "guess"}
    response, _, rid = send("post", "/staff/check/", body, client=client, json_body=True)
    assert response.status_code == 200 and response.json() == {"ok": False}
    assert of_request(security_events, rid) == []


def test_a_check_outside_a_request_is_no_event(security_events: Capture) -> None:
    user, _ = new_account("curpw")
    assert user.check_password("wrong") is False
    assert [r for r in security_events.records if r["evt"]["type"] == "authn_password_change_fail"] == []
