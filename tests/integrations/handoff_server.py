"""A request that hands work to another thread of the same process, on a real server on 127.0.0.1
(tests/integrations/test_thread_handoffs.py). ``HANDOFF_STACK=fastapi|flask|django python handoff_server.py
EVENTS_FILE``: prints ``PORT <n>`` once listening. No trusted proxy.

``/<how>/<tag>`` names the user (id 42), then emits one event tagged ``tag`` from a thread started ``how``:

* ``plain``: `ThreadPoolExecutor.submit(fn)` (and `loop.run_in_executor(None, fn)` on FastAPI): no context;
* ``copied``: the documented recipe, `submit(contextvars.copy_context().run, fn)` /
  `run_in_executor(None, contextvars.copy_context().run, fn)`;
* ``job``: `secevents.job(secevents.job_origin(), system="thread")`, for a thread that outlives the request
  (a long-lived consumer thread fed through a `queue.Queue`);
* ``to_thread`` (FastAPI): `asyncio.to_thread`, which copies the context itself;
* ``late``: the ``copied`` recipe, fire and forget: the thread emits after the response.

Except ``late``, the request waits for the thread, so the event is written before the response.
"""

from __future__ import annotations

import contextvars
import os
import queue
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import graffer_secevents as secevents

STACK = os.environ["HANDOFF_STACK"]
secevents.configure(output=open(sys.argv[1], "ab"), metrics="none", delivery="sync")  # noqa: SIM115
POOL = ThreadPoolExecutor(max_workers=2)
INBOX: queue.Queue[tuple[Any, str, threading.Event]] = queue.Queue()


def emit(tag: str) -> None:
    secevents.log_data_export(None, "orders", record_count=1, tag=tag)


def emit_later(tag: str) -> None:
    """Fire and forget: the event is emitted after the response was sent and the request torn down."""
    import time

    time.sleep(0.3)
    emit(tag)


def _consume() -> None:
    """A long-lived thread fed through a queue: each item carries the origin of the request that sent it."""
    while True:
        origin, tag, done = INBOX.get()
        with secevents.job(origin, system="thread", name="exports"):
            emit(tag)
        done.set()


threading.Thread(target=_consume, daemon=True).start()


def hand_off(how: str, tag: str) -> None:
    """The synchronous hand-offs, the same in every stack."""
    if how == "plain":
        POOL.submit(emit, tag).result()
    elif how == "copied":
        POOL.submit(contextvars.copy_context().run, emit, tag).result()
    elif how == "late":
        POOL.submit(contextvars.copy_context().run, emit_later, tag)
    elif how == "job":
        done = threading.Event()
        INBOX.put((secevents.job_origin(), tag, done))
        done.wait(10)
    else:
        raise ValueError(how)


def user() -> secevents.User:
    return secevents.User(id=42, login="alice@example.com", email="alice@example.com")


def fastapi_app() -> Any:
    import asyncio

    from fastapi import FastAPI

    from graffer_secevents.integrations.fastapi import SecurityEventsMiddleware

    app = FastAPI()
    app.add_middleware(SecurityEventsMiddleware)

    @app.post("/{how}/{tag}")
    async def handoff(how: str, tag: str) -> dict[str, str]:
        secevents.set_user(user())
        loop = asyncio.get_running_loop()
        if how == "plain":
            await loop.run_in_executor(None, emit, tag)
        elif how == "copied":
            await loop.run_in_executor(None, contextvars.copy_context().run, emit, tag)
        elif how == "to_thread":
            await asyncio.to_thread(emit, tag)
        elif how == "late":
            loop.run_in_executor(None, contextvars.copy_context().run, emit_later, tag)  # not awaited
        else:
            await asyncio.to_thread(hand_off, how, tag)  # hand_off's own thread runs with the copied context
        return {}

    return app


def flask_app() -> Any:
    import flask

    from graffer_secevents.integrations.flask import SecurityEvents

    app = flask.Flask("handoff")
    SecurityEvents(app)

    @app.post("/<how>/<tag>")
    def handoff(how: str, tag: str) -> str:
        secevents.set_user(user())
        hand_off(how, tag)
        return "ok"

    return app


def django_app() -> Any:
    import types

    import django
    from django.conf import settings

    urls = types.ModuleType("handoff_urls")
    sys.modules[urls.__name__] = urls
    settings.configure(
        DEBUG=False,
        SECRET_KEY="handoff-test-only",
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=urls.__name__,
        DATABASES={},
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "graffer_secevents.integrations.django",
        ],
        MIDDLEWARE=["graffer_secevents.integrations.django.SecurityEventsMiddleware"],
        USE_TZ=True,
    )
    django.setup()
    from django.core.wsgi import get_wsgi_application
    from django.http import HttpRequest, HttpResponse
    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt

    @csrf_exempt
    def handoff(request: HttpRequest, how: str, tag: str) -> HttpResponse:
        secevents.set_user(user())
        hand_off(how, tag)
        return HttpResponse("ok")

    urls.urlpatterns = [path("<str:how>/<str:tag>", handoff)]  # type: ignore[attr-defined]
    return get_wsgi_application()


if __name__ == "__main__":
    if STACK == "fastapi":
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        print(f"PORT {sock.getsockname()[1]}", flush=True)
        config = uvicorn.Config(fastapi_app(), log_level="warning", access_log=False, proxy_headers=False)
        uvicorn.Server(config).run(sockets=[sock])
    else:
        from werkzeug.serving import make_server

        server = make_server("127.0.0.1", 0, flask_app() if STACK == "flask" else django_app(), threaded=True)
        print(f"PORT {server.server_port}", flush=True)
        server.serve_forever()
