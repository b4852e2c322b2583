"""Per-request overhead of the secevents middleware, in-process, against the same app without it.

Each framework serves a hello-world ``GET /`` that returns ``{"message": "hello"}`` and emits no event. The
apps are called directly (no server, no sockets): the WSGI callable with a fresh environ, the ASGI app with a
fresh scope in one event loop. Variants run in interleaved rounds in one process (the order shuffled every
round), and each variant's ratio is the median of its per-round ratios to the same framework's bare app, so
slow stretches of this noisy VM hit both sides of a ratio alike. Starlette's ``BaseHTTPMiddleware`` (doing
the same small job as the reference: a contextvar set and reset) is measured the same way for comparison.

Run::

    .venv/bin/python benchmarks/bench_middleware.py              # 40 rounds of 300 requests per variant
    .venv/bin/python benchmarks/bench_middleware.py --rounds 10  # quicker, noisier
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import io
import random
import statistics
import sys
import time
import types
import warnings
from collections.abc import Callable
from typing import Any

import graffer_secevents as secevents

PEER = "203.0.113.7"
UA = "bench/1.0"

# --- ASGI: FastAPI -----------------------------------------------------------------------------------------


def fastapi_apps() -> dict[str, Any]:
    from fastapi import FastAPI
    from starlette.middleware.base import BaseHTTPMiddleware

    from graffer_secevents.integrations.fastapi import SecurityEventsMiddleware

    def make() -> FastAPI:
        app = FastAPI()

        @app.get("/")
        async def hello() -> dict[str, str]:
            return {"message": "hello"}

        return app

    reference: contextvars.ContextVar[Any] = contextvars.ContextVar("reference", default=None)

    class Base(BaseHTTPMiddleware):
        async def dispatch(self, request: Any, call_next: Any) -> Any:
            token = reference.set({"method": request.method, "path": request.url.path, "ip": request.client})
            try:
                return await call_next(request)
            finally:
                reference.reset(token)

    bare = make()
    ours = make()
    ours.add_middleware(SecurityEventsMiddleware)
    base = make()
    base.add_middleware(Base)
    return {"fastapi_none": bare, "fastapi_secevents": ours, "fastapi_basehttp": base}


def asgi_runner(app: Any, loop: asyncio.AbstractEventLoop) -> Callable[[int], float]:
    headers = [(b"host", b"localhost"), (b"user-agent", UA.encode()), (b"accept", b"*/*")]
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: dict[str, Any]) -> None:
        return None

    async def batch(n: int) -> None:
        for _ in range(n):
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": "/",
                "raw_path": b"/",
                "root_path": "",
                "query_string": b"",
                "headers": list(headers),
                "client": (PEER, 50000),
                "server": ("localhost", 80),
                "state": {},
            }
            await app(scope, receive, send)

    def run(n: int) -> float:
        start = time.perf_counter()
        loop.run_until_complete(batch(n))
        return time.perf_counter() - start

    return run


# --- WSGI: Flask and Django --------------------------------------------------------------------------------


def flask_apps() -> dict[str, Any]:
    from flask import Flask

    from graffer_secevents.integrations.flask import SecurityEvents

    def make() -> Flask:
        app = Flask("bench")

        @app.get("/")
        def hello() -> dict[str, str]:
            return {"message": "hello"}

        return app

    ours = make()
    SecurityEvents(ours)
    return {"flask_none": make(), "flask_secevents": ours}


def django_apps() -> dict[str, Any]:
    from django.conf import settings

    module = types.ModuleType("bench_django_urls")
    sys.modules[module.__name__] = module
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only",
        ALLOWED_HOSTS=["localhost"],
        ROOT_URLCONF=module.__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        USE_TZ=True,
    )
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import JsonResponse
    from django.urls import path

    def hello(request: Any) -> JsonResponse:
        return JsonResponse({"message": "hello"})

    module.urlpatterns = [path("", hello)]  # type: ignore[attr-defined]
    bare = WSGIHandler()
    settings.MIDDLEWARE = ["graffer_secevents.integrations.django.SecurityEventsMiddleware"]
    ours = WSGIHandler()
    return {"django_none": bare, "django_secevents": ours}


def wsgi_runner(app: Any) -> Callable[[int], float]:
    template = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": PEER,
        "HTTP_HOST": "localhost",
        "HTTP_USER_AGENT": UA,
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.errors": sys.stderr,
    }

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return None

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            environ = dict(template)
            environ["wsgi.input"] = io.BytesIO(b"")
            body = app(environ, start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return time.perf_counter() - start

    return run


# --- the run -----------------------------------------------------------------------------------------------


def check(runners: dict[str, Any], apps: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
    """Make sure each secevents variant really binds a context and echoes the request id."""
    seen: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen.append(dict(headers).get("X-Request-ID"))

    for name, app in apps.items():
        if not name.endswith("_secevents"):
            continue
        if name.startswith("fastapi"):
            sent: list[dict[str, Any]] = []

            async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
                sent.append(message)

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b""}

            scope = {
                "type": "http",
                "method": "GET",
                "path": "/",
                "raw_path": b"/",
                "root_path": "",
                "query_string": b"",
                "headers": [],
                "client": (PEER, 1),
                "server": ("localhost", 80),
                "scheme": "http",
                "http_version": "1.1",
                "asgi": {"version": "3.0"},
            }
            loop.run_until_complete(app(scope, receive, send))
            assert any(k == b"x-request-id" for k, _ in sent[0]["headers"]), name
        else:
            environ = {
                "REQUEST_METHOD": "GET",
                "PATH_INFO": "/",
                "SERVER_NAME": "localhost",
                "SERVER_PORT": "80",
                "HTTP_HOST": "localhost",
                "REMOTE_ADDR": PEER,
                "wsgi.input": io.BytesIO(b""),
                "wsgi.url_scheme": "http",
                "wsgi.errors": sys.stderr,
            }
            list(app(environ, start_response))
            assert seen[-1], name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--batch", type=int, default=300, help="requests per variant per round")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    secevents.configure(output=io.StringIO(), metrics="none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        apps = {**fastapi_apps(), **flask_apps(), **django_apps()}
    loop = asyncio.new_event_loop()
    runners = {
        name: (asgi_runner(app, loop) if name.startswith("fastapi") else wsgi_runner(app))
        for name, app in apps.items()
    }
    check(runners, apps, loop)
    for run in runners.values():  # warm-up
        run(args.batch)

    rng = random.Random(args.seed)
    per_request: dict[str, list[float]] = {name: [] for name in runners}
    ratios: dict[str, list[float]] = {name: [] for name in runners}
    order = list(runners)
    for _ in range(args.rounds):
        rng.shuffle(order)
        this_round: dict[str, float] = {}
        for name in order:
            gc.collect()
            gc.disable()
            try:
                this_round[name] = runners[name](args.batch) / args.batch * 1e6
            finally:
                gc.enable()
        for name, micros in this_round.items():
            per_request[name].append(micros)
            ratios[name].append(micros / this_round[name.split("_")[0] + "_none"])

    print(f"in-process, {args.rounds} interleaved rounds x {args.batch} requests per variant")
    print(f"Python {sys.version.split()[0]}")
    print()
    print("| variant | median µs/request | min | max | ratio to bare (median of per-round) | ≈ added µs |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in sorted(runners):
        values = per_request[name]
        ratio = statistics.median(ratios[name])
        bare = statistics.median(per_request[name.split("_")[0] + "_none"])
        added = "—" if name.endswith("_none") else f"{(ratio - 1) * bare:+.1f}"
        print(
            f"| {name} | {statistics.median(values):.1f} | {min(values):.1f} | {max(values):.1f} "
            f"| **{ratio:.3f}x** | {added} |"
        )
    loop.close()


if __name__ == "__main__":
    main()
