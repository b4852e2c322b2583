"""The auth-stack pages' examples (docs/integrations/flask-security.md, fastapi-users.md,
starlette-auth.md), type-checked with ``mypy --strict`` as users would write them (not run by pytest)."""

from __future__ import annotations

import uuid

from fastapi_users import BaseUserManager, UUIDIDMixin
from fastapi_users.authentication import BearerTransport, JWTStrategy
from fastapi_users.db import SQLAlchemyBaseUserTableUUID
from flask import Flask
from sqlalchemy.orm import DeclarativeBase
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection

from graffer_secevents.integrations.asgi import SecurityEventsMiddleware
from graffer_secevents.integrations.fastapi_users import (
    SecurityEventsAuthenticationBackend,
    SecurityEventsUserManagerMixin,
)
from graffer_secevents.integrations.flask import SecurityEvents
from graffer_secevents.integrations.starlette_auth import auth_error_handler

SECRET = "from-a-secret-store"


class Base(DeclarativeBase):
    pass


class User(SQLAlchemyBaseUserTableUUID, Base):
    pass


class UserManager(
    SecurityEventsUserManagerMixin[User, uuid.UUID], UUIDIDMixin, BaseUserManager[User, uuid.UUID]
):
    reset_password_token_secret = SECRET
    verification_token_secret = SECRET


def get_jwt_strategy() -> JWTStrategy[User, uuid.UUID]:
    return JWTStrategy(secret=SECRET, lifetime_seconds=3600)


auth_backend: SecurityEventsAuthenticationBackend[User, uuid.UUID] = SecurityEventsAuthenticationBackend(
    "jwt", transport=BearerTransport(tokenUrl="auth/jwt/login"), get_strategy=get_jwt_strategy
)


def flask_security_app(app: Flask) -> SecurityEvents:
    return SecurityEvents(app, flask_security=True)


class TokenBackend(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        return None


starlette_app = Starlette(
    middleware=[
        Middleware(SecurityEventsMiddleware),
        Middleware(AuthenticationMiddleware, backend=TokenBackend(), on_error=auth_error_handler()),
    ],
)
