"""Django's `AuthenticationForm` refusing an account whose password was right (its `confirm_login_allowed`):
the admin's login page for an account that is not staff, `LoginView` with `AllowAllUsersModelBackend` for an
inactive account, a subclass's own check. `authenticate()` succeeded, so Django sends no `user_login_failed`,
and `login()` is never called: only the form sees the refusal. Each is one `authn_login_fail` with the
account's pk, never the password.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.test import override_settings
from django.urls import path
from seams_helpers import new_account, of_request, only, send

from graffer_secevents.testing import Capture

ALLOW_ALL = override_settings(
    AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.AllowAllUsersModelBackend"]
)


class NoWeekendLoginForm(AuthenticationForm):
    """A subclass with its own refusal, as applications write them."""

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if user.username.startswith("barred"):
            raise forms.ValidationError("not today", code="barred")


# The project's URLconf (this directory's conftest configured Django and built it).
_PROJECT_URLS = sys.modules[settings.ROOT_URLCONF].urlpatterns
urlpatterns = [
    path("barred-login/", LoginView.as_view(authentication_form=NoWeekendLoginForm)),
    *_PROJECT_URLS,
]


@pytest.fixture(autouse=True)
def _urls() -> Any:
    with override_settings(ROOT_URLCONF=__name__):
        yield


def _admin_login(username: str, password: str) -> tuple[Any, str, str]:
    return send("post", "/admin/login/?next=/admin/", {"username": username, "password": password})


def test_the_admin_refusing_a_non_staff_account_is_one_failure_with_its_pk(security_events: Capture) -> None:
    user, password = new_account("nostaff")
    response, ip, rid = _admin_login(user.username, password)
    assert response.status_code == 200  # the form again, with "enter the correct username and password"
    record = only(
        security_events, rid, "authn_login_fail", ip, secrets=(password,), id=str(user.pk), exists=True
    )
    assert record["evt"]["reason"] == "not_allowed"
    assert record["evt"]["outcome"] == "failure" and record["evt"]["name"] == "authentication"
    assert record["usr"]["login"].startswith("anon_")  # the typed name, hashed
    assert security_events.metric_total("secevents.login.attempts", "reason:not_allowed") == 1


def test_the_admin_staff_login_and_its_wrong_password_are_one_event_each(security_events: Capture) -> None:
    user, password = new_account("staff", staff=True)
    response, ip, rid = _admin_login(user.username, "not-" + password)
    assert response.status_code == 200
    wrong = only(security_events, rid, "authn_login_fail", ip, secrets=(password,), id=str(user.pk))
    assert wrong["evt"]["reason"] == "invalid_credentials"
    response, ip, rid = _admin_login(user.username, password)
    assert response.status_code == 302
    only(security_events, rid, "authn_login_success", ip, secrets=(password,), id=str(user.pk))


@ALLOW_ALL
def test_an_inactive_account_let_through_by_its_backend_is_refused_as_disabled(
    security_events: Capture,
) -> None:
    user, password = new_account("dormant", active=False)
    response, ip, rid = send("post", "/login/", {"username": user.username, "password": password})
    assert response.status_code == 200
    record = only(
        security_events, rid, "authn_login_fail", ip, secrets=(password,), id=str(user.pk), exists=True
    )
    assert record["evt"]["reason"] == "account_disabled"


def test_a_subclass_refusal_is_recorded_and_its_right_login_is_not(security_events: Capture) -> None:
    barred, barred_password = new_account("barred")
    response, ip, rid = send(
        "post", "/barred-login/", {"username": barred.username, "password": barred_password}
    )
    assert response.status_code == 200
    record = only(security_events, rid, "authn_login_fail", ip, secrets=(barred_password,), id=str(barred.pk))
    assert record["evt"]["reason"] == "not_allowed"
    allowed, password = new_account("allowed")
    response, ip, rid = send("post", "/barred-login/", {"username": allowed.username, "password": password})
    assert response.status_code == 302
    only(security_events, rid, "authn_login_success", ip, id=str(allowed.pk))


def test_a_wrong_password_on_the_same_form_is_still_one_event(security_events: Capture) -> None:
    barred, _ = new_account("barred")
    response, ip, rid = send("post", "/barred-login/", {"username": barred.username, "password": "nope"})
    assert response.status_code == 200
    record = only(security_events, rid, "authn_login_fail", ip, id=str(barred.pk))
    assert record["evt"]["reason"] == "invalid_credentials"


def test_an_empty_form_writes_nothing(security_events: Capture) -> None:
    response, _, rid = send("post", "/admin/login/", {"username": "", "password": ""})
    assert response.status_code == 200
    assert of_request(security_events, rid) == []
