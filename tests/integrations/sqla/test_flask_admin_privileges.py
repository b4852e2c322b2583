"""Flask-Admin over Flask-SQLAlchemy, with Flask-Login and our Flask extension as the Flask page wires them:
an administrator's edit form grants `is_superuser`, and the privilege tracking writes one `authz_change`
with the Flask-Login user as the actor, the real peer and the request id."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask_admin")
pytest.importorskip("flask_sqlalchemy")

from flask import Flask
from flask_admin import Admin
from flask_admin.contrib.sqla import ModelView
from flask_login import LoginManager, UserMixin, current_user, login_user
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from graffer_secevents.integrations.flask import SecurityEvents
from graffer_secevents.integrations.sqlalchemy import track_privileges
from graffer_secevents.testing import Capture

PEER = "198.51.100.41"
_ids = itertools.count(100)


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Staff(db.Model, UserMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "staff"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(100), default="scrypt$never-written")
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)


track_privileges(Staff, fields={"is_superuser": "superuser", "is_admin": "admin"})


class StaffAdmin(ModelView):
    form_columns = ("email", "is_superuser", "is_admin")

    def is_accessible(self) -> bool:
        return bool(current_user.is_authenticated and current_user.is_superuser)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    path: Path = tmp_path_factory.mktemp("flask-admin") / "staff.sqlite"
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI=f"sqlite:///{path}", SECRET_KEY="test-only")
    db.init_app(app)
    login_manager = LoginManager(app)
    SecurityEvents(app)

    @login_manager.user_loader
    def load(user_id: str) -> Any:
        return db.session.get(Staff, int(user_id))

    @app.post("/test-login/<int:staff_id>")
    def test_login(staff_id: int) -> str:
        login_user(db.session.get(Staff, staff_id))
        return "ok"

    admin = Admin(app)
    admin.add_view(StaffAdmin(Staff, db))
    with app.app_context():
        db.create_all()
    return app


def _staff(app: Flask, **flags: Any) -> int:
    with app.app_context():
        staff = Staff(email=f"s{next(_ids)}@example.org", **flags)
        db.session.add(staff)
        db.session.commit()
        return staff.id


def test_flask_admin_edit_grant_is_the_logged_in_admins(security_events: Capture, app: Flask) -> None:
    root, target = _staff(app, is_superuser=True), _staff(app)
    client = app.test_client()
    env = {"REMOTE_ADDR": PEER}
    assert client.post(f"/test-login/{root}", environ_base=env).status_code == 200
    security_events.clear()
    response = client.post(
        f"/admin/staff/edit/?id={target}",
        data={"email": "promoted@example.org", "is_admin": "y"},
        environ_base=env,
        headers={"X-Request-ID": "flask-admin-grant"},
    )
    assert response.status_code == 302
    [record] = [r for r in security_events.records if r["evt"]["type"] == "authz_change"]
    assert record["usr"]["id"] == str(root)
    assert record["target"]["usr"]["id"] == str(target)
    assert record["evt"]["granted"] == ["admin"] and record["evt"]["to_role"] == "admin"
    assert record["network"]["client"]["ip"] == PEER
    assert record["http"]["request_id"] == "flask-admin-grant"
    assert "never-written" not in str(security_events.records)


def test_flask_admin_refused_to_a_plain_account_writes_nothing(security_events: Capture, app: Flask) -> None:
    plain, target = _staff(app), _staff(app)
    client = app.test_client()
    assert client.post(f"/test-login/{plain}").status_code == 200
    security_events.clear()
    response = client.post(
        f"/admin/staff/edit/?id={target}", data={"email": "x@example.org", "is_superuser": "y"}
    )
    assert response.status_code == 403
    assert [r for r in security_events.records if r["evt"]["type"] == "authz_change"] == []
