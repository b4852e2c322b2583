"""A small FastAPI shop with a real login, instrumented with graffer_secevents.

Run it on its own::

    python examples/fastapi_app.py               # http://127.0.0.1:8000, events on stdout
    curl -i -X POST -H 'Content-Type: application/json' \\
         -d '{"username": "ada@example.com", "password": "wrong"}' http://127.0.0.1:8000/login

FastAPI has no authentication signals, so the application records logins, failures and logouts with the
helpers where it checks credentials. The pure ASGI ``SecurityEventsMiddleware`` supplies everything else:
the client IP, request id, user agent and route of every event, the user bound by the ``current_user``
dependency through ``set_user``, and ``authz_fail`` for every 403.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel

import graffer_secevents as secevents
from graffer_secevents.integrations.fastapi import SecurityEventsMiddleware


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"{salt.hex()}${digest.hex()}"


def check_password(stored: str, password: str) -> bool:
    salt, _, digest = stored.partition("$")
    return hmac.compare_digest(hash_password(password, bytes.fromhex(salt)).partition("$")[2], digest)


@dataclass
class Account:
    id: int
    email: str
    password_hash: str
    role: str = "customer"

    def get_username(self) -> str:  # what events show as usr.login (hashed by default)
        return self.email


ACCOUNTS = {
    a.email: a
    for a in (
        Account(1001, "ada@example.com", hash_password("correct horse battery staple")),
        Account(1002, "grace@example.com", hash_password("hopper-1906")),
        Account(1, "root@example.com", hash_password("root-admin-pass"), role="admin"),
    )
}
DUMMY_HASH = hash_password("not-a-real-password")  # a miss costs as much as a wrong password
SESSIONS: dict[str, Account] = {}

app = FastAPI(title="shop")
app.add_middleware(SecurityEventsMiddleware)


class Credentials(BaseModel):
    username: str
    password: str


class ResetRequest(BaseModel):
    username: str


def current_user(authorization: str = Header(default="")) -> Account:
    """A sync dependency (run in the thread pool): ``set_user`` still reaches the request's context."""
    account = SESSIONS.get(authorization.removeprefix("Bearer "))
    if account is None:
        raise HTTPException(401, "not signed in")
    secevents.set_user(account)
    return account


CurrentAccount = Annotated[Account, Depends(current_user)]


@app.post("/login")
def login(credentials: Credentials) -> dict[str, str]:
    account = ACCOUNTS.get(credentials.username)
    if account is not None and check_password(account.password_hash, credentials.password):
        secevents.log_login(account, "success")
        token = secrets.token_urlsafe(24)
        SESSIONS[token] = account
        return {"token": token}
    check_password(DUMMY_HASH, credentials.password) if account is None else None
    secevents.log_login(
        account,  # a known account keeps its id on failures; None for an unknown login
        "failure",
        login=credentials.username,
        exists=account is not None,
        reason="invalid_credentials" if account else "unknown_user",
    )
    raise HTTPException(401, "invalid credentials")


@app.post("/logout")
def logout(account: CurrentAccount, authorization: str = Header(default="")) -> dict[str, bool]:
    token = authorization.removeprefix("Bearer ")
    SESSIONS.pop(token, None)
    secevents.log_logout(session_id=token)  # the user comes from the request context; the id is hashed
    return {"ok": True}


@app.get("/me")
async def me(account: CurrentAccount) -> dict[str, object]:
    return {"id": account.id, "email": account.email}


@app.post("/password-reset", status_code=202)
async def password_reset(body: ResetRequest) -> dict[str, bool]:
    secevents.log_password_reset(None, login=body.username, exists=body.username in ACCOUNTS)
    return {"ok": True}  # the same answer either way: no account enumeration


@app.get("/admin/users")
async def admin_users(account: CurrentAccount) -> dict[str, list[str]]:
    if account.role != "admin":
        raise HTTPException(403)  # the middleware records authz_fail with the user and the route
    return {"users": sorted(ACCOUNTS)}


@app.post("/admin/users/{user_id}/disable")
async def disable_user(user_id: int, account: CurrentAccount) -> dict[str, bool]:
    if account.role != "admin":
        raise HTTPException(403)
    secevents.log_admin_action(account, "disable_user", resource=f"/users/{user_id}")
    return {"ok": True}


if __name__ == "__main__":
    import uvicorn

    # Behind a proxy, name it: secevents.configure(trusted_proxies=["10.0.0.0/8"]); see docs/client-ip.md.
    secevents.configure(service="fastapi-shop", env="dev")
    # proxy_headers=False: uvicorn must not rewrite the peer address; the library resolves forwarded
    # addresses itself, from the configured trusted proxies only.
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), proxy_headers=False)
