"""A Flask-Security-Too app as its docs set one up (Flask-SQLAlchemy models, in-memory SQLite), with the
SecurityEvents extension and no event code at all. Shared by the test-client tests and the waitress server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from flask_security import (
    MailUtil,
    Security,
    SQLAlchemyUserDatastore,
    auth_required,
    hash_password,
    roles_required,
    uia_email_mapper,
    uia_phone_mapper,
)
from flask_security.models import fsqla_v4 as fsqla
from flask_sqlalchemy import SQLAlchemy

from graffer_secevents.integrations.flask import SecurityEvents

db = SQLAlchemy()
fsqla.FsModels.set_db_info(db)


class Role(db.Model, fsqla.FsRoleMixin):  # type: ignore[name-defined,misc]
    pass


class User(db.Model, fsqla.FsUserMixin):  # type: ignore[name-defined,misc]
    pass


class WebAuthn(db.Model, fsqla.FsWebAuthnMixin):  # type: ignore[name-defined,misc]
    pass


class FsRefreshTracker(db.Model, fsqla.FsRefreshTrackerMixin):  # type: ignore[name-defined,misc]
    pass


class Outbox(MailUtil):
    """No mail server: the messages Flask-Security would send are kept (the reset link's token is read from
    the ``reset_password_instructions_sent`` signal in the tests)."""

    sent: list[dict[str, Any]] = []  # noqa: RUF012 - a test outbox

    def send_mail(
        self, template: str, subject: str, recipient: Any, sender: Any, body: Any, html: Any, **kw: Any
    ) -> None:
        self.sent.append({"template": template, "recipient": recipient})


ACCOUNTS = {
    "ada@secevents-test.net": ("adalovelace", "correct horse battery", True),
    "off@secevents-test.net": ("offline-user", "disabled account pw", False),
}


def build_app(
    database_uri: str = "sqlite://",
    *,
    refresh_tokens: bool = True,
    unified_signin: bool = False,
    **extension: Any,
) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="test-only",
        SECURITY_PASSWORD_SALT="test-only-salt",
        SECURITY_PASSWORD_HASH="plaintext",  # fast for tests, as Flask-Security's own test suite does
        SQLALCHEMY_DATABASE_URI=database_uri,
        SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"timeout": 30}},  # SQLite's wait for a concurrent writer
        WTF_CSRF_ENABLED=False,
        SECURITY_CSRF_IGNORE_UNAUTH_ENDPOINTS=True,
        SECURITY_USERNAME_ENABLE=True,
        SECURITY_EMAIL_VALIDATOR_ARGS={"check_deliverability": False},  # no DNS in tests
        SECURITY_REGISTERABLE=True,
        SECURITY_SEND_REGISTER_EMAIL=False,
        SECURITY_RECOVERABLE=True,
        SECURITY_CHANGEABLE=True,
        SECURITY_TWO_FACTOR=True,
        SECURITY_TWO_FACTOR_ENABLED_METHODS=["authenticator"],
        SECURITY_TOTP_SECRETS={"1": "test-only-totp-secret"},
        SECURITY_TOTP_ISSUER="graffer-tests",
        SECURITY_RESET_PASSWORD_WITHIN=timedelta(hours=1),
        SECURITY_REFRESH_TOKEN=refresh_tokens,
        SECURITY_REFRESH_TOKEN_COOKIE_NAME=None,  # the refresh token in the JSON body
    )
    if unified_signin:  # /us-signin: a password, or a one-time code sent by e-mail or SMS
        app.config.update(
            SECURITY_UNIFIED_SIGNIN=True,
            SECURITY_US_ENABLED_METHODS=["password", "email", "sms"],
            SECURITY_SMS_SERVICE="Dummy",  # Flask-Security's own stand-in for an SMS gateway
            SECURITY_USER_IDENTITY_ATTRIBUTES=[
                {"email": {"mapper": uia_email_mapper, "case_insensitive": True}},
                {"us_phone_number": {"mapper": uia_phone_mapper}},
            ],
        )
    db.init_app(app)
    security = Security(
        app, SQLAlchemyUserDatastore(db, User, Role, WebAuthn, FsRefreshTracker), mail_util_cls=Outbox
    )
    SecurityEvents(app, **extension)

    @app.get("/api/me")
    @auth_required("token", "session", "basic")
    def me() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/api/admin")
    @auth_required("token", "session")
    @roles_required("admin")
    def admin() -> dict[str, str]:
        return {"ok": "admin"}

    with app.app_context():
        db.create_all()
        for email, (username, password, active) in ACCOUNTS.items():
            security.datastore.create_user(
                email=email, username=username, password=hash_password(password), active=active
            )
        db.session.commit()
    return app


def user_id(app: Flask, email: str) -> str:
    with app.app_context():
        return str(db.session.query(User).filter_by(email=email).one().id)
