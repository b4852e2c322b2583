"""SQLAlchemy privilege tracking over a real SQLite file: a real admin UI (sqladmin on FastAPI, its own forms)
flips `is_superuser` / `role`, and the library writes one `authz_change` per account and committed flush
with the admin's user as the actor; rolled-back work writes nothing."""

from __future__ import annotations

import enum
import re
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import Boolean, Enum, Integer, String, create_engine, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

import graffer_secevents as secevents
from graffer_secevents import EventValidationError
from graffer_secevents.integrations.sqlalchemy import track_privileges
from graffer_secevents.testing import Capture


class Base(DeclarativeBase):
    pass


class Role(enum.Enum):
    member = "member"
    billing = "billing"
    admin = "admin"


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(100), default="pbkdf2$secret-hash-value")
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    role: Mapped[str] = mapped_column(String(2000), default="member")


class Member(Base):
    """A second model: an enum role column only."""

    __tablename__ = "members"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[Role] = mapped_column(Enum(Role), default=Role.member)


class Note(Base):
    """Not tracked: its changes are never read."""

    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)


track_privileges(Account, fields={"is_superuser": "superuser", "is_admin": "admin"}, role="role")
track_privileges(Member, role="role")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    path: Path = tmp_path_factory.mktemp("sqla") / "accounts.sqlite"
    engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def db(engine: Any) -> Iterator[Session]:
    with sessionmaker(bind=engine)() as session:
        yield session


def _new(db: Session, **values: Any) -> Account:
    account = Account(email=f"a{values.get('id', '')}@example.org", **values)
    db.add(account)
    db.commit()
    return account


def _changes(capture: Capture) -> list[dict[str, Any]]:
    return [r for r in capture.records if r["evt"]["type"] == "authz_change"]


# --- the session, from a script -------------------------------------------------------------------------------


def test_a_committed_grant_is_one_event_with_the_actor_of_the_scope(
    security_events: Capture, db: Session
) -> None:
    target = _new(db)
    security_events.clear()
    with secevents.actor("grant-script", user="ops-7"):
        target.is_superuser = True
        target.is_admin = True
        db.commit()
    [record] = _changes(security_events)
    assert record["target"]["usr"]["id"] == str(target.id)
    assert record["evt"]["granted"] == ["superuser", "admin"]
    assert record["evt"]["from_role"] == "member" and record["evt"]["to_role"] == "superuser"
    assert "revoked" not in record["evt"]
    assert record["usr"]["id"] == "ops-7" and record["actor"]["name"] == "grant-script"
    assert "secret-hash-value" not in str(security_events.records)  # the password column is never read


def test_a_revoke_and_a_role_change(security_events: Capture, db: Session) -> None:
    target = _new(db, is_admin=True, role="billing")
    security_events.clear()
    target.is_admin = False
    target.role = "support"
    db.commit()
    [record] = _changes(security_events)
    assert record["evt"]["granted"] == ["support"]
    assert record["evt"]["revoked"] == ["admin", "billing"]
    assert record["evt"]["from_role"] == "admin" and record["evt"]["to_role"] == "support"


def test_a_rolled_back_transaction_writes_nothing(security_events: Capture, db: Session) -> None:
    target = _new(db)
    security_events.clear()
    target.is_superuser = True
    db.flush()  # flushed, not committed
    db.rollback()
    db.commit()
    assert _changes(security_events) == []


def test_a_rolled_back_savepoint_writes_nothing_of_its_own(security_events: Capture, db: Session) -> None:
    kept, undone = _new(db), _new(db)
    security_events.clear()
    kept.is_admin = True
    db.flush()
    savepoint = db.begin_nested()
    undone.is_superuser = True
    db.flush()
    savepoint.rollback()
    db.commit()
    assert [r["target"]["usr"]["id"] for r in _changes(security_events)] == [str(kept.id)]


def test_an_unchanged_value_and_other_columns_write_nothing(security_events: Capture, db: Session) -> None:
    target = _new(db, is_admin=True)
    note = Note()
    db.add(note)
    db.commit()
    security_events.clear()
    target.is_admin = True  # the same value
    target.email = "new@example.org"
    target.password_hash = "pbkdf2$another-secret"
    note.is_admin = True  # another model
    db.commit()
    assert _changes(security_events) == []


def test_an_expired_row_still_knows_its_old_value(security_events: Capture, db: Session) -> None:
    target = _new(db, is_superuser=True)  # committed: every attribute is expired
    security_events.clear()
    target.is_superuser = False  # set without reading first
    db.commit()
    [record] = _changes(security_events)
    assert record["evt"]["revoked"] == ["superuser"] and record["evt"]["from_role"] == "superuser"


