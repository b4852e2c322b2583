"""django-axes, django-otp and django-oauth-toolkit, installed for real and driven through their own views and
endpoints with Django's test client, no event code: each flow writes exactly one record of the right type
(per type), with the account's stable ``usr.id``, ``usr.exists``, a bounded ``evt.reason``, the IP and the
request id, and no raw password, token, secret or e-mail anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from graffer_secevents.testing import Capture

pytest.importorskip("axes")
pytest.importorskip("django_otp")
pytest.importorskip("oauth2_provider")

from axes.models import AccessAttempt
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from oauth2_provider.models import AccessToken, Application
from seams_helpers import new_account, of_request, only, send, types_of

pytestmark = pytest.mark.filterwarnings(
    # django-oauth-toolkit 3.x warns that RFC 9700 discourages the password grant it still supports.
    "ignore:The OAuth 2.0 resource owner password credentials grant:DeprecationWarning"
)

# --- django-axes, set up as its docs show (AxesStandaloneBackend first, AxesMiddleware) -----------------------

AXES = override_settings(
    AXES_ENABLED=True,
    AUTHENTICATION_BACKENDS=[
        "axes.backends.AxesStandaloneBackend",
        "django.contrib.auth.backends.ModelBackend",
    ],
)


@pytest.fixture
def axes_account() -> Iterator[tuple[Any, str]]:
    user, password = new_account("axes")
    yield user, password
    AccessAttempt.objects.filter(username=user.username).delete()


@AXES
def test_axes_lock_out_is_recorded_and_never_a_wrong_password(
    security_events: Capture, axes_account: Any
) -> None:
    user, password = axes_account
    pk, secrets = str(user.pk), (password, "wrong-pass")
    for _ in range(2):  # below the limit (3): wrong passwords, written as such
        response, ip, rid = send("post", "/login/", {"username": user.username, "password": "wrong-pass"})
        assert response.status_code == 200
        record = only(security_events, rid, "authn_login_fail", ip, secrets=secrets, id=pk, exists=True)
        assert record["evt"]["reason"] == "invalid_credentials"

    # The third wrong password crosses the limit: it is a wrong password, and the account is locked.
    response, ip, rid = send("post", "/login/", {"username": user.username, "password": "wrong-pass"})
    assert response.status_code == 429
    assert types_of(security_events, rid, secrets) == ["authn_login_fail", "authn_login_lock"]
    lock = next(r for r in of_request(security_events, rid) if r["evt"]["type"] == "authn_login_lock")
    assert lock["usr"]["id"] == pk and lock["evt"]["reason"] == "maxretries"

    # Locked: the right password is refused unchecked — neither a success nor a wrong password.
    for typed in (password, "wrong-pass"):
        response, ip, rid = send("post", "/login/", {"username": user.username, "password": typed})
        assert response.status_code == 429
        record = only(security_events, rid, "authn_login_fail_max", ip, secrets=secrets, id=pk, exists=True)
        assert record["evt"]["max_limit"] == 3
    security_events.assert_not_emitted("authn_login_success")


# --- django-otp, through its own LoginView and OTPAuthenticationForm -----------------------------------------


def totp_of(device: Any) -> str:
    return str(TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token()).zfill(
        device.digits
    )


@pytest.fixture
def otp_account() -> tuple[Any, str, Any]:
    user, password = new_account("otp")
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return user, password, device


def otp_login(user: Any, password: str, device: Any, token: str) -> tuple[Any, str, str]:
    data = {
        "username": user.username,
        "password": password,
        "otp_device": device.persistent_id,
        "otp_token": token,
    }
    return send("post", "/seams/otp-login/", data)


def test_otp_right_code_is_a_login_and_a_successful_challenge(
    security_events: Capture, otp_account: Any
) -> None:
    user, password, device = otp_account
    code = totp_of(device)
    response, ip, rid = otp_login(user, password, device, code)
    assert response.status_code == 302
    assert types_of(security_events, rid, (password,)) == ["authn_login_success", "authn_mfa_challenge"]
    mfa = next(r for r in of_request(security_events, rid) if r["evt"]["type"] == "authn_mfa_challenge")
    assert mfa["evt"]["outcome"] == "success" and mfa["evt"]["method"] == "totp"
    assert mfa["usr"]["id"] == str(user.pk) and mfa["network"]["client"]["ip"] == ip


def test_otp_wrong_code_then_throttled(security_events: Capture, otp_account: Any) -> None:
    user, password, device = otp_account
    wrong = str((int(totp_of(device)) + 1) % 10**6).zfill(6)
    response, ip, rid = otp_login(user, password, device, wrong)
    assert response.status_code == 200
    record = only(security_events, rid, "authn_mfa_challenge", ip, secrets=(password,), id=str(user.pk))
    assert record["evt"]["outcome"] == "failure" and record["evt"]["reason"] == "mfa_failed"
    # django-otp now refuses to check a code for a while: the right one is refused, as throttled.
    response, ip, rid = otp_login(user, password, device, totp_of(device))
    assert response.status_code == 200
    record = only(security_events, rid, "authn_mfa_challenge", ip, id=str(user.pk))
    assert record["evt"]["outcome"] == "failure" and record["evt"]["reason"] == "throttled"


def test_otp_recovery_code(security_events: Capture) -> None:
    user, password = new_account("otp")
    device = StaticDevice.objects.create(user=user, name="backup", confirmed=True)
    device.token_set.create(token="rc-123456")
    response, _ip, rid = otp_login(user, password, device, "rc-123456")
    assert response.status_code == 302
    mfa = next(
        r
        for r in of_request(security_events, rid, ("rc-123456",))
        if r["evt"]["type"] == "authn_mfa_challenge"
    )
    assert mfa["evt"]["method"] == "static" and mfa["evt"]["outcome"] == "success"


# --- django-oauth-toolkit: its token endpoint and protected resources ----------------------------------------

SECRET = "client-Secret-xyz-123"


@pytest.fixture
def apps() -> dict[str, Application]:
    password_app = Application.objects.create(
        name="pw",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_PASSWORD,
        client_secret=SECRET,
    )
    machine_app = Application.objects.create(
        name="machine",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=SECRET,
    )
    return {"password": password_app, "machine": machine_app}


def token_request(app: Application, **data: str) -> tuple[Any, str, str]:
    return send("post", "/o/token/", {"client_id": app.client_id, "client_secret": SECRET, **data})


def test_oauth_password_grant_is_a_login(security_events: Capture, apps: Any) -> None:
    user, password = new_account("oauth")
    response, ip, rid = token_request(
        apps["password"], grant_type="password", username=user.username, password=password
    )
    assert response.status_code == 200, response.content
    body = response.json()
    only(
        security_events,
        rid,
        "authn_login_success",
        ip,
        secrets=(password, SECRET, body["access_token"], body["refresh_token"]),
        id=str(user.pk),
    )


def test_oauth_password_grant_wrong_password_is_one_failure(security_events: Capture, apps: Any) -> None:
    user, _password = new_account("oauth")
    response, ip, rid = token_request(
        apps["password"], grant_type="password", username=user.username, password="nope-x"
    )
    assert response.status_code == 400
    record = only(
        security_events, rid, "authn_login_fail", ip, secrets=(SECRET, "nope-x"), id=str(user.pk), exists=True
    )
    assert record["evt"]["reason"] == "invalid_credentials"


@pytest.mark.parametrize("known", [True, False])
def test_oauth_refused_client_is_invalid_client(security_events: Capture, apps: Any, known: bool) -> None:
    client_id = apps["machine"].client_id if known else "no-such-client"
    data = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": "wrong-Secret-1"}
    response, ip, rid = send("post", "/o/token/", data)
    assert response.status_code == 401
    record = only(security_events, rid, "authn_login_fail", ip, secrets=("wrong-Secret-1",))
    assert record["evt"]["reason"] == "invalid_client"
    assert record["usr"]["id"] == f"oauth2_client:{client_id}"
    assert record["usr"]["exists"] is known


def test_oauth_client_credentials_is_a_machine_login(security_events: Capture, apps: Any) -> None:
    response, ip, rid = token_request(apps["machine"], grant_type="client_credentials")
    assert response.status_code == 200, response.content
    record = only(
        security_events, rid, "authn_login_success", ip, secrets=(SECRET, response.json()["access_token"])
    )
    assert record["usr"]["id"] == f"oauth2_client:{apps['machine'].client_id}"


def test_oauth_rotated_refresh_token_used_again_is_token_reuse(security_events: Capture, apps: Any) -> None:
    user, password = new_account("oauth")
    first, _, _ = token_request(
        apps["password"], grant_type="password", username=user.username, password=password
    )
    old = first.json()["refresh_token"]
    rotated, _, rid = token_request(apps["password"], grant_type="refresh_token", refresh_token=old)
    assert rotated.status_code == 200 and of_request(security_events, rid) == []
    response, ip, rid = token_request(apps["password"], grant_type="refresh_token", refresh_token=old)
    assert response.status_code == 400
    record = only(security_events, rid, "authn_token_reuse", ip, secrets=(old,), id=str(user.pk))
    assert record["evt"]["token_id"].startswith("anon_")


def test_oauth_unknown_refresh_token_is_invalid_token(security_events: Capture, apps: Any) -> None:
    response, ip, rid = token_request(
        apps["password"], grant_type="refresh_token", refresh_token="not-a-token-9"
    )
    assert response.status_code == 400
    record = only(security_events, rid, "authn_login_fail", ip, secrets=("not-a-token-9",))
    assert record["evt"]["reason"] == "invalid_token"


@pytest.fixture
def bearer(apps: Any) -> tuple[Any, str]:
    user, password = new_account("oauth")
    response, _, _ = token_request(
        apps["password"], grant_type="password", username=user.username, password=password
    )
    return user, response.json()["access_token"]


@pytest.mark.parametrize("path", ["/oauth/protected/", "/oauth/drf/"])
def test_oauth_valid_bearer_writes_nothing(security_events: Capture, bearer: Any, path: str) -> None:
    _user, token = bearer
    response, _, rid = send("get", path, authorization=f"Bearer {token}")
    assert response.status_code == 200
    assert of_request(security_events, rid) == []


@pytest.mark.parametrize(("path", "status"), [("/oauth/protected/", 403), ("/oauth/drf/", 401)])
def test_oauth_bad_bearer_is_invalid_token_not_authz_fail(
    security_events: Capture, bearer: Any, path: str, status: int
) -> None:
    response, ip, rid = send("get", path, authorization="Bearer garbage-token-77")
    assert response.status_code == status
    record = only(security_events, rid, "authn_login_fail", ip, secrets=("garbage-token-77",))
    assert record["evt"]["reason"] == "invalid_token" and "id" not in record.get("usr", {})


def test_oauth_expired_bearer_names_its_account(security_events: Capture, bearer: Any) -> None:
    user, token = bearer
    AccessToken.objects.filter(user=user).update(expires=timezone.now() - timedelta(minutes=1))
    response, ip, rid = send("get", "/oauth/protected/", authorization=f"Bearer {token}")
    assert response.status_code == 403
    record = only(
        security_events, rid, "authn_login_fail", ip, secrets=(token,), id=str(user.pk), exists=True
    )
    assert record["evt"]["reason"] == "invalid_token"


def test_no_session_client_needed(security_events: Capture) -> None:
    """The stacks' apps leave Django's own login untouched (axes is off outside its tests)."""
    user, password = new_account("plain")
    response, ip, rid = send(
        "post", "/login/", {"username": user.username, "password": password}, client=Client()
    )
    assert response.status_code == 302
    only(security_events, rid, "authn_login_success", ip, secrets=(password,), id=str(user.pk))


@pytest.fixture
def code_app() -> Application:
    return Application.objects.create(
        name="web",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        client_secret=SECRET,
        redirect_uris="https://client.example/cb",
        skip_authorization=True,
    )


def test_oauth_authorization_code_exchange_is_a_token_created(
    security_events: Capture, code_app: Any
) -> None:
    from urllib.parse import parse_qs, urlparse

    user, _ = new_account("oauth")
    browser = Client()
    browser.force_login(user)
    query = {
        "response_type": "code",
        "client_id": code_app.client_id,
        "redirect_uri": "https://client.example/cb",
    }
    authorized, _, _ = send("get", "/o/authorize/", query, client=browser)
    assert authorized.status_code == 302, authorized.content[:300]
    code = parse_qs(urlparse(authorized.url).query)["code"][0]
    response, ip, rid = token_request(
        code_app, grant_type="authorization_code", code=code, redirect_uri="https://client.example/cb"
    )
    assert response.status_code == 200, response.content
    record = only(
        security_events,
        rid,
        "authn_token_created",
        ip,
        secrets=(code, SECRET, response.json()["access_token"]),
    )
    assert record["usr"]["id"] == str(user.pk) and record["evt"]["token_id"].startswith("anon_")


def test_oauth_bad_authorization_code_is_a_refused_grant(security_events: Capture, code_app: Any) -> None:
    response, ip, rid = token_request(
        code_app,
        grant_type="authorization_code",
        code="not-a-code-1",
        redirect_uri="https://client.example/cb",
    )
    assert response.status_code == 400
    record = only(security_events, rid, "authn_login_fail", ip, secrets=("not-a-code-1", SECRET))
    assert record["evt"]["reason"] == "invalid_grant"
