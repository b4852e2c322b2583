"""One app per framework on a real server on 127.0.0.1, for the leak suite (``test_leaks_real_servers.py``).

``LEAK_FRAMEWORK=fastapi|flask|django python leak_server.py EVENTS_FILE``: prints ``PORT <n>`` once listening
and writes events to EVENTS_FILE with the default privacy settings and a hash key. FastAPI runs on uvicorn,
Flask and Django on waitress (as ``django_server.py`` does). Every app has no event code of its own:

* ``GET /deny/<anything>``: answered 403 (the integration's ``authz_fail``, which copies the path into
  ``evt.resource``), with the user the stack authenticated from ``X-Test-User`` when sent;
* ``POST /login``: logs the user named by the ``email`` form field in through the stack's own login (Flask-Login
  ``login_user`` with the README's ``user.id = email`` user; Django's ``login()`` of a user whose username is the
  address); FastAPI has no login of its own: its user comes from a dependency calling ``set_user``.
"""

# No `from __future__ import annotations`: FastAPI reads the local functions' annotations at run time.

import os
import socket
import sys
from pathlib import Path

EVENTS = Path(sys.argv[1])
FRAMEWORK = os.environ["LEAK_FRAMEWORK"]
SETTINGS = {"output": open(EVENTS, "ab"), "metrics": "none", "hash_key": "leak-suite-key-0123456789"}  # noqa: SIM115


def fastapi_main() -> None:
    import uvicorn
    from fastapi import Depends, FastAPI, HTTPException, Request

    import graffer_secevents as api
    from graffer_secevents.integrations.fastapi import SecurityEventsMiddleware

    api.configure(**SETTINGS)
    app = FastAPI()
    app.add_middleware(SecurityEventsMiddleware)

    def user(request: Request) -> str | None:
        who = request.headers.get("x-test-user")
        if who:
            api.set_user(who)
        return who

    @app.get("/deny/{rest:path}")
    def deny(rest: str, who: str | None = Depends(user)) -> None:
        raise HTTPException(403)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    # Listening before the port is announced: a client that connects before uvicorn has started waits in
    # the backlog instead of being refused (a busy machine lost that race: ConnectError, errno 111).
    sock.listen(128)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=False)
    uvicorn.Server(config).run(sockets=[sock])


def flask_main() -> None:
    from flask import Flask, abort, request
    from flask_login import LoginManager, UserMixin, login_user
    from waitress.server import create_server

    import graffer_secevents as api
    from graffer_secevents.integrations.flask import SecurityEvents

    api.configure(**SETTINGS)

    class User(UserMixin):  # Flask-Login's README: `user = User(); user.id = email`
        pass

    def load(email: str | None) -> User | None:
        if not email:
            return None
        user = User()
        user.id = email
        return user

    app = Flask(__name__)
    app.secret_key = "leak-suite-only"
    manager = LoginManager(app)
    manager.user_loader(load)
    manager.request_loader(lambda req: load(req.headers.get("X-Test-User")))
    SecurityEvents(app)

    @app.post("/login")
    def login() -> str:
        login_user(load(request.form["email"]))  # type: ignore[arg-type]
        return "ok"

    @app.get("/deny/<path:rest>")
    def deny(rest: str) -> str:
        abort(403)

    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    print(f"PORT {server.effective_port}", flush=True)  # type: ignore[union-attr]
    server.run()


def django_main() -> None:
    import types

    import django
    from django.conf import settings

    urls = types.ModuleType("leak_urls")
    sys.modules[urls.__name__] = urls
    settings.configure(
        DEBUG=False,
        SECRET_KEY="leak-suite-only",
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=urls.__name__,
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(EVENTS.with_suffix(".sqlite3"))}
        },
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "graffer_secevents.integrations.django",
        ],
        MIDDLEWARE=[
            "graffer_secevents.integrations.django.SecurityEventsMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        SECEVENTS=SETTINGS,
    )
    django.setup()

    from django.contrib.auth import get_user_model, login
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from django.http import HttpRequest, HttpResponse
    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt
    from waitress.server import create_server

    users = get_user_model()

    @csrf_exempt
    def login_view(request: HttpRequest) -> HttpResponse:
        email = request.POST["email"]
        user, _ = users.objects.get_or_create(username=email, defaults={"email": email})
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return HttpResponse("ok")

    def deny(request: HttpRequest, rest: str) -> HttpResponse:
        who = request.headers.get("X-Test-User")
        if who:
            request.user, _ = users.objects.get_or_create(username=who, defaults={"email": who})
        return HttpResponse("no", status=403)

    urls.urlpatterns = [path("login", login_view), path("deny/<path:rest>", deny)]  # type: ignore[attr-defined]
    call_command("migrate", verbosity=0, interactive=False)
    server = create_server(WSGIHandler(), host="127.0.0.1", port=0, threads=4)
    print(f"PORT {server.effective_port}", flush=True)  # type: ignore[union-attr]
    server.run()


if __name__ == "__main__":
    {"fastapi": fastapi_main, "flask": flask_main, "django": django_main}[FRAMEWORK]()
