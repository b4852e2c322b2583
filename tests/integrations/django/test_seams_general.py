"""The Django seams are general: classes, backends, forms and views written here, for the tests (in
``seams_views.py``), with no event code, are recorded right — one record of the right type per request, with
the account's stable ``usr.id``, ``usr.exists``, a bounded ``evt.reason``, the IP and the request id, and
no raw password, key or e-mail anywhere.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import MD5PasswordHasher, PBKDF2PasswordHasher, make_password
from django.contrib.auth.tokens import default_token_generator
from django.test import Client, override_settings
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from graffer_secevents import EventValidationError
from graffer_secevents.testing import Capture

pytest.importorskip("axes")
pytest.importorskip("rest_framework")

import seams_views
from seams_helpers import new_account, of_request, only, send, types_of

REFUSING = override_settings(
    AUTHENTICATION_BACKENDS=[
        "seams_views.RefuseListedBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]
)

# --- a DRF authentication class written in the test ------------------------------------------------------


def test_a_valid_key_of_our_own_drf_class_writes_nothing(security_events: Capture) -> None:
    user, _ = new_account("key")
    response, _, rid = send(
        "get", "/seams/key/me/", authorization=f"Key {user.username}.key-of-{user.username}"
    )
    assert response.status_code == 200 and response.json() == {"id": user.pk}
    assert of_request(security_events, rid) == []


def test_a_wrong_key_naming_an_account_is_one_invalid_token_with_its_id(security_events: Capture) -> None:
    user, _ = new_account("key")
    response, ip, rid = send("get", "/seams/key/me/", authorization=f"Key {user.username}.forged")
    assert response.status_code == 401
    record = only(
        security_events, rid, "authn_login_fail", ip, secrets=("forged",), id=str(user.pk), exists=True
    )
    assert record["evt"]["reason"] == "invalid_token"


def test_a_key_naming_no_account_is_one_invalid_token_without_an_id(security_events: Capture) -> None:
    response, ip, rid = send("get", "/seams/key/me/", authorization="Key nobody-here.key-of-nobody-here")
    assert response.status_code == 401
    record = only(security_events, rid, "authn_login_fail", ip, secrets=("key-of-nobody",))
    assert record["evt"]["reason"] == "invalid_token" and "id" not in record.get("usr", {})


def test_a_valid_key_of_a_disabled_account_is_account_disabled(security_events: Capture) -> None:
    user, _ = new_account("key", active=False)
    response, ip, rid = send(
        "get", "/seams/key/me/", authorization=f"Key {user.username}.key-of-{user.username}"
    )
    assert response.status_code == 401
    record = only(security_events, rid, "authn_login_fail", ip, id=str(user.pk), exists=True)
    assert record["evt"]["reason"] == "account_disabled"


def test_a_permission_refusal_after_our_class_is_authz_fail_with_the_user(security_events: Capture) -> None:
    user, _ = new_account("key")
    response, ip, rid = send(
        "get", "/seams/key/admin/", authorization=f"Key {user.username}.key-of-{user.username}"
    )
    assert response.status_code == 403
    record = only(security_events, rid, "authz_fail", ip, id=str(user.pk))
    assert record["evt"]["resource"] == "/seams/key/admin/"


# --- a backend that raises PermissionDenied -----------------------------------------------------------------


@pytest.fixture
def refused() -> Any:
    user, password = new_account("locked")
    seams_views.REFUSED_LOGINS.add(user.username)
    yield user, password
    seams_views.REFUSED_LOGINS.discard(user.username)


@REFUSING
@pytest.mark.parametrize("right_password", [True, False])
def test_a_backend_refusal_is_fail_max_never_a_wrong_password_nor_a_success(
    security_events: Capture, refused: Any, right_password: bool
) -> None:
    user, password = refused
    typed = password if right_password else "not-the-password"
    response, ip, rid = send("post", "/login/", {"username": user.username, "password": typed})
    assert response.status_code == 200 and "_auth_user_id" not in response.wsgi_request.session
    record = only(
        security_events, rid, "authn_login_fail_max", ip, secrets=(password,), id=str(user.pk), exists=True
    )
    assert record["usr"]["login"].startswith("anon_")


@REFUSING
def test_a_backend_refusal_of_an_unknown_login(security_events: Capture) -> None:
    seams_views.REFUSED_LOGINS.add("ghost-user")
    try:
        response, ip, rid = send("post", "/api/login/", {"username": "ghost-user", "password": "x"})
    finally:
        seams_views.REFUSED_LOGINS.discard("ghost-user")
    assert response.status_code == 401
    only(security_events, rid, "authn_login_fail_max", ip, exists=False)


@REFUSING
def test_a_backend_refusal_through_async_authenticate(security_events: Capture, refused: Any) -> None:
    user, password = refused
    response, ip, rid = send("post", "/async/login/", {"username": user.username, "password": password})
    assert response.status_code == 401
    only(security_events, rid, "authn_login_fail_max", ip, id=str(user.pk), exists=True)


@REFUSING
def test_a_backend_refusal_inside_drf_basic_auth_is_one_event(security_events: Capture, refused: Any) -> None:
    import base64

    user, password = refused
    basic = base64.b64encode(f"{user.username}:{password}".encode()).decode()
    response, ip, rid = send("get", "/drf/me/", authorization=f"Basic {basic}")
    assert response.status_code == 401
    only(security_events, rid, "authn_login_fail_max", ip, secrets=(password, basic), id=str(user.pk))


@REFUSING
def test_a_refused_hostile_login_is_hashed_whole_in_strict_mode(security_events: Capture) -> None:
    hostile = ("ev\n\x01\u202eil" * 400)[:3000]
    seams_views.REFUSED_LOGINS.add(hostile)
    try:
        response, ip, rid = send("post", "/api/login/", {"username": hostile, "password": "x"})
    finally:
        seams_views.REFUSED_LOGINS.discard(hostile)
    assert response.status_code == 401
    record = only(security_events, rid, "authn_login_fail_max", ip, exists=False)
    assert record["usr"]["login"].startswith("anon_") and "errors" not in record["secevents"]


# --- a PasswordChangeForm subclass in a plain view ---------------------------------------------------------


def test_our_password_change_form_records_the_change(security_events: Capture) -> None:
    user, password = new_account("pwc")
    client = Client()
    client.force_login(user)
    new = "brand-New-pass-42"
    data = {"old_password": password, "new_password1": new, "new_password2": new}
    response, ip, rid = send("post", "/seams/change-password/", data, client=client)
    assert response.status_code == 200
    only(security_events, rid, "authn_password_change", ip, secrets=(password, new), id=str(user.pk))


def test_our_password_change_form_refusing_the_old_password(security_events: Capture) -> None:
    user, _password = new_account("pwc")
    client = Client()
    client.force_login(user)
    data = {
        "old_password": "not-it",
        "new_password1": "brand-New-pass-42",
        "new_password2": "brand-New-pass-42",
    }
    response, ip, rid = send("post", "/seams/change-password/", data, client=client)
    assert response.status_code == 400
    record = only(security_events, rid, "authn_password_change_fail", ip, id=str(user.pk))
    assert record["evt"]["reason"] == "invalid_credentials"


def test_djangos_password_change_view(security_events: Capture) -> None:
    user, password = new_account("pwv")
    client = Client()
    client.force_login(user)
    new = "brand-New-pass-43"
    data = {"old_password": password, "new_password1": new, "new_password2": new}
    response, ip, rid = send("post", "/seams/password-change/", data, client=client)
    assert response.status_code == 302
    only(security_events, rid, "authn_password_change", ip, secrets=(password, new), id=str(user.pk))


# --- Django's reset views ------------------------------------------------------------------------------------


@pytest.mark.parametrize("known", [True, False])
def test_a_reset_request_says_whether_the_address_is_an_account(
    security_events: Capture, known: bool
) -> None:
    user, _ = new_account("rst")
    email = user.email if known else "nobody-at-all@example.com"
    response, ip, rid = send("post", "/seams/password-reset/", {"email": email})
    assert response.status_code == 302
    record = only(security_events, rid, "authn_password_reset_request", ip, secrets=(email,), exists=known)
    assert record["usr"].get("id") == (str(user.pk) if known else None)
    assert record["usr"]["email"].startswith("anon_")


def test_a_reset_through_the_link_is_one_reset(security_events: Capture) -> None:
    user, password = new_account("rst")
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    client = Client()
    first, _, _ = send("get", f"/seams/reset/{uid}/{token}/", client=client)
    assert first.status_code == 302
    new = "brand-New-pass-44"
    response, ip, rid = send("post", first.url, {"new_password1": new, "new_password2": new}, client=client)
    assert response.status_code == 302
    record = only(
        security_events, rid, "authn_password_reset", ip, secrets=(password, new, token), id=str(user.pk)
    )
    assert record["evt"]["outcome"] == "success" and record["usr"]["exists"] is True


def test_a_bad_reset_link_is_a_refused_reset(security_events: Capture) -> None:
    user, _ = new_account("rst")
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    response, ip, rid = send("get", f"/seams/reset/{uid}/bad-token-123/")
    assert response.status_code == 200 and b"False" in response.content
    record = only(
        security_events, rid, "authn_password_reset", ip, secrets=("bad-token-123",), id=str(user.pk)
    )
    assert record["evt"]["outcome"] == "failure" and record["evt"]["reason"] == "invalid_reset_key"


# --- set_password anywhere, and what is not a change --------------------------------------------------------


class _FastPBKDF2(PBKDF2PasswordHasher):
    iterations = 1


@override_settings(
    PASSWORD_HASHERS=[f"{__name__}._FastPBKDF2", "django.contrib.auth.hashers.MD5PasswordHasher"]
)
def test_a_hash_upgrade_at_login_is_not_a_password_change(security_events: Capture) -> None:
    user, password = new_account("rehash")
    get_user_model().objects.filter(pk=user.pk).update(
        password=make_password(password, hasher=MD5PasswordHasher())
    )
    response, ip, rid = send("post", "/api/login/", {"username": user.username, "password": password})
    assert response.status_code == 200
    assert get_user_model().objects.get(pk=user.pk).password.startswith("pbkdf2")  # it was upgraded
    only(security_events, rid, "authn_login_success", ip, id=str(user.pk))


# --- accounts created by a view that only calls create_user ---------------------------------------------------


def test_an_anonymous_create_user_is_one_signup(security_events: Capture) -> None:
    data = {"username": "newbie-a", "email": "newbie-a@example.com", "password": "pw-Newbie-1"}
    response, ip, rid = send("post", "/seams/signup/", data)
    assert response.status_code == 201
    only(
        security_events,
        rid,
        "user_signup",
        ip,
        secrets=(data["email"], data["password"]),
        id=str(response.json()["id"]),
    )


def test_create_user_by_a_logged_in_account_is_user_created_with_the_target(security_events: Capture) -> None:
    admin, _ = new_account("staff", staff=True)
    client = Client()
    client.force_login(admin)
    data = {"username": "newbie-b", "email": "newbie-b@example.com", "password": "pw-Newbie-2"}
    response, ip, rid = send("post", "/seams/signup/", data, client=client)
    assert response.status_code == 201
    record = only(security_events, rid, "user_created", ip, secrets=(data["email"],), id=str(admin.pk))
    assert record["target"]["usr"]["id"] == str(response.json()["id"])


def test_no_event_for_accounts_created_outside_a_request(security_events: Capture) -> None:
    new_account("quiet")
    assert security_events.records == []


# --- a case the code was not written for: DRF's CreateAPIView with a ModelSerializer --------------------------


def test_a_drf_registration_endpoint_is_one_signup(security_events: Capture) -> None:
    data = {"username": "drf-newbie", "email": "drf-newbie@example.com", "password": "pw-Drf-Newbie-3"}
    response, ip, rid = send("post", "/seams/register/", data, json_body=True)
    assert response.status_code == 201, response.content
    user = get_user_model().objects.get(username="drf-newbie")
    only(security_events, rid, "user_signup", ip, secrets=(data["email"], data["password"]), id=str(user.pk))


def test_a_drf_registration_by_a_token_is_user_created(security_events: Capture) -> None:
    from rest_framework.authtoken.models import Token

    admin, _ = new_account("staff", staff=True)
    key = Token.objects.create(user=admin).key
    data = {"username": "drf-made", "email": "drf-made@example.com", "password": "pw-Drf-Made-4"}
    response, ip, rid = send("post", "/seams/register/", data, json_body=True, authorization=f"Token {key}")
    assert response.status_code == 201, response.content
    record = only(security_events, rid, "user_created", ip, secrets=(key, data["password"]), id=str(admin.pk))
    assert record["target"]["usr"]["id"] == str(get_user_model().objects.get(username="drf-made").pk)
    assert types_of(security_events, rid) == ["user_created"]


def test_strict_mode_still_names_bad_input_from_a_seam(security_events: Capture) -> None:
    """The seams call the same pipeline: a bad parameter a seam could pass is an EventValidationError."""
    import graffer_secevents as api

    with pytest.raises(EventValidationError, match=r"usr\.exists"):
        api.emit("user_signup", user="1", exists="yes")


@REFUSING
def test_a_backend_refusal_without_the_middleware_is_still_not_a_wrong_password(
    security_events: Capture, refused: Any
) -> None:
    """`authenticate()` called with a request but no middleware bound (a signal-only setup)."""
    from django.contrib.auth import authenticate
    from django.test import RequestFactory

    user, password = refused
    request = RequestFactory().post("/login/", REMOTE_ADDR="192.0.2.200")
    assert authenticate(request, username=user.username, password=password) is None
    assert [r["evt"]["type"] for r in security_events.records] == ["authn_login_fail_max"]
    assert security_events.records[0]["usr"]["id"] == str(user.pk)


def test_an_account_created_then_given_its_password_is_one_signup(security_events: Capture) -> None:
    """A registration that saves the row, then sets the password and saves again: no reset besides."""
    data = {"username": "two-step", "email": "two-step@example.com", "password": "pw-Two-Step-5"}
    response, ip, rid = send("post", "/seams/signup-two-step/", data)
    assert response.status_code == 201
    only(security_events, rid, "user_signup", ip, secrets=(data["password"], data["email"]))


def test_a_session_authenticated_drf_request_is_not_a_login(security_events: Capture) -> None:
    """Only a user that Django's authenticate() returned in this request is a per-request login."""
    user, _ = new_account("sess")
    client = Client()
    client.force_login(user)
    response, _, rid = send("get", "/drf/me/", client=client)
    assert response.status_code == 200 and response.json() == {"id": user.pk}
    assert of_request(security_events, rid) == []


def test_a_staff_member_setting_someones_password_is_a_change_with_the_target(
    security_events: Capture,
) -> None:
    """Django's AdminPasswordChangeForm in a view of ours: the actor as ``usr``, the account as target."""
    admin, _ = new_account("staff", staff=True)
    target, old = new_account("member")
    client = Client()
    client.force_login(admin)
    new = "brand-New-pass-45"
    data = {"password1": new, "password2": new}
    response, ip, rid = send("post", f"/seams/set-password/{target.pk}/", data, client=client)
    assert response.status_code == 200, response.content
    record = only(security_events, rid, "authn_password_change", ip, secrets=(old, new), id=str(admin.pk))
    assert record["target"]["usr"]["id"] == str(target.pk)
