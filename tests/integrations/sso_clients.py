"""Flask and FastAPI services logging in with Authlib's OpenID Connect client, each a real server on 127.0.0.1.

``python sso_clients.py EVENTS_FILE`` with ``SSO_ROLE`` (``flask`` or ``fastapi``), ``SSO_IDP`` (the provider's URL,
`django/sso_servers.py`) and ``SSO_CLIENT``; prints ``PORT <n>`` once listening. Wired as this library's docs
show (docs/integrations/flask.md, docs/integrations/fastapi.md) and as Authlib's docs show its clients: the
callback ``/auth`` calls ``authorize_access_token()`` and lets its errors raise (a 500), then finds the
account by the ID token's e-mail: none, or an inactive one, is a 403. Flask logs the account in with
Flask-Login (its signal is the success); FastAPI keeps it in the session and records the success with
``secevents.record_login`` (docs/integrations/auth-stacks.md, the OAuth recipe). Accounts: ``alice``
(active) and ``ina`` (inactive).
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations (imported inside serve_fastapi).

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import graffer_secevents as secevents

EVENTS = Path(sys.argv[1])
ROLE, IDP, CLIENT = os.environ["SSO_ROLE"], os.environ["SSO_IDP"], os.environ["SSO_CLIENT"]
CLIENT_SECRET = "client-secret-" + "s3cr3t" * 4
# Written as each event happens, so the test reads a flow's records without racing the writer thread.
secevents.configure(service=f"sso-{ROLE}", output=EVENTS.open("ab"), metrics="none", delivery="sync")
REGISTRATION: dict[str, Any] = {
    "client_id": CLIENT,
    "client_secret": CLIENT_SECRET,
    "server_metadata_url": f"{IDP}/o/.well-known/openid-configuration",
    "client_kwargs": {"scope": "openid email profile"},
}


@dataclass
class Account:
    id: int
    email: str
    active: bool = True

    # Flask-Login's user protocol
    @property
    def is_active(self) -> bool:
        return self.active

    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)


ACCOUNTS = {
    "alice@example.com": Account(1001, "alice@example.com"),
    "ina@example.com": Account(1002, "ina@example.com", False),
}


def serve_flask() -> None:
    from authlib.integrations.flask_client import OAuth
    from flask import Flask, abort, redirect, url_for
    from flask_login import LoginManager, current_user, login_user
    from waitress.server import create_server

    from graffer_secevents.integrations.flask import SecurityEvents

    app = Flask(__name__)
    app.secret_key = "sso-flask-test"
    app.config["SESSION_COOKIE_NAME"] = "flasksession"
    login_manager = LoginManager(app)
    SecurityEvents(app)
    oauth = OAuth(app)
    oauth.register("idp", **REGISTRATION)

    @login_manager.user_loader
    def load_user(user_id: str) -> Account | None:
        return next((a for a in ACCOUNTS.values() if str(a.id) == user_id), None)

    @app.get("/login")
    def login() -> Any:
        return oauth.idp.authorize_redirect(url_for("auth", _external=True))

    @app.get("/auth")
    def auth() -> Any:
        token = oauth.idp.authorize_access_token()
        account = ACCOUNTS.get(token["userinfo"]["email"])
        if account is None or not login_user(account):
            abort(403)
        return redirect("/private/")

    @app.get("/private/")
    def private() -> str:
        return f"hello {current_user.get_id()}" if current_user.is_authenticated else "anonymous"

    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    print(f"PORT {server.effective_port}", flush=True)  # type: ignore[union-attr]
    server.run()


def serve_fastapi() -> None:
    import socket

    import uvicorn
    from authlib.integrations.starlette_client import OAuth
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import PlainTextResponse, RedirectResponse
    from starlette.middleware.sessions import SessionMiddleware

    from graffer_secevents.integrations.fastapi import SecurityEventsMiddleware

    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key="sso-fastapi-test", session_cookie="fastapisession")
    app.add_middleware(SecurityEventsMiddleware)
    oauth = OAuth()
    oauth.register("idp", **REGISTRATION)

    @app.get("/login")
    async def login(request: Request) -> Any:
        return await oauth.idp.authorize_redirect(request, str(request.url_for("auth")))

    @app.get("/auth")
    async def auth(request: Request) -> Any:
        token = await oauth.idp.authorize_access_token(request)
        account = ACCOUNTS.get(token["userinfo"]["email"])
        if account is None or not account.active:
            raise HTTPException(status_code=403)
        request.session["account"] = account.id
        secevents.record_login(account.id, "success", method="oidc")
        return RedirectResponse("/private/")

    @app.get("/private/")
    async def private(request: Request) -> PlainTextResponse:
        account = request.session.get("account")
        return PlainTextResponse(f"hello {account}" if account else "anonymous")

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print(f"PORT {sock.getsockname()[1]}", flush=True)  # uvicorn listens on the bound socket at once
    config = uvicorn.Config(app, log_level="warning", proxy_headers=False)  # as docs/integrations/fastapi.md
    uvicorn.Server(config).run(sockets=[sock])


serve_flask() if ROLE == "flask" else serve_fastapi()
