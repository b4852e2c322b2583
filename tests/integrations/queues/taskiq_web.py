"""A FastAPI app on a real uvicorn server on 127.0.0.1 that kicks taskiq tasks: the web process of the taskiq
tests. ``python taskiq_web.py EVENTS_FILE``: prints ``PORT <n>`` once listening. No trusted proxy: a
forged ``X-Forwarded-For`` must not become the job's client IP."""

from __future__ import annotations

import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Header
from queue_jobs_taskiq import broker, export, export_as_service, export_sync, export_then_fail, no_event

import graffer_secevents as secevents
from graffer_secevents.integrations.fastapi import SecurityEventsMiddleware

secevents.configure(output=open(sys.argv[1], "ab"), metrics="none")  # noqa: SIM115 - the process's lifetime

TASKS = {
    "export": export,
    "export_sync": export_sync,
    "export_as_service": export_as_service,
    "export_then_fail": export_then_fail,
    "no_event": no_event,
}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await broker.startup()
    yield
    await broker.shutdown()  # a client process: the middleware's shutdown must not end its output


app = FastAPI(lifespan=lifespan)
app.add_middleware(SecurityEventsMiddleware)


@app.post("/kick/{task}/{tag}")
async def kick(task: str, tag: str, x_test_user: str = Header()) -> dict[str, str]:
    secevents.set_user(secevents.User(id=x_test_user, login=f"{x_test_user}@example.com"))
    kicked = await TASKS[task].kiq(tag)
    return {"task_id": kicked.task_id}


if __name__ == "__main__":
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=False)
    uvicorn.Server(config).run(sockets=[sock])
