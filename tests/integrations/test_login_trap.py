"""The docs' old trap, replayed: docs/integrations/flask.md's login view recorded an existing account's wrong
password with `user=None`, so its failures carried the hashed login and its success the account id. The
brute-force rules group by `usr.id`: `brute_force` fired, `brute_force_success` never did. The page now passes
the account; strict mode refuses the old call, naming the fix."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, request
from flask_login import LoginManager, UserMixin, login_user

import graffer_secevents as secevents
from graffer_secevents import EventValidationError
from graffer_secevents.integrations.flask import SecurityEvents
from graffer_secevents.testing import capture_events


class Account(UserMixin):
    def __init__(self, pk: int, username: str, password: str) -> None:
        self.id = pk
        self.username = username
        self.password = password

    def check_password(self, password: str) -> bool:
        return password == self.password


class Accounts:
    def __init__(self) -> None:
        self.by_name = {"ada": Account(1001, "ada", "correct horse")}

    def find(self, username: str) -> Account | None:
        return self.by_name.get(username)


def page_app(*, pass_the_account: bool) -> Flask:
    """The page's app: Flask-Login, the extension, and the login view of the page (before / after the fix)."""
    accounts = Accounts()
    app = Flask(__name__)
    app.secret_key = "test"
    login_manager = LoginManager(app)
    login_manager.user_loader(lambda user_id: next(iter(accounts.by_name.values())))
    SecurityEvents(app)

    @app.post("/login")
    def login() -> Any:
        account = accounts.find(request.form["username"])
        if account is None or not account.check_password(request.form["password"]):
            secevents.log_login(
                account if pass_the_account else None,
                "failure",
                login=request.form["username"],
                exists=account is not None,
                reason="invalid_credentials" if account else "unknown_user",
            )
            return {"error": "invalid credentials"}, 401
        login_user(account)  # recorded as authn_login_success by the extension
        return {"ok": True}

    return app


def attack(app: Flask) -> None:
    client = app.test_client()
    for n in range(10):
        client.post("/login", data={"username": "ada", "password": f"guess{n}"})
    client.post("/login", data={"username": "ada", "password": "correct horse"})


def test_the_old_page_hid_the_successful_brute_force() -> None:
    with capture_events(strict=False) as events:
        attack(page_app(pass_the_account=False))
    events.assert_detected("brute_force")  # failures, counted under the hashed login...
    events.assert_not_detected("brute_force_success")  # ...never joined to the success (usr.id 1001)


def test_strict_mode_refuses_the_old_page_and_names_the_fix() -> None:
    app = page_app(pass_the_account=False)
    app.testing = True  # the view's exception reaches the test
    client = app.test_client()
    with capture_events(), pytest.raises(EventValidationError, match="pass it as user="):
        client.post("/login", data={"username": "ada", "password": "guess"})


def test_the_fixed_page_fires_brute_force_success() -> None:
    with capture_events() as events:
        attack(page_app(pass_the_account=True))
    events.assert_detected("brute_force_success", usr__id="1001")
