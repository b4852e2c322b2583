"""Per-request overhead of the secevents middleware, in-process, against the same app without it.

Each framework serves a hello-world ``GET /`` that returns ``{"message": "hello"}`` and emits no event. The
apps are called directly (no server, no sockets): the WSGI callable with a fresh environ, the ASGI app with a
fresh scope in one event loop. Variants run in interleaved rounds in one process (the order shuffled every
round), and each variant's ratio is the median of its per-round ratios to the same framework's bare app, so
slow stretches of this noisy VM hit both sides of a ratio alike. Starlette's ``BaseHTTPMiddleware`` (doing
the same small job as the reference: a contextvar set and reset) is measured the same way for comparison.

``fastapiauth_*`` is a request authenticated by a ``fastapi.security`` dependency (``HTTPBearer`` and a
valid token), which writes no event, with and without the middleware.

Two more variants per framework show what the issue's requirements cost before any of our code runs:

* ``*_contextvar``: a minimal reference middleware, which only
  puts ``{method, path, client}`` into a contextvar and resets it;
* ``*_floor``: the least code we know that does what the issue requires of every request: bind the request
  (Flask: none; Flask's own request context can carry it), record the status, take a valid upstream
  ``X-Request-ID`` or generate one, and echo it on the response. No lazy context object, no check for the
  application's own ``X-Request-ID``, no denied-request rules, no error handling. It is not shippable; it is
  the lower bound for the ``*_secevents`` row.

The peers a team would otherwise install for the request-id part of the job run in the same rounds, each
configured the way its README says (``*_<package>`` rows): asgi-correlation-id's ``CorrelationIdMiddleware``
and starlette-context's ``ContextMiddleware`` with its ``RequestIdPlugin`` and ``CorrelationIdPlugin``
(FastAPI); django-guid's ``guid_middleware`` and django-structlog's ``RequestMiddleware``, which also writes
its ``request_started``/``request_finished`` lines through the structlog + ``logging`` configuration of its
README, here into memory (Django); flask-log-request-id's ``RequestID`` extension (Flask). Before timing,
each ours, floor and peer variant is checked to really echo or set its request id.

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

    # The peers, as their READMEs set them up.
    from asgi_correlation_id import CorrelationIdMiddleware
    from starlette_context import plugins
    from starlette_context.middleware import ContextMiddleware

    app = make()
    app.add_middleware(CorrelationIdMiddleware)
    apps["fastapi_asgi_correlation_id"] = app
    app = make()
    app.add_middleware(ContextMiddleware, plugins=(plugins.RequestIdPlugin(), plugins.CorrelationIdPlugin()))
    apps["fastapi_starlette_context"] = app

    # A request authenticated by a fastapi.security dependency that writes no event (a valid bearer token),
    # against the same app without the library: what the HTTP semantics and login-route seams cost when
    # nothing happens.
    apps["fastapiauth_none"] = make_authenticated()
    app = make_authenticated()
    app.add_middleware(SecurityEventsMiddleware)
    apps["fastapiauth_secevents"] = app
    return apps


AUTHORIZATION = (b"authorization", b"Bearer good-token")


def make_authenticated() -> Any:
    from typing import Annotated

    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

    bearer = HTTPBearer()

    async def current_user(credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)]) -> str:
        if credentials.credentials != "good-token":
            raise HTTPException(status_code=401)
        return "ada"

    app = FastAPI()

    @app.get("/")
    async def hello(user: Annotated[str, Depends(current_user)]) -> dict[str, str]:
        return {"message": "hello", "user": user}

    return app


def asgi_runner(app: Any, loop: asyncio.AbstractEventLoop, name: str = "") -> Callable[[int], float]:
    headers = [(b"host", b"localhost"), (b"user-agent", UA.encode()), (b"accept", b"*/*")]
    if name.startswith("fastapiauth"):
        headers.append(AUTHORIZATION)
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

    from flask_log_request_id import RequestID

    app = make()
    RequestID(app)
    apps["flask_log_request_id"] = app
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
        INSTALLED_APPS=["django_guid", "django_structlog"],  # both READMEs' first step
        MIDDLEWARE=[],
        USE_TZ=True,
    )
    import django

    django.setup()
    configure_django_structlog()
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
        ("guid", "django_guid.middleware.guid_middleware"),
        ("structlog", "django_structlog.middlewares.RequestMiddleware"),
    ):
        settings.MIDDLEWARE = [dotted]
        apps[f"django_{name}"] = WSGIHandler()
    return apps


DJANGO_STRUCTLOG_LINES = io.StringIO()  # where django-structlog's request lines go (see the docstring)


def configure_django_structlog() -> None:
    """django-structlog's README configuration: structlog through ``logging``, JSON lines, at INFO."""
    import logging

    import structlog

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(DJANGO_STRUCTLOG_LINES)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(processor=structlog.processors.JSONRenderer()))
    logger = logging.getLogger("django_structlog")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def django_guid_signal(connected: bool) -> None:
    """django-guid clears its id on Django's ``request_finished`` signal, which every Django variant sends:
    connected only while the django-guid variant runs, so it costs the other rows nothing."""
    from django.core.signals import request_finished
    from django_guid.signals import clear_guid

    if connected:
        request_finished.connect(clear_guid)
    else:
        request_finished.disconnect(clear_guid)