def test_an_account_born_privileged_is_a_grant(security_events: Capture, db: Session) -> None:
    account = _new(db, is_superuser=True)
    [record] = _changes(security_events)
    assert record["target"]["usr"]["id"] == str(account.id)
    assert record["evt"]["from_role"] == "member" and record["evt"]["granted"] == ["superuser"]


def test_an_account_created_unprivileged_writes_nothing(security_events: Capture, db: Session) -> None:
    """A sign-up: the role column's default (`"member"`, `Role.member`) and no privilege flag is no change,
    with or without the default set explicitly (every sign-up wrote `authz_change` user -> user, granted
    `member`)."""
    _new(db)
    _new(db, role="member", is_admin=False)
    db.add(Member())
    db.add(Member(role=Role.member))
    db.commit()
    assert _changes(security_events) == []


def test_an_account_created_with_another_role_is_a_grant_of_it(security_events: Capture, db: Session) -> None:
    account = _new(db, role="billing")
    db.add(Member(role=Role.admin))
    db.commit()
    first, second = _changes(security_events)
    assert first["target"]["usr"]["id"] == str(account.id)
    assert first["evt"]["granted"] == ["billing"] and "revoked" not in first["evt"]
    assert first["evt"]["from_role"] == "member" and first["evt"]["to_role"] == "billing"
    assert second["evt"]["granted"] == ["admin"] and "revoked" not in second["evt"]


def test_one_event_per_account_and_flush(security_events: Capture, db: Session) -> None:
    first, second = _new(db), _new(db)
    security_events.clear()
    first.is_admin = second.is_admin = True
    db.commit()
    assert sorted(r["target"]["usr"]["id"] for r in _changes(security_events)) == sorted(
        [str(first.id), str(second.id)]
    )


def test_an_enum_role_column(security_events: Capture, db: Session) -> None:
    member = Member()
    db.add(member)
    db.commit()
    security_events.clear()
    member.role = Role.admin
    db.commit()
    [record] = _changes(security_events)
    assert record["evt"]["granted"] == ["admin"] and record["evt"]["revoked"] == ["member"]


def test_a_bulk_update_statement_is_not_seen(security_events: Capture, db: Session) -> None:
    """Documented: SQL that bypasses the unit of work (an `update()` statement) is invisible."""
    _new(db)
    security_events.clear()
    db.execute(update(Account).values(is_admin=True))
    db.commit()
    assert _changes(security_events) == []


@pytest.mark.secevents_lenient
def test_a_hostile_role_value_is_written_shortened_and_noted(security_events: Capture, db: Session) -> None:
    target = _new(db)
    security_events.clear()
    target.role = "<script>" + "x" * 1990
    db.commit()
    [record] = _changes(security_events)
    assert len(record["evt"]["to_role"]) <= 1024
    assert any("evt.to_role" in e for e in record["secevents"]["errors"])


def test_strict_mode_raises_on_a_hostile_role_value(security_events: Capture, db: Session) -> None:
    target = _new(db)
    target.role = "x" * 2000
    with pytest.raises(EventValidationError, match=r"evt\.to_role"):
        db.commit()


def test_track_privileges_refuses_what_it_cannot_watch() -> None:
    with pytest.raises(ValueError, match="no attribute 'is_root'"):
        track_privileges(Account, fields={"is_root": "superuser"})
    with pytest.raises(ValueError, match="not a mapped class"):
        track_privileges(dict, fields={"x": "admin"})
    with pytest.raises(ValueError, match="name the privilege columns"):
        track_privileges(Account)


# --- sqladmin: a real admin UI on FastAPI, through our ASGI middleware --------------------------------------


sqladmin = pytest.importorskip("sqladmin")


@pytest.fixture(scope="module")
def admin_client(engine: Any) -> Iterator[Any]:
    from fastapi import FastAPI
    from sqladmin import Admin, ModelView
    from starlette.requests import Request

    from graffer_secevents.integrations.fastapi import SecurityEventsMiddleware

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    page = (Path(__file__).parents[3] / "docs" / "actors.md").read_text(encoding="utf-8")
    [block] = [b for b in re.findall(r"^ *```python\n(.*?)^ *```$", page, re.M | re.S) if "sqladmin" in b]
    documented: dict[str, Any] = {}
    exec(compile(textwrap.dedent(block), "docs/actors.md, the sqladmin block", "exec"), documented)

    class AdminAuth(documented["AdminAuth"]):  # type: ignore[misc]
        """The page's block (its authenticate() binds the admin's user), with login/logout as sqladmin's
        docs write them."""

        async def login(self, request: Request) -> bool:
            form = await request.form()
            if form.get("password") != "admin secret":
                return False
            request.session.update({"admin_id": str(form["username"])})
            return True

        async def logout(self, request: Request) -> bool:
            request.session.clear()
            return True

    class AccountAdmin(ModelView, model=Account):
        column_list: ClassVar[list[Any]] = [Account.id, Account.email]
        form_columns: ClassVar[list[Any]] = [
            Account.email,
            Account.is_superuser,
            Account.is_admin,
            Account.role,
        ]

    app = FastAPI()
    app.add_middleware(SecurityEventsMiddleware)
    admin = Admin(app, engine, authentication_backend=AdminAuth(secret_key="test-only-" + "k" * 32))
    admin.add_view(AccountAdmin)
    with TestClient(app, client=("198.51.100.40", 50000)) as client:
        response = client.post("/admin/login", data={"username": "7", "password": "admin secret"})
        assert response.status_code in (200, 302)
        yield client


