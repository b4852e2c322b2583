"""Where the ASGI middleware's per-request cost goes, around a trivial ASGI app (no framework noise).

Variants, each wrapping the same app that sends a response start and a body: ``ctx_send`` only binds a
contextvar and wraps ``send``; ``+context`` also builds our lazy request context and records the status;
``+new_id`` also generates a request id and appends ``X-Request-ID``; ``+upstream_id`` also looks for an
upstream id first; ``ours`` is ``SecurityEventsMiddleware``. Interleaved rounds, the garbage
collector paused during each batch; medians of µs per request and the added µs over the bare app.

    .venv/bin/python benchmarks/bench_asgi_parts.py [--rounds 30] [--batch 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import io
import statistics
import time
from typing import Any

import graffer_secevents as secevents
from graffer_secevents._context import _request
from graffer_secevents._request_id import accept_request_id, new_request_id
from graffer_secevents.integrations.asgi import _REQUEST_ID, AsgiRequestContext, SecurityEventsMiddleware

START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
BODY = {"type": "http.response.body", "body": b'{"message":"hello"}'}
SCOPE = {
    "type": "http",
    "method": "GET",
    "path": "/",
    "headers": [(b"host", b"x"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
    "client": ("203.0.113.7", 1234),
}
_var: contextvars.ContextVar[Any] = contextvars.ContextVar("bench", default=None)


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send(dict(START))
    await send(BODY)


def wrapper(step: str) -> Any:
    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        ctx = AsgiRequestContext(scope) if step != "ctx_send" else None

        async def send_wrapper(message: Any) -> None:
            if ctx is not None and message["type"] == "http.response.start":
                ctx.status_code = message["status"]
                if step != "+context":
                    raw = ctx._raw_request_id() if step == "+upstream_id" else None
                    rid = accept_request_id(raw) if step == "+upstream_id" else new_request_id()
                    message["headers"] = [*message["headers"], (_REQUEST_ID, rid.encode("ascii"))]
            await send(message)

        token = (_var if ctx is None else _request).set(ctx if ctx is not None else scope)
        try:
            await app(scope, receive, send_wrapper)
        finally:
            (_var if ctx is None else _request).reset(token)

    return middleware


async def receive() -> dict[str, Any]:
    return {"type": "http.request"}


async def send(message: Any) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    secevents.configure(output=io.StringIO(), metrics="none", hash_key="bench-key-of-16-bytes")
    variants: dict[str, Any] = {"bare": app}
    for step in ("ctx_send", "+context", "+new_id", "+upstream_id"):
        variants[step] = wrapper(step)
    variants["ours"] = SecurityEventsMiddleware(app)

    async def batch(target: Any, n: int) -> None:
        for _ in range(n):
            await target(dict(SCOPE), receive, send)

    loop = asyncio.new_event_loop()
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds + 1):
        for name, target in variants.items():
            gc.collect()
            gc.disable()
            start = time.perf_counter()
            loop.run_until_complete(batch(target, args.batch))
            results[name].append((time.perf_counter() - start) / args.batch * 1e6)
            gc.enable()
    bare = statistics.median(results["bare"][1:])
    print("| variant | median µs/request | added µs |")
    print("|---|---:|---:|")
    for name, values in results.items():
        median = statistics.median(values[1:])
        print(f"| {name} | {median:.2f} | {median - bare:+.2f} |")


if __name__ == "__main__":
    main()
