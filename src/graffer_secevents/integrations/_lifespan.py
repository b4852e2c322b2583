"""ASGI lifespan: drain the security events' queue when the server shuts the application down.

Servers such as uvicorn re-raise SIGTERM after their graceful stop, so the process dies of the signal and
`atexit` never runs; lifespan shutdown is the last moment every ASGI server gives the application. The
application's own lifespan handlers run first (they may write events), then the queue is drained (or what
is left counted), each output gets its end record and the metrics are flushed, then the server is told the
shutdown is complete. An application that does not speak lifespan (it returns or raises without reading a
message) is answered here instead, so the drain happens for it too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from graffer_secevents._delivery import shutdown
from graffer_secevents._guard import guarded

__all__ = ["run_lifespan"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_SHUTDOWN_DONE = frozenset({"lifespan.shutdown.complete", "lifespan.shutdown.failed"})


def _shutdown() -> None:
    shutdown()


_drain: Callable[[], None] = guarded(_shutdown, "lifespan shutdown")


async def run_lifespan(app: Callable[..., Awaitable[None]], scope: Any, receive: Receive, send: Send) -> None:
    """Run `app`'s lifespan with the drain before its shutdown is reported complete."""
    spoke = False

    async def receive_and_note() -> Message:
        nonlocal spoke
        spoke = True
        return await receive()

    async def send_after_drain(message: Message) -> None:
        if message.get("type") in _SHUTDOWN_DONE:
            _drain()  # blocks the loop for at most the exit timeout: nothing else runs at this point
        await send(message)

    try:
        await app(scope, receive_and_note, send_after_drain)
    except Exception:
        if spoke:
            raise
    if spoke:
        return
    # The application does not speak lifespan: answer the server ourselves.
    while True:
        message = await receive()
        kind = message.get("type")
        if kind == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif kind == "lifespan.shutdown":
            _drain()
            await send({"type": "lifespan.shutdown.complete"})
            return
