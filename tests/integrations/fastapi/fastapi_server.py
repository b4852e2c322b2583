"""A FastAPI app on a real uvicorn server on 127.0.0.1 (ephemeral port) for the no-bleed load test.

``python fastapi_server.py EVENTS_FILE``: prints ``PORT <n>`` once listening; writes events to EVENTS_FILE.
127.0.0.1 is the trusted proxy, so each request's ``X-Forwarded-For`` names its client. The user comes from
a *sync* dependency (run in the thread pool) through ``set_user``; endpoints are async, sync and streaming.
"""

from __future__ import annotations

import asyncio
import random
import socket
import sys
import time
from collections.abc import AsyncIterator

import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import StreamingResponse

import graffer_secevents as api
from graffer_secevents.integrations.fastapi import SecurityEventsMiddleware

api.configure(
    output=open(sys.argv[1], "ab"),  # noqa: SIM115 - the process's lifetime
    trusted_proxies=["127.0.0.1/32"],
    metrics="none",
    privacy={"usr.login": "keep"},
)
app = FastAPI()
app.add_middleware(SecurityEventsMiddleware)


def user(x_test_user: str = Header()) -> str:
    api.set_user(x_test_user)
    return x_test_user


@app.get("/async/{n}")
async def async_endpoint(n: int, who: str = Depends(user)) -> dict[str, int]:
    await asyncio.sleep(random.random() / 200)
    api.emit("sensitive_read", object=f"async-{n}")
    return {"n": n}


@app.get("/sync/{n}")
def sync_endpoint(n: int, who: str = Depends(user)) -> dict[str, int]:
    time.sleep(random.random() / 200)
    api.emit("sensitive_read", object=f"sync-{n}")
    raise HTTPException(403)  # and the middleware records authz_fail for the same request


@app.get("/stream/{n}")
async def stream_endpoint(n: int, who: str = Depends(user)) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        yield b"a"
        await asyncio.sleep(random.random() / 200)
        api.emit("data_export", object=f"stream-{n}")
        yield b"b"

    return StreamingResponse(body())


if __name__ == "__main__":
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    # Listening before the port is announced: a client that connects before uvicorn has started waits in
    # the backlog instead of being refused (a busy machine lost that race: ConnectError, errno 111).
    sock.listen(128)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    # proxy_headers=False: uvicorn must not rewrite the peer; the library resolves forwarded addresses itself.
    config = uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=False)
    uvicorn.Server(config).run(sockets=[sock])
