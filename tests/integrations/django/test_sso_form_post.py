"""An SSO callback the provider *posts* (`response_mode=form_post`, as Sign in with Apple and Azure AD do): Django's
middleware reads the fields the view parsed (`request.POST`), never the body itself, with the same rule as for a
redirect (`integrations/_sso.py`). The callback here is written as such views are: it checks the state, hands
the ID token to an authentication backend and calls `login()`; no event code.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import authenticate, get_user_model, login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.test import Client, override_settings
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from graffer_secevents.testing import Capture

PEER = "198.51.100.23"
STATE = "expected-state-" + "k" * 20


class IdTokenBackend:
    """Accepts an ID token `ok:<username>` (its signature checked, say); any other is refused (`None`)."""

    def authenticate(self, request: HttpRequest | None, id_token: str | None = None) -> Any:
        if not id_token or not id_token.startswith("ok:"):
            return None
        return get_user_model().objects.filter(username=id_token[3:]).first()

    def get_user(self, user_id: int) -> Any:
        return get_user_model().objects.filter(pk=user_id).first()


@csrf_exempt
def callback(request: HttpRequest) -> HttpResponse:
    form = request.POST
    if "error" in form:
        return HttpResponseRedirect("/failed/")
    if form.get("state") != STATE:
        return HttpResponse("bad state", status=400)
    user = authenticate(request, id_token=form.get("id_token"))
    if user is None or not user.is_active:
        return HttpResponseRedirect("/failed/")
    login(request, user)
    return HttpResponseRedirect("/private/")


@csrf_exempt
def address(request: HttpRequest) -> HttpResponse:
    """Not a callback: a form with a `state` field (and a postal `code`) answered 400."""
    request.POST.get("state")
    return HttpResponse("invalid address", status=400)


urlpatterns = [path("sso/apple/callback/", callback), path("address/", address)]

pytestmark = pytest.mark.usefixtures("form_post_site")


@pytest.fixture
def form_post_site() -> Any:
    backends = [f"{__name__}.IdTokenBackend", "django.contrib.auth.backends.ModelBackend"]
    with override_settings(ROOT_URLCONF=__name__, AUTHENTICATION_BACKENDS=backends):
        yield


def post(
    data: dict[str, str], url: str = "/sso/apple/callback/", origin: str | None = "https://appleid.apple.com"
) -> HttpResponse:
    """POST as the provider's page does (its own origin in `Origin`), or as a form of the site itself."""
    headers = {"HTTP_ORIGIN": origin} if origin else {}
    return Client(REMOTE_ADDR=PEER).post(url, data, HTTP_X_REQUEST_ID="form-post-1", **headers)  # type: ignore[no-any-return]


def attempts(security_events: Capture) -> list[tuple[str, Any, Any]]:
    return [
        (r["evt"]["type"], r["evt"].get("reason"), r.get("usr", {}).get("id"))
        for r in security_events.records
        if r["evt"]["name"] == "authentication"
    ]


def test_a_posted_success_is_one_login(security_events: Capture) -> None:
    ada = get_user_model().objects.get(username="ada")
    assert post({"state": STATE, "code": "c-1", "id_token": "ok:ada"}).status_code == 302
    assert attempts(security_events) == [("authn_login_success", None, str(ada.pk))]


def test_a_posted_provider_error_is_one_refused_login(security_events: Capture) -> None:
    assert post({"state": STATE, "error": "user_cancelled_authorize"}).status_code == 302
    assert attempts(security_events) == [("authn_login_fail", "not_allowed", None)]


def test_a_posted_forged_state_is_one_invalid_token(security_events: Capture) -> None:
    assert post({"state": "forged", "code": "c-2", "id_token": "ok:ada"}).status_code == 400
    assert attempts(security_events) == [("authn_login_fail", "invalid_token", None)]
    record = security_events.records[0]
    assert record["network"]["client"]["ip"] == PEER and record["http"]["request_id"] == "form-post-1"
    assert "ok:ada" not in str(security_events.records) and "forged" not in str(security_events.records)


def test_a_posted_id_token_of_an_inactive_account_is_account_disabled(security_events: Capture) -> None:
    ina = get_user_model().objects.get(username="ina")
    assert post({"state": STATE, "code": "c-3", "id_token": "ok:ina"}).status_code == 302
    assert attempts(security_events) == [("authn_login_fail", "account_disabled", str(ina.pk))]


def test_a_posted_id_token_the_backend_refuses_is_not_allowed(security_events: Capture) -> None:
    assert post({"state": STATE, "code": "c-4", "id_token": "forged-token"}).status_code == 302
    assert attempts(security_events) == [("authn_login_fail", "not_allowed", None)]
    assert "forged-token" not in str(security_events.records)


@pytest.mark.parametrize("origin", ["http://testserver", None])
def test_a_form_of_the_site_with_a_state_field_is_not_a_callback(
    security_events: Capture, origin: Any
) -> None:
    """Same-origin (or no `Origin`, not a browser's cross-site post): the site's own form, not a provider's."""
    assert post({"state": "CA", "code": "94110"}, url="/address/", origin=origin).status_code == 400
    assert post({"state": "forged", "code": "c-5"}, origin=origin).status_code == 400
    assert attempts(security_events) == []


def test_a_null_origin_is_a_provider_post(security_events: Capture) -> None:
    """A browser sends `Origin: null` after a cross-site redirect chain: still the provider's post."""
    assert post({"state": STATE, "error": "access_denied"}, origin="null").status_code == 302
    assert attempts(security_events) == [("authn_login_fail", "not_allowed", None)]
