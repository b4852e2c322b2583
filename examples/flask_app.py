"""A small Flask shop with a real login, instrumented with graffer_secevents.

Run it on its own::

    python examples/flask_app.py                 # http://127.0.0.1:5000, events on stdout
    curl -i -X POST -d username=ada@example.com -d password=wrong http://127.0.0.1:5000/login

What records events, and where:

* ``SecurityEvents(app)`` binds the request context (client IP, request id, user agent, route, user) and
  turns Flask-Login's signals into ``authn_login_success`` / ``session_logout`` / ``authz_fail``; any 403
  becomes ``authz_fail``.
* The application itself records what only it knows: a failed password check (Flask-Login never sees
  credentials), an account lock, a password-reset request and an admin action.

``secevents demo`` (``make demo``) starts this app on a real server and drives an attack scenario through it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import cast

from flask import Flask, abort, jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user
from werkzeug.security import check_password_hash, generate_password_hash

import graffer_secevents as secevents
from graffer_secevents.integrations.flask import SecurityEvents

MAX_FAILURES = 5


@dataclass
class Account(UserMixin):
    """A user of the shop. Flask-Login reads ``id``; events read ``id`` and ``get_username()``."""

    id: int
    email: str
    password_hash: str
    role: str = "customer"
    failures: int = 0
    locked: bool = False
    disabled: bool = False

    def get_id(self) -> str:
        return str(self.id)

    def get_username(self) -> str:
        return self.email

    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return not self.disabled


class Accounts:
    """The user store: in memory here, a database table in a real service."""

    def __init__(self) -> None:
        self.by_email: dict[str, Account] = {}
        # Compared against when the account does not exist, so a miss costs as much as a wrong password.
        self.dummy_hash = generate_password_hash("not-a-real-password")

    def add(self, id: int, email: str, password: str, role: str = "customer") -> None:
        self.by_email[email] = Account(id, email, generate_password_hash(password), role)

    def get(self, user_id: str) -> Account | None:
        return next((a for a in self.by_email.values() if str(a.id) == user_id), None)


def create_app(accounts: Accounts | None = None) -> Flask:
    """Build the app; ``accounts`` defaults to three demo users."""
    if accounts is None:
        accounts = Accounts()
        accounts.add(1001, "ada@example.com", "correct horse battery staple")
        accounts.add(1002, "grace@example.com", "hopper-1906")
        accounts.add(1, "root@example.com", "root-admin-pass", role="admin")

    app = Flask(__name__)
    app.secret_key = os.environ.get("SECRET_KEY", "dev-only-change-me")
    login_manager = LoginManager(app)
    login_manager.user_loader(accounts.get)
    SecurityEvents(app)

    @app.post("/login")
    def login() -> ResponseReturnValue:
        email = request.form.get("username", "")
        password = request.form.get("password", "")
        account = accounts.by_email.get(email)
        if account is not None and account.locked:
            secevents.log_login(account, "failure", login=email, exists=True, reason="account_locked")
            return jsonify(error="account locked"), 423
        valid = check_password_hash(account.password_hash if account else accounts.dummy_hash, password)
        if account is not None and valid and login_user(account):
            account.failures = 0
            return jsonify(ok=True), 200  # Flask-Login's signal recorded authn_login_success
        # Flask-Login has no failure signal: the application records what it just learned. A known account
        # is passed as the user, so its failures and successes share its id.
        secevents.log_login(
            account,
            "failure",
            login=email,
            exists=account is not None,
            reason="invalid_credentials" if account else "unknown_user",
        )
        if account is not None:
            account.failures += 1
            if account.failures >= MAX_FAILURES:
                account.locked = True
                secevents.log_account_locked(account, reason="maxretries")
        return jsonify(error="invalid credentials"), 401

    @app.post("/logout")
    @login_required
    def logout() -> ResponseReturnValue:
        logout_user()  # Flask-Login's signal records session_logout
        return jsonify(ok=True)

    @app.get("/me")
    @login_required
    def me() -> ResponseReturnValue:
        return jsonify(id=current_user.id, email=current_user.email)

    @app.post("/password-reset")
    def password_reset() -> ResponseReturnValue:
        email = request.form.get("username", "")
        secevents.log_password_reset(None, login=email, exists=email in accounts.by_email)
        return jsonify(ok=True), 202  # the same answer either way: no account enumeration

    @app.get("/admin/users")
    @login_required
    def admin_users() -> ResponseReturnValue:
        if current_user.role != "admin":
            abort(403)  # the extension records authz_fail with the user and the path
        return jsonify(users=sorted(accounts.by_email))

    @app.post("/admin/users/<int:user_id>/disable")
    @login_required
    def disable_user(user_id: int) -> ResponseReturnValue:
        if current_user.role != "admin":
            abort(403)
        target = accounts.get(str(user_id))
        if target is None:
            abort(404)
        target.disabled = True
        # current_user is a proxy; to type checkers, say what it stands for (at run time either works).
        actor = cast(Account, current_user)
        secevents.log_admin_action(actor, "disable_user", resource=f"/users/{user_id}")
        return jsonify(ok=True)

    return app


if __name__ == "__main__":
    # Behind a proxy, name it: secevents.configure(trusted_proxies=["10.0.0.0/8"]); see docs/client-ip.md.
    secevents.configure(service="flask-shop", env="dev")
    create_app().run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")))
