# The login FastAPI's security tutorial teaches ("OAuth2 with Password (and hashing), Bearer with JWT tokens"),
# written here from the pattern the tutorial documents, not copied from it: a `/token` route on
# `OAuth2PasswordRequestForm` that answers 401 "Incorrect username or password" (checking a dummy hash for an
# unknown name), PyJWT HS256 access tokens whose `sub` is the username, an `OAuth2PasswordBearer` dependency
# that answers 401 "Could not validate credentials" to a forged, expired or unknown token, a pydantic `User`
# with a `username` and no `id`, and pwdlib's recommended (argon2) hashing. Nothing of graffer_secevents is in
# here: the tests add the middleware, as an application following the tutorial would.
# ruff: noqa
from datetime import datetime, timedelta, timezone
from typing import Annotated

import jwt
from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from jwt.exceptions import InvalidTokenError
from pwdlib import PasswordHash
from pydantic import BaseModel

SECRET_KEY = "a3f1c2e9b7d64f0e8c5a9b2d7e1f4c6a8b0d2e4f6a8c0e2d4f6b8a0c2e4d6f8a"  # a test key
ALGORITHM = "HS256"
TOKEN_MINUTES = 30

hasher = PasswordHash.recommended()
UNKNOWN_USER_HASH = hasher.hash("not-a-real-password")  # so an unknown name costs as much as a known one


class User(BaseModel):
    username: str
    email: str | None = None
    full_name: str | None = None
    disabled: bool | None = None


class StoredUser(User):
    hashed_password: str


class Token(BaseModel):
    access_token: str
    token_type: str


fake_users_db = {
    "johndoe": {
        "username": "johndoe",
        "full_name": "John Doe",
        "email": "johndoe@example.com",
        "hashed_password": hasher.hash("secret"),
        "disabled": False,
    }
}

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")
app = FastAPI()


def get_user(db: dict, username: str) -> StoredUser | None:
    row = db.get(username)
    return StoredUser(**row) if row is not None else None


def check_credentials(db: dict, username: str, password: str) -> StoredUser | None:
    user = get_user(db, username)
    if user is None:
        hasher.verify(password, UNKNOWN_USER_HASH)
        return None
    return user if hasher.verify(password, user.hashed_password) else None


def issue_token(username: str) -> str:
    expires = datetime.now(timezone.utc) + timedelta(minutes=TOKEN_MINUTES)
    return jwt.encode({"sub": username, "exp": expires}, SECRET_KEY, algorithm=ALGORITHM)


async def current_user(token: Annotated[str, Depends(oauth2_scheme)]) -> StoredUser:
    refused = HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="Could not validate credentials",
        headers={"WWW-Authenticate": "Bearer"},
    )
    try:
        username = jwt.decode(token, SECRET_KEY, algorithms=[ALGORITHM]).get("sub")
    except InvalidTokenError:
        raise refused
    user = get_user(fake_users_db, username) if isinstance(username, str) else None
    if user is None:
        raise refused
    return user


async def current_active_user(user: Annotated[User, Depends(current_user)]) -> User:
    if user.disabled:
        raise HTTPException(status_code=400, detail="Inactive user")
    return user


@app.post("/token")
async def login_for_access_token(form_data: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    user = check_credentials(fake_users_db, form_data.username, form_data.password)
    if user is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="Incorrect username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Token(access_token=issue_token(user.username), token_type="bearer")


@app.get("/users/me/")
async def read_users_me(user: Annotated[User, Depends(current_active_user)]) -> User:
    return user


@app.get("/users/me/items/")
async def read_own_items(user: Annotated[User, Depends(current_active_user)]) -> list[dict[str, str]]:
    return [{"item_id": "Foo", "owner": user.username}]