def wsgi_runner(app: Any, name: str = "") -> Callable[[int], float]:
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

    guid = name == "django_guid"

    def run(n: int) -> float:
        if guid:
            django_guid_signal(True)
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
        elapsed = time.perf_counter() - start
        if guid:
            django_guid_signal(False)
        return elapsed

    return run


# --- the run -----------------------------------------------------------------------------------------------


# The header each variant echoes its request id in; None: it does not echo, checked another way below.
ECHOED = {
    "fastapi_asgi_correlation_id": "x-request-id",
    "fastapi_starlette_context": "x-request-id",
    "django_guid": "correlation-id",
    "django_structlog": None,
    "flask_log_request_id": None,
}
PEERS = tuple(ECHOED)


def check(apps: dict[str, Any], loop: asyncio.AbstractEventLoop) -> list[str]:
    """Make sure each secevents, floor and peer variant really echoes or sets a request id; say how."""
    checked: list[str] = []
    for name, app in apps.items():
        if not name.endswith(("_secevents", "_floor")) and name not in PEERS:
            continue
        header = ECHOED.get(name, "x-request-id")
        if name.startswith("fastapi"):
            response_headers = {k.decode().lower(): v.decode() for k, v in asgi_call(app, loop)}
        elif name == "flask_log_request_id":
            # It keeps the id in flask.g and does not echo it: run the app's before_request hooks.
            from flask import g

            with app.test_request_context("/", headers={"X-Request-ID": "peer-check-1"}):
                app.preprocess_request()
                assert g.log_request_id == "peer-check-1", name
            with app.test_request_context("/"):
                app.preprocess_request()
                assert len(g.log_request_id) == 36, name  # a generated uuid4
            checked.append(f"{name}: flask.g.log_request_id set (upstream kept, else generated)")
            continue
        else:
            if name == "django_guid":
                django_guid_signal(True)
            DJANGO_STRUCTLOG_LINES.seek(0)
            DJANGO_STRUCTLOG_LINES.truncate()
            response_headers = {k.lower(): v for k, v in wsgi_call(app)}
            if name == "django_guid":
                django_guid_signal(False)
        if header is None:  # django-structlog: the id is on its request lines
            lines = [json.loads(line) for line in DJANGO_STRUCTLOG_LINES.getvalue().splitlines()]
            events = [line["event"] for line in lines]
            assert events == ["request_started", "request_finished"], (name, events)
            request_id = lines[0]["request_id"]
            assert request_id, name
            assert all(line["request_id"] == request_id for line in lines), name
            checked.append(f"{name}: request_id {request_id} on its request_started/finished lines")
            continue
        assert response_headers.get(header), (name, response_headers)
        checked.append(f"{name}: echoed {header}: {response_headers[header]}")
    return checked


def asgi_call(app: Any, loop: asyncio.AbstractEventLoop) -> list[tuple[bytes, bytes]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
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
    return list(sent[0]["headers"])


def wsgi_call(app: Any) -> list[tuple[str, str]]:
    seen: list[list[tuple[str, str]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen.append(headers)

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
    body = app(environ, start_response)
    list(body)
    close = getattr(body, "close", None)
    if close is not None:
        close()
    return seen[-1]


def measure(rounds: int, batch: int, seed: int) -> tuple[dict[str, dict[str, float]], list[str]]:
    """One process's interleaved rounds: per variant, the median µs/request, min, max and median ratio;
    and how each variant's request id was checked."""
    secevents.configure(output=io.StringIO(), metrics="none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        apps = {**fastapi_apps(), **flask_apps(), **django_apps()}
    loop = asyncio.new_event_loop()
    runners = {
        name: (asgi_runner(app, loop, name) if name.startswith("fastapi") else wsgi_runner(app, name))
        for name, app in apps.items()
    }
    checked = check(apps, loop)
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
    stats = {
        name: {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "ratio": statistics.median(ratios[name]),
        }
        for name, values in per_request.items()
    }
    return stats, checked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40, help="interleaved rounds per process")
    parser.add_argument("--batch", type=int, default=300, help="requests per variant per round")
    parser.add_argument("--processes", type=int, default=5, help="worker processes, one after another")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # a worker's output
    args = parser.parse_args()

    if args.json or args.processes <= 1:
        stats, checked = measure(args.rounds, args.batch, args.seed)
        results = [stats]
        if args.json:
            print(json.dumps({"stats": stats, "checked": checked}))
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
            worker = json.loads(done.stdout.strip().splitlines()[-1])
            results.append(worker["stats"])
            checked = worker["checked"]

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
    print()
    print("| peer | its ratio / ours (median over processes) |")
    print("|---|---:|")
    for name in PEERS:
        ours = name.split("_")[0] + "_secevents"
        relative = statistics.median(result[name]["ratio"] / result[ours]["ratio"] for result in results)
        print(f"| {name} vs {ours} | {relative:.3f}x |")
    print()
    for line in checked:
        print(f"request id checked: {line}")


if __name__ == "__main__":
    main()
