"""A fastapi-users app as its docs set one up (SQLAlchemy + aiosqlite, JWT over a bearer transport), with the
SecurityEvents middleware, the mixin and the backend, and no event code. Shared by the tests and the server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
from fastapi_users.authentication import BearerTransport, JWTStrategy
from fastapi_users.db import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from fastapi_users.password import PasswordHelper
from pwdlib import PasswordHash
from pwdlib.hashers.bcrypt import BcryptHasher
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from graffer_secevents.integrations.fastapi import SecurityEventsMiddleware
from graffer_secevents.integrations.fastapi_users import (
    SecurityEventsAuthenticationBackend,
    SecurityEventsUserManagerMixin,
)

SECRET = "test-only-secret-with-enough-bytes-for-hs256"
PASSWORDS = PasswordHelper(PasswordHash((BcryptHasher(rounds=4),)))  # fast for tests
ACCOUNTS = {  # e-mail: (password, active, superuser)
    "ada@secevents-test.net": ("correct horse battery", True, False),
    "root@secevents-test.net": ("root password here", True, True),
    "off@secevents-test.net": ("disabled account pw", False, False),
}
VERIFIED = {"root@secevents-test.net"}  # the others have not verified their e-mail (fastapi-users' default)


class Base(DeclarativeBase):
    pass


class User(SQLAlchemyBaseUserTableUUID, Base):
    pass


class UserRead(schemas.BaseUser[uuid.UUID]):
    pass


class UserCreate(schemas.BaseUserCreate):
    pass


class UserManager(
    SecurityEventsUserManagerMixin[User, uuid.UUID], UUIDIDMixin, BaseUserManager[User, uuid.UUID]
):
    reset_password_token_secret = SECRET
    verification_token_secret = SECRET
    sent_reset_tokens: list[str] = []  # noqa: RUF012 - stands in for the e-mail the app would send

    async def on_after_forgot_password(self, user: User, token: str, request: Any = None) -> None:
        self.sent_reset_tokens.append(token)  # the docs' hook, without super(): events still come

    async def validate_password(self, password: str, user: Any) -> None:
        if len(password) < 8:
            from fastapi_users.exceptions import InvalidPasswordException

            raise InvalidPasswordException(reason="too short")


def get_jwt_strategy() -> JWTStrategy[User, uuid.UUID]:
    return JWTStrategy(secret=SECRET, lifetime_seconds=3600)


def build_app(
    database_url: str,
    *,
    backend_class: Any = SecurityEventsAuthenticationBackend,
    requires_verification: bool = False,
    **middleware: Any,
) -> FastAPI:
    engine = create_async_engine(database_url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def get_session() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:
            yield session

    # Depends() defaults, as fastapi-users' docs write them (Annotated would not resolve these local names).
    async def get_user_db(session: AsyncSession = Depends(get_session)) -> AsyncIterator[Any]:  # noqa: B008
        yield SQLAlchemyUserDatabase(session, User)

    async def get_user_manager(user_db: Any = Depends(get_user_db)) -> AsyncIterator[UserManager]:  # noqa: B008
        yield UserManager(user_db, PASSWORDS)

    backend = backend_class(
        "jwt", transport=BearerTransport(tokenUrl="auth/jwt/login"), get_strategy=get_jwt_strategy
    )
    users = FastAPIUsers[User, uuid.UUID](get_user_manager, [backend])

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with sessions() as session:
            for email, (password, active, superuser) in ACCOUNTS.items():
                session.add(
                    User(
                        email=email,
                        hashed_password=PASSWORDS.hash(password),
                        is_active=active,
                        is_superuser=superuser,
                        is_verified=email in VERIFIED,
                    )
                )
            await session.commit()
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(SecurityEventsMiddleware, **middleware)
    app.include_router(
        users.get_auth_router(backend, requires_verification=requires_verification), prefix="/auth/jwt"
    )
    app.include_router(users.get_register_router(UserRead, UserCreate), prefix="/auth")
    app.include_router(users.get_reset_password_router(), prefix="/auth")
    app.include_router(users.get_users_router(UserRead, schemas.BaseUserUpdate), prefix="/users")
    return app
