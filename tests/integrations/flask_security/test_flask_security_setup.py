"""How the Flask-Security adapter is turned on, what it costs when it is not, and Flask-Login's e-mail ids."""

from __future__ import annotations

import subprocess
import sys

import pytest
from flask import Flask
from flask_login import LoginManager, UserMixin, login_user
from flask_security_app import build_app

from graffer_secevents import ConfigurationError
from graffer_secevents.integrations.flask import SecurityEvents
from graffer_secevents.testing import Capture

ADA = "ada@secevents-test.net"


def test_flask_security_true_without_security_on_the_app_says_what_to_do() -> None:
    with pytest.raises(ConfigurationError, match=r"Security\(app, datastore\), then SecurityEvents\(app\)"):
        SecurityEvents(Flask(__name__), flask_security=True)


def test_flask_security_false_keeps_flask_logins_signals_only(security_events: Capture) -> None:
    app = build_app(flask_security=False)
    response = app.test_client().post("/login", json={"email": ADA, "password": "wrong"})
    assert response.status_code == 400
    assert security_events.records == []  # Flask-Login has no failure signal; the adapter is off


def test_auto_detection_is_the_default(security_events: Capture) -> None:
    app = build_app()
    app.test_client().post("/login", json={"email": ADA, "password": "wrong"})
    security_events.assert_emitted("authn_login_fail", evt__reason="invalid_credentials")


def test_the_auth_stacks_cost_nothing_at_import() -> None:
    """The package and the framework integrations import no auth stack (nor its ORM)."""
    code = (
        "import sys, graffer_secevents, graffer_secevents.integrations.flask, graffer_secevents.integrations.fastapi\n"
        "print(','.join(m for m in ('flask_security', 'fastapi_users', 'flask_sqlalchemy', 'sqlalchemy')"
        " if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


class EmailAccount(UserMixin):
    """A Flask-Login user whose get_id() is its e-mail, as many small apps write it."""

    def __init__(self, email: str) -> None:
        self.email_address = email

    def get_id(self) -> str:
        return self.email_address


def test_a_flask_login_get_id_that_is_an_email_is_hashed(security_events: Capture) -> None:
    app = Flask(__name__)
    app.secret_key = "test-only"
    LoginManager(app).user_loader(EmailAccount)
    SecurityEvents(app)

    @app.post("/in")
    def sign_in() -> str:
        login_user(EmailAccount(ADA))
        return "ok"

    app.test_client().post("/in")
    record = security_events.assert_emitted("authn_login_success")
    assert record["usr"]["id"].startswith("anon_")
    assert ADA not in b"\n".join(security_events.lines).decode()
