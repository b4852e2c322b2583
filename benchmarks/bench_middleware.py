"""Per-request overhead of the secevents middleware, in-process, against the same app without it.

Each framework serves a hello-world ``GET /`` that returns ``{"message": "hello"}`` and emits no event. The
apps are called directly (no server, no sockets): the WSGI callable with a fresh environ, the ASGI app with a
fresh scope in one event loop. Variants run in interleaved rounds in one process (the order shuffled every
round), and each variant's ratio is the median of its per-round ratios to the same framework's bare app, so
slow stretches of this noisy VM hit both sides of a ratio alike. Starlette's ``BaseHTTPMiddleware`` (doing
the same small job as the reference: a contextvar set and reset) is measured the same way for comparison.

Two more variants per framework show what the issue's requirements cost before any of our code runs:

* ``*_contextvar``: a minimal reference middleware, which only
  puts ``{method, path, client}`` into a contextvar and resets it;
* ``*_floor``: the least code we know that does what the issue requires of every request: bind the request
  (Flask: none; Flask's own request context can carry it), record the status, take a valid upstream
  ``X-Request-ID`` or generate one, and echo it on the response. No lazy context object, no check for the
  application's own ``X-Request-ID``, no denied-request rules, no error handling. It is not shippable; it is
  the lower bound for the ``*_secevents`` row.

Each of ``--processes`` worker processes (one after another, each with its own hash seed) runs the
interleaved rounds; the table gives the median over processes of each process's median ratio, and every
process's ratio, because one process can favour one app object over another for its whole run.

Run::

    .venv/bin/python benchmarks/bench_middleware.py                           # 5 processes x 40 rounds
    .venv/bin/python benchmarks/bench_middleware.py --processes 1 --rounds 10  # quicker, noisier
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import io
import json
import os
import random
import statistics
import subprocess
import sys
import time
import types
import warnings
from collections.abc import Callable
from typing import Any

import graffer_secevents as secevents
from graffer_secevents._request_id import accept_request_id, new_request_id

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

    class Minimal:  # the reference's pure ASGI middleware
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            token = reference.set({"method": scope["method"], "path": scope["path"], "ip": scope["client"]})
            try:
                await self.app(scope, receive, send)
            finally:
                reference.reset(token)

    class Floor:  # the required work only (see the module docstring)
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            state = [scope, None, None]

            def send_with_id(message: Any) -> Any:
                if message["type"] == "http.response.start":
                    state[1] = message["status"]
                    for key, value in scope["headers"]:
                        if key == b"x-request-id":
                            request_id = accept_request_id(value.decode("latin-1"))
                            break
                    else:
                        request_id = new_request_id()
                    state[2] = request_id
                    message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
                return send(message)

            token = reference.set(state)
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                reference.reset(token)

    apps = {"fastapi_none": make()}
    for name, middleware in (
        ("secevents", SecurityEventsMiddleware),
        ("basehttp", Base),
        ("contextvar", Minimal),
        ("floor", Floor),
    ):
        app = make()
        app.add_middleware(middleware)
        apps[f"fastapi_{name}"] = app
    return apps


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

    reference: contextvars.ContextVar[Any] = contextvars.ContextVar("reference", default=None)

    class Minimal:  # the reference's job, as a WSGI wrapper of app.wsgi_app
        def __init__(self, app: Any) -> None:
            self.app = app

        def __call__(self, environ: Any, start_response: Any) -> Any:
            token = reference.set(
                {
                    "method": environ["REQUEST_METHOD"],
                    "path": environ["PATH_INFO"],
                    "ip": environ["REMOTE_ADDR"],
                }
            )
            try:
                return self.app(environ, start_response)
            finally:
                reference.reset(token)

    class Floor:  # the required work only; no contextvar (Flask's request context carries the environ)
        def __init__(self, app: Any) -> None:
            self.app = app

        def __call__(self, environ: Any, start_response: Any) -> Any:
            def start_response_with_id(
                status: str, headers: list[tuple[str, str]], exc_info: Any = None
            ) -> Any:
                request_id = accept_request_id(environ.get("HTTP_X_REQUEST_ID"))
                environ["secevents.response"] = (status, request_id)
                return start_response(status, [*headers, ("X-Request-ID", request_id)], exc_info)

            return self.app(environ, start_response_with_id)

    apps = {"flask_none": make()}
    ours = make()
    SecurityEvents(ours)
    apps["flask_secevents"] = ours
    for name, middleware in (("contextvar", Minimal), ("floor", Floor)):
        app = make()
        app.wsgi_app = middleware(app.wsgi_app)  # type: ignore[method-assign]
        apps[f"flask_{name}"] = app
    return apps


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

    reference: contextvars.ContextVar[Any] = contextvars.ContextVar("reference", default=None)

    class Minimal:  # the reference's MIDDLEWARE class
        def __init__(self, get_response: Any) -> None:
            self.get_response = get_response

        def __call__(self, request: Any) -> Any:
            token = reference.set(
                {"method": request.method, "path": request.path, "ip": request.META["REMOTE_ADDR"]}
            )
            try:
                return self.get_response(request)
            finally:
                reference.reset(token)

    class Floor:  # the required work only
        def __init__(self, get_response: Any) -> None:
            self.get_response = get_response

        def __call__(self, request: Any) -> Any:
            state = [request, None, None]
            token = reference.set(state)
            try:
                response = self.get_response(request)
                state[1] = response.status_code
                request_id = state[2] = accept_request_id(request.META.get("HTTP_X_REQUEST_ID"))
                response.headers._store.setdefault("x-request-id", ("X-Request-ID", request_id))
                return response
            finally:
                reference.reset(token)

    middleware_module = types.ModuleType("bench_django_middleware")
    middleware_module.Minimal = Minimal  # type: ignore[attr-defined]
    middleware_module.Floor = Floor  # type: ignore[attr-defined]
    sys.modules[middleware_module.__name__] = middleware_module
    apps = {"django_none": WSGIHandler()}
    for name, dotted in (
        ("secevents", "graffer_secevents.integrations.django.SecurityEventsMiddleware"),
        ("contextvar", "bench_django_middleware.Minimal"),
        ("floor", "bench_django_middleware.Floor"),
    ):
        settings.MIDDLEWARE = [dotted]
        apps[f"django_{name}"] = WSGIHandler()
    return apps


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
    """Make sure each secevents and floor variant really echoes the request id."""
    seen: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen.append(dict(headers).get("X-Request-ID"))

    for name, app in apps.items():
        if not name.endswith(("_secevents", "_floor")):
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


def measure(rounds: int, batch: int, seed: int) -> dict[str, dict[str, float]]:
    """One process's interleaved rounds: per variant, the median µs/request, min, max and median ratio."""
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
        run(batch)

    rng = random.Random(seed)
    per_request: dict[str, list[float]] = {name: [] for name in runners}
    ratios: dict[str, list[float]] = {name: [] for name in runners}
    order = list(runners)
    for _ in range(rounds):
        rng.shuffle(order)
        this_round: dict[str, float] = {}
        for name in order:
            gc.collect()
            gc.disable()
            try:
                this_round[name] = runners[name](batch) / batch * 1e6
            finally:
                gc.enable()
        for name, micros in this_round.items():
            per_request[name].append(micros)
            ratios[name].append(micros / this_round[name.split("_")[0] + "_none"])
    loop.close()
    return {
        name: {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "ratio": statistics.median(ratios[name]),
        }
        for name, values in per_request.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40, help="interleaved rounds per process")
    parser.add_argument("--batch", type=int, default=300, help="requests per variant per round")
    parser.add_argument("--processes", type=int, default=5, help="worker processes, one after another")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # a worker's output
    args = parser.parse_args()

    if args.json or args.processes <= 1:
        results = [measure(args.rounds, args.batch, args.seed)]
        if args.json:
            print(json.dumps(results[0]))
            return
    else:
        # One process has a layout of its own (hash seed, memory addresses) that can favour one app object
        # over another by a few per cent for the whole run, whatever the number of rounds; the median over
        # processes, each with its own hash seed, removes that bias.
        results = []
        for index in range(args.processes):
            env = {**os.environ, "PYTHONHASHSEED": str(random.randrange(1, 2**32))}
            command = [
                sys.executable, __file__, "--json", "--rounds", str(args.rounds),
                "--batch", str(args.batch), "--seed", str(args.seed + index),
            ]  # fmt: skip
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))

    print(
        f"in-process, {len(results)} process(es) x {args.rounds} interleaved rounds x {args.batch} requests "
        f"per variant; Python {sys.version.split()[0]}"
    )
    print()
    print(
        "| variant | median µs/request | ratio to bare (median over processes of the median per-round ratio) "
        "| per-process ratios | ≈ added µs |"
    )
    print("|---|---:|---:|---|---:|")
    for name in sorted(results[0]):
        micros = statistics.median(result[name]["median"] for result in results)
        each = [result[name]["ratio"] for result in results]
        ratio = statistics.median(each)
        bare = statistics.median(result[name.split("_")[0] + "_none"]["median"] for result in results)
        added = "—" if name.endswith("_none") else f"{(ratio - 1) * bare:+.1f}"
        spread = ", ".join(f"{value:.3f}" for value in each)
        print(f"| {name} | {micros:.1f} | **{ratio:.3f}x** | {spread} | {added} |")


if __name__ == "__main__":
    main()