def test_sqladmin_edit_form_grant_is_the_admins(
    security_events: Capture, db: Session, admin_client: Any
) -> None:
    target = _new(db)
    security_events.clear()
    response = admin_client.post(
        f"/admin/account/edit/{target.id}",
        data={"email": "x@example.org", "is_superuser": "y", "role": "member"},
        headers={"X-Request-ID": "sqladmin-grant"},
    )
    assert response.status_code == 200  # followed to the list
    [record] = _changes(security_events)
    assert record["usr"]["id"] == "7"  # the admin bound by the authentication backend
    assert record["target"]["usr"]["id"] == str(target.id)
    assert record["evt"]["granted"] == ["superuser"]
    assert record["network"]["client"]["ip"] == "198.51.100.40"
    assert record["http"]["request_id"] == "sqladmin-grant"


def test_sqladmin_create_form_of_an_admin_and_a_refused_form(
    security_events: Capture, db: Session, admin_client: Any
) -> None:
    response = admin_client.post("/admin/account/create", data={"email": "new@example.org", "is_admin": "y"})
    assert response.status_code == 200
    [record] = _changes(security_events)
    assert record["usr"]["id"] == "7" and record["evt"]["granted"] == ["admin"]
    security_events.clear()
    response = admin_client.post("/admin/account/create", data={"is_superuser": "y"})  # no e-mail: refused
    assert _changes(security_events) == []


def test_an_async_session_keeps_the_actor(security_events: Capture, engine: Any) -> None:
    """AsyncSession flushes in a greenlet of its own: the actor of the awaiting task is still the one."""
    import asyncio

    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    async def grant() -> str:
        aengine = create_async_engine(str(engine.url).replace("sqlite://", "sqlite+aiosqlite://"))
        try:
            async with async_sessionmaker(aengine)() as session:
                account = Account(email="async@example.org")
                session.add(account)
                await session.commit()  # expires the row: the set below must do no IO (no greenlet there)
                account_id = await session.scalar(
                    select(Account.id).where(Account.email == "async@example.org")
                )
                security_events.clear()
                with secevents.actor("async-grant", user="ops-8"):
                    account.is_admin = True
                    await session.commit()
                return str(account_id)
        finally:
            await aengine.dispose()

    target = asyncio.run(grant())
    [record] = _changes(security_events)
    assert record["usr"]["id"] == "ops-8" and record["target"]["usr"]["id"] == target


def test_an_endpoint_behind_starlettes_authentication_middleware_names_its_user(
    security_events: Capture, db: Session, engine: Any
) -> None:
    """A service's own endpoint (no admin UI): the actor is `scope["user"]`, as the ASGI middleware reads it."""
    from fastapi import FastAPI
    from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
    from starlette.middleware.authentication import AuthenticationMiddleware

    from graffer_secevents.integrations.fastapi import SecurityEventsMiddleware

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    class Header(AuthenticationBackend):
        async def authenticate(self, conn: Any) -> tuple[AuthCredentials, SimpleUser] | None:
            name = conn.headers.get("X-Admin")
            return (AuthCredentials(["admin"]), SimpleUser(name)) if name else None

    app = FastAPI()

    @app.post("/accounts/{account_id}/promote")
    def promote(account_id: int) -> str:
        with sessionmaker(bind=engine)() as session:
            account = session.get(Account, account_id)
            assert account is not None
            account.role = "admin"
            session.commit()
        return "ok"

    app.add_middleware(AuthenticationMiddleware, backend=Header())
    app.add_middleware(SecurityEventsMiddleware)
    target = _new(db)
    security_events.clear()
    with TestClient(app, client=("198.51.100.42", 50000)) as client:
        assert client.post(f"/accounts/{target.id}/promote", headers={"X-Admin": "root-9"}).status_code == 200
    [record] = _changes(security_events)
    assert record["usr"]["id"] == "root-9" and record["evt"]["granted"] == ["admin"]
    assert record["evt"]["revoked"] == ["member"] and record["network"]["client"]["ip"] == "198.51.100.42"
