"""A WSGI `application` and an ASGI `app` for servers bound to a unix socket (`test_unix_socket_servers.py`).

Both answer 401 to every request, which the middleware records; events go to the file `$EVENTS_FILE`, and
`SECEVENTS_TRUSTED_PROXIES` / `SECEVENTS_TRUSTED_HOPS` come from the environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import graffer_secevents as secevents
from graffer_secevents.integrations import asgi, wsgi

secevents.configure(output=open(os.environ["EVENTS_FILE"], "ab"), metrics="none")  # noqa: SIM115 - process-wide


def _wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("401 Unauthorized", [("Content-Type", "text/plain")])
    return [b"no"]


async def _asgi(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b"no"})


application = wsgi.SecurityEventsMiddleware(_wsgi)
app = asgi.SecurityEventsMiddleware(_asgi)
