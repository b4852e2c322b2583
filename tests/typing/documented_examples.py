"""The documented examples, type-checked with ``mypy --strict`` by ``make check`` (not run by pytest)."""

from __future__ import annotations

import io
import uuid

import graffer_secevents as secevents
from graffer_secevents import Outcome, User
from graffer_secevents.testing import capture_events


def configure_for_production() -> secevents.Config:
    return secevents.configure(
        service="auth-api",
        env="prod",
        version="1.4.2",
        trusted_proxies=["10.0.0.0/8"],
        hash_key="from-a-secret-store",
        privacy={"network.client.ip": "truncate", "usr.email": "drop"},
        metrics="dogstatsd",
    )


def login_examples(user_id: int, typed_login: str, ip: str) -> None:
    secevents.log_login(User(id=user_id, login=typed_login), "success", ip)
    secevents.log_login(user_id, Outcome.FAILURE, ip, reason="invalid_credentials", exists=True)
    secevents.log_login(None, "failure", ip, login=typed_login, exists=False, reason="unknown_user")
    secevents.log_login(uuid.uuid4(), "success", retries=3, tenant="acme")


def other_helpers(actor: User, target: User) -> None:
    secevents.log_logout(actor, session_id="s-1")
    secevents.log_access_denied(actor, "/admin/users")
    secevents.log_privilege_change(actor, target, from_role="user", to_role="admin")
    secevents.log_user_created(actor, target, attributes=["role", "email"])
    secevents.log_password_reset(None, login="ada@example.com", exists=False)
    secevents.log_mfa_challenge(actor, "failure", method="totp")
    secevents.log_sensitive_access(actor, "payroll.csv", action="read")
    secevents.emit("authz_fail", user=actor, resource="/admin")


def account_change_helpers(actor: User, target: User) -> None:
    secevents.log_privilege_change(actor, target, from_role="member", to_role="admin", granted=["admin"])
    secevents.log_group_membership(actor, target, "billing", action="remove")
    secevents.log_account_status(actor, target, enabled=False, reason="offboarding")
    secevents.log_user_updated(actor, target, attributes=["email"])
    secevents.log_mfa_change(actor, enabled=False, method="totp")
    secevents.log_impersonation(actor, target, target_role="user", reason="ticket-4711")
    with secevents.impersonating(actor):
        secevents.log_sensitive_access(target, "invoice:9")
    secevents.log_impersonation(actor, target, stage="end")
    secevents.set_user(actor)


def strict_in_tests() -> None:
    secevents.configure(output=io.StringIO(), strict=True)
    with capture_events() as events:
        secevents.log_login(1, "failure")
    record = events.assert_emitted("authn_login_fail", usr__id="1")
    assert record["evt"]["outcome"] == "failure"
    events.assert_not_emitted("authn_login_success")


def delivery() -> bool:
    secevents.configure(delivery="queue", queue_size=10_000, overflow="block", block_timeout=0.25)
    secevents.log_logout(1)
    drained: bool = secevents.flush(timeout=2.0)
    return drained


def attempts_once_per_request(account: User | None, typed_login: str) -> bool:
    """docs/integrations/auth-stacks.md's recipes and docs/api.md's once-per-request functions."""
    secevents.log_account_locked(account, reason="maxretries", login=typed_login)
    secevents.log_logout(account, login=typed_login)
    suppressed: bool = secevents.suppress_request_events("authn_login_fail")
    written: bool = secevents.record_login(
        account, "failure", login=typed_login, exists=account is not None, reason="invalid_credentials"
    )
    refused: bool = secevents.record_bad_credential(account, reason="invalid_token")
    return suppressed and written and refused


def fastapi_and_flask_options() -> None:
    from fastapi import FastAPI
    from flask import Flask

    from graffer_secevents.integrations.fastapi import SecurityEventsMiddleware
    from graffer_secevents.integrations.flask import SecurityEvents

    app = FastAPI()
    app.add_middleware(
        SecurityEventsMiddleware,
        find_account=lambda username: User(id=username),
        login_routes={"/api/session": "email"},
        credential_headers=("Authorization", "X-API-Key"),
    )
    SecurityEvents(Flask(__name__), record_unauthenticated=False, credential_statuses=(401, 422))


def sqlalchemy_privileges() -> None:
    """docs/actors.md: the privilege columns of a SQLAlchemy account model."""
    from sqlalchemy import Boolean, Integer, String
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

    from graffer_secevents.integrations.sqlalchemy import track_privileges

    class Base(DeclarativeBase):
        pass

    class Account(Base):
        __tablename__ = "documented_accounts"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        is_superuser: Mapped[bool] = mapped_column(Boolean)
        is_admin: Mapped[bool] = mapped_column(Boolean)
        role: Mapped[str] = mapped_column(String(20))

    track_privileges(Account, fields={"is_superuser": "superuser", "is_admin": "admin"}, role="role")
