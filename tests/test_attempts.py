"""The public attempt API (`record_login`, `record_bad_credential`, `suppress_request_events`), `login=` on
every helper, the user protocol, and strict mode's refusal of an existing account's failure without its id."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask, jsonify

import graffer_secevents as api
from graffer_secevents import EventValidationError
from graffer_secevents.integrations.flask import SecurityEvents
from graffer_secevents.testing import Capture, capture_events, hashed

EMAIL = "ada@example.com"

# Every public helper that takes **context, called with its required arguments.
HELPERS: dict[str, Callable[..., None]] = {
    "log_logout": lambda **kw: api.log_logout(1, **kw),
    "log_account_locked": lambda **kw: api.log_account_locked(1, reason="maxretries", **kw),
    "log_mfa_challenge": lambda **kw: api.log_mfa_challenge(1, "failure", method="totp", **kw),
    "log_password_change": lambda **kw: api.log_password_change(1, **kw),
    "log_password_reset": lambda **kw: api.log_password_reset(1, **kw),
    "log_signup": lambda **kw: api.log_signup(1, **kw),
    "log_login": lambda **kw: api.log_login(1, "success", **kw),
    "log_token_created": lambda **kw: api.log_token_created(1, token_id="t", **kw),
    "log_token_revoked": lambda **kw: api.log_token_revoked(1, token_id="t", **kw),
    "log_access_denied": lambda **kw: api.log_access_denied(1, "/admin", **kw),
    "log_privilege_change": lambda **kw: api.log_privilege_change(1, 2, to_role="admin", **kw),
    "log_admin_action": lambda **kw: api.log_admin_action(1, "purge", **kw),
    "log_user_created": lambda **kw: api.log_user_created(1, 2, **kw),
    "log_user_deleted": lambda **kw: api.log_user_deleted(1, 2, **kw),
    "log_rate_limited": lambda **kw: api.log_rate_limited(1, **kw),
    "log_input_validation_failed": lambda **kw: api.log_input_validation_failed(1, **kw),
    "log_sensitive_access": lambda **kw: api.log_sensitive_access(1, "x", **kw),
    "log_data_export": lambda **kw: api.log_data_export(1, "x", **kw),
    "log_group_membership": lambda **kw: api.log_group_membership(1, 2, "billing", **kw),
    "log_account_status": lambda **kw: api.log_account_status(1, 2, enabled=False, **kw),
    "log_user_updated": lambda **kw: api.log_user_updated(1, 2, attributes=["email"], **kw),
    "log_mfa_change": lambda **kw: api.log_mfa_change(1, enabled=False, method="totp", **kw),
    "log_impersonation": lambda **kw: api.log_impersonation(1, 2, target_role="user", **kw),
}


def test_every_helper_is_listed() -> None:
    helpers = {name for name in api.__all__ if name.startswith("log_")}
    assert helpers == set(HELPERS)
    for name in helpers:  # and each names `login` as a parameter
        assert "login" in inspect.signature(getattr(api, name)).parameters, name


@pytest.mark.parametrize("name", sorted(HELPERS))
def test_login_is_hashed_by_every_helper(security_events: Capture, name: str) -> None:
    HELPERS[name](login=EMAIL)
    (record,) = security_events.records
    assert record["usr"]["login"] == hashed(EMAIL)
    assert EMAIL not in json.dumps(record)
    assert "login" not in record.get("context", {})


# --- strict mode catches the docs' trap ---------------------------------------------------------------------


def test_existing_account_failure_without_the_account_is_refused_in_strict_mode() -> None:
    with capture_events(), pytest.raises(EventValidationError) as refused:
        api.log_login(None, "failure", login=EMAIL, exists=True, reason="invalid_credentials")
    message = str(refused.value)
    assert "exists=True" in message and "user=" in message and "brute_force_success" in message
    with capture_events(), pytest.raises(EventValidationError):
        api.log_login(api.User(login=EMAIL), "failure", exists=True)  # a login is not the account


def test_existing_account_failure_without_the_account_is_annotated_in_production() -> None:
    with capture_events(strict=False) as events:
        api.log_login(None, "failure", login=EMAIL, exists=True, reason="invalid_credentials")
    (record,) = events.records
    assert any("exists=True" in error for error in record["secevents"]["errors"])
    assert record["usr"]["exists"] is True


@pytest.mark.parametrize(
    "user", [7, api.User(id=7), api.User(id=7, login=EMAIL)], ids=["id", "User", "User+login"]
)
def test_existing_account_failure_with_the_account_is_fine(security_events: Capture, user: object) -> None:
    api.log_login(user, "failure", login=EMAIL, exists=True, reason="invalid_credentials")
    security_events.assert_emitted("authn_login_fail", usr__id="7", usr__exists=True)
    api.log_login(None, "failure", login="nobody", exists=False)  # an unknown account has no id: fine
    api.log_login(None, "failure", login="nobody")  # nor does an unknown existence


# --- the user protocol ----------------------------------------------------------------------------------------


@dataclass
class WithPk:
    pk: int
    id: int = 99


@dataclass
class WithId:
    id: str


class WithGetId:
    is_authenticated = True

    def get_id(self) -> str:
        return "u-5"


@dataclass
class WithUsername:
    username: str
    email: str | None = None


class WithGetUsername:
    def get_username(self) -> str:
        return "ada"


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        (WithPk(1), {"id": "1"}),
        (WithId("u-2"), {"id": "u-2"}),
        (WithGetId(), {"id": "u-5"}),
        (WithUsername("ada", EMAIL), {"id": "ada", "login": hashed("ada"), "email": hashed(EMAIL)}),
        (WithUsername(EMAIL), {"id": hashed(EMAIL), "login": hashed(EMAIL)}),
        (WithGetUsername(), {"login": hashed("ada")}),
    ],
    ids=["pk", "id", "get_id", "username", "username-email", "get_username"],
)
def test_the_user_protocol(security_events: Capture, user: object, expected: dict[str, str]) -> None:
    api.log_login(user, "success")
    assert security_events.records[0]["usr"] == expected


def test_an_object_with_no_identity_is_noted() -> None:
    class Nobody:
        name = "x"

    with capture_events(), pytest.raises(EventValidationError, match="pk, id, get_id\\(\\), username"):
        api.log_login(Nobody(), "success")


# --- once per request, replace, suppress ------------------------------------------------------------------------


def app_with(view: Callable[[], Any]) -> Any:
    app = Flask(__name__)
    SecurityEvents(app)
    app.add_url_rule("/", "view", view, methods=["GET", "POST"])
    return app.test_client()


def test_record_login_writes_one_attempt_per_request(security_events: Capture) -> None:
    results: list[bool] = []

    def view() -> Any:
        results.append(api.record_login(7, "failure", login="ada", exists=True, reason="invalid_credentials"))
        results.append(api.record_login(7, "failure", login="ada", exists=True, reason="invalid_credentials"))
        results.append(api.record_login(7, "success"))
        return jsonify(error="no"), 401

    client = app_with(view)
    client.get("/", headers={"Authorization": "Bearer x"})
    client.get("/")
    assert results == [True, False, False, True, False, False]
    assert [r["evt"]["type"] for r in security_events.records] == ["authn_login_fail"] * 2  # no 401 event


def test_record_bad_credential_once_and_no_401_event(security_events: Capture) -> None:
    results: list[bool] = []

    def view() -> Any:
        results.append(api.record_bad_credential(7, reason="revoked", login=EMAIL))
        results.append(api.record_bad_credential())
        return jsonify(error="no"), 401

    app_with(view).get("/", headers={"Authorization": "Bearer x"})
    assert results == [True, False]
    only = security_events.assert_emitted("authn_login_fail", usr__id="7", evt__reason="revoked")
    assert only["usr"]["login"] == hashed(EMAIL)
    assert len(security_events.records) == 1


def test_suppress_stops_the_integrations_not_the_application(security_events: Capture) -> None:
    from flask_login import LoginManager, UserMixin, login_user

    class Account(UserMixin):
        id = 7

    app = Flask(__name__)
    app.secret_key = "test"
    LoginManager(app).user_loader(lambda _id: Account())
    SecurityEvents(app)

    @app.post("/sso")
    def sso() -> Any:
        login_user(Account())  # Flask-Login's signal: the integration's authn_login_success
        return "ok"

    @app.post("/sso-recorded")
    def sso_recorded() -> Any:
        assert api.suppress_request_events("authn_login_success")
        login_user(Account())  # the integration's event is suppressed...
        api.log_login(Account(), "success", method="oidc")  # ...the application's own call is written
        return "ok"

    client = app.test_client()
    client.post("/sso")
    client.post("/sso-recorded")
    first, second = security_events.records
    assert (first["evt"]["type"], "context" in first) == ("authn_login_success", False)
    assert (second["evt"]["type"], second["context"]) == ("authn_login_success", {"method": "oidc"})
    assert len(security_events.records) == 2


def test_outside_a_request_the_record_functions_write_every_time(security_events: Capture) -> None:
    assert api.suppress_request_events() is False
    assert api.record_login(7, "success") is True
    assert api.record_login(7, "success") is True
    assert api.record_bad_credential() is True
    assert len(security_events.records) == 3


def test_record_functions_never_raise_in_production() -> None:
    with capture_events(strict=False) as events:
        assert api.record_login(object(), "maybe", login=b"bytes") is True  # type: ignore[arg-type]
        assert api.record_bad_credential(reason=12) is True  # type: ignore[arg-type]
        assert api.suppress_request_events(None, 3) is False  # type: ignore[arg-type]
    assert len(events.records) == 2
    assert all(record["secevents"].get("errors") for record in events.records)
