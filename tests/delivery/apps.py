"""The apps the delivery server tests run under uvicorn, waitress and gunicorn (see tests/test_delivery_servers.py).

Routes: ``/login?n=N`` writes one failed login for user N; ``/health`` writes nothing; ``/dropped`` answers
the process's drop counters; ``/flush`` drains the queue and answers whether it could. ``SECEVENTS_*``
variables configure the library; ``BOOT_EVENT=1`` writes one event at import (gunicorn ``--preload``: in the
master, before the workers fork).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import graffer_secevents as secevents
from graffer_secevents import _delivery
from graffer_secevents.integrations.asgi import SecurityEventsMiddleware as AsgiMiddleware
from graffer_secevents.integrations.wsgi import SecurityEventsMiddleware as WsgiMiddleware

secevents.configure(service="delivery-test", metrics="none")
if os.environ.get("BOOT_EVENT") == "1":
    secevents.emit("admin_action", user="boot", outcome="success", context={"pid": os.getpid()})


def _answer(path: str, query: str) -> bytes:
    if path == "/login":
        n = parse_qs(query).get("n", ["0"])[0]
        secevents.log_login(n, "failure", login=f"user{n}@example.com", reason="invalid_credentials")
    elif path == "/dropped":
        return json.dumps(_delivery.dropped()).encode()
    elif path == "/flush":
        return json.dumps({"flushed": secevents.flush(timeout=20), "dropped": _delivery.dropped()}).encode()
    return b"ok"


async def _asgi(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    if scope["type"] != "http":
        return
    body = _answer(scope["path"], scope["query_string"].decode())
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def _wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = _answer(environ["PATH_INFO"], environ.get("QUERY_STRING", ""))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


asgi_app = AsgiMiddleware(_asgi)
wsgi_app = WsgiMiddleware(_wsgi)
