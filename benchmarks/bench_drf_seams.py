"""Per-request cost of the Django seams on a DRF request authenticated by a token that writes no event.

The same Django project — `django.contrib.auth`, DRF with `rest_framework.authtoken`, an in-memory SQLite
database, one account and its token — serves `GET /me/` (an `APIView` with `TokenAuthentication` and
`IsAuthenticated`, answering `{"id": pk}`), called in-process through the WSGI handler with a valid
`Authorization: Token ...` header:

* `bare`: without the library;
* `middleware`: `SecurityEventsMiddleware` first in `MIDDLEWARE`, but not the app (so no seam);
* `secevents`: as documented, the middleware and `graffer_secevents.integrations.django` in
  `INSTALLED_APPS`, which installs every seam (DRF's authentication loop and permission check, the user
  model's `from_db` and `post_save` receiver, the backends, the password forms). The seams' own cost is
  the difference between the last two rows.

The seams are process-wide (they wrap DRF's and Django's classes), so each variant lives in its own worker
process; the parent keeps both alive and has them run their batches in interleaved rounds (the order
shuffled every round), so a slow stretch of this noisy machine hits both sides of a ratio alike. Each
round's ratio is secevents ÷ bare; the table gives the median µs per request and the median ratio.

A whole DRF request on a loaded machine varies by more than the seams cost, so `--parts` also times, in one
process and interleaved, the two pieces of seam code this request runs against the same code without them:
DRF's `Request._authenticate` wrapped vs the original (`__wrapped__`), with a class that returns a user
without touching the database, and a user-model row loaded (`from_db`, which the seam wraps to note the
accounts an authentication class loads) vs the original `from_db`.

Run::

    .venv/bin/python benchmarks/bench_drf_seams.py                 # 30 rounds x 200 requests
    .venv/bin/python benchmarks/bench_drf_seams.py --rounds 10     # quicker, noisier
    .venv/bin/python benchmarks/bench_drf_seams.py --parts         # the seams' own code, in ns per call
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import random
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from typing import Any

PEER = "203.0.113.7"
VARIANTS = ("bare", "middleware", "secevents")
WRITTEN = io.StringIO()  # where the secevents variant's records would go (it must write none)


def build(variant: str) -> tuple[Any, str]:
    """The WSGI handler of the project for `variant`, and a valid token for its account."""
    from django.conf import settings

    urls = types.ModuleType("bench_drf_urls")
    sys.modules[urls.__name__] = urls
    ours = variant == "secevents"
    middleware = variant != "bare"
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only",
        ALLOWED_HOSTS=["localhost"],
        ROOT_URLCONF=urls.__name__,
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "rest_framework",
            "rest_framework.authtoken",
            *(["graffer_secevents.integrations.django"] if ours else []),
        ],
        MIDDLEWARE=["graffer_secevents.integrations.django.SecurityEventsMiddleware"] if middleware else [],
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.TokenAuthentication"],
            "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
            "UNAUTHENTICATED_USER": None,
        },
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    import django

    django.setup()
    if middleware:
        import graffer_secevents as secevents

        secevents.configure(
            output=WRITTEN, metrics="none", delivery="sync", hash_key="bench-only-key-0123456789"
        )
    from django.contrib.auth import get_user_model
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from django.urls import path
    from rest_framework.authtoken.models import Token
    from rest_framework.response import Response
    from rest_framework.views import APIView

    class Me(APIView):
        def get(self, request: Any) -> Response:
            return Response({"id": request.user.pk})

    urls.urlpatterns = [path("me/", Me.as_view())]  # type: ignore[attr-defined]
    call_command("migrate", verbosity=0, interactive=False)
    user = get_user_model().objects.create_user("bench", "bench@example.com", "bench-password")
    return WSGIHandler(), Token.objects.create(user=user).key


def worker(variant: str) -> None:
    """Serve batches on request: read a batch size per line, answer the elapsed seconds."""
    handler, key = build(variant)
    template = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/me/",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": PEER,
        "HTTP_HOST": "localhost",
        "HTTP_AUTHORIZATION": f"Token {key}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.errors": sys.stderr,
    }
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        statuses.append(status)

    def batch(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            environ = dict(template)
            environ["wsgi.input"] = io.BytesIO(b"")
            body = handler(environ, start_response)
            for _chunk in body:
                pass
            body.close()
        return time.perf_counter() - start

    batch(50)  # warm-up, and a check that the token is accepted
    assert set(statuses) == {"200 OK"}, statuses
    assert WRITTEN.getvalue() == "", f"the request wrote an event: {WRITTEN.getvalue()[:200]}"
    print("ready", flush=True)
    for line in sys.stdin:
        n = int(line)
        gc.collect()
        gc.disable()
        try:
            elapsed = batch(n)
        finally:
            gc.enable()
        print(json.dumps(elapsed), flush=True)


def parts(rounds: int, batch: int, seed: int) -> None:
    """The seam code a token-authenticated DRF request runs, against the same calls without it."""
    build("secevents")
    from django.contrib.auth import get_user_model
    from django.test import RequestFactory
    from rest_framework.request import Request

    model = get_user_model()
    user = model.objects.get(username="bench")

    class Stub:
        def authenticate(self, request: Any) -> tuple[Any, None]:
            return user, None

    django_request = RequestFactory().get("/me/")
    wrapped = Request._authenticate
    original = wrapped.__wrapped__  # type: ignore[attr-defined]

    def loop(function: Any) -> Callable[[int], float]:
        def run(n: int) -> float:
            requests = [Request(django_request, authenticators=(Stub(),)) for _ in range(n)]
            start = time.perf_counter()
            for request in requests:
                function(request)
            return time.perf_counter() - start

        return run

    names = [field.attname for field in model._meta.concrete_fields]
    values = [getattr(user, name) for name in names]
    load = model.from_db.__func__.__closure__  # the wrapped function is the seam's closure's `load`
    original_from_db = next(cell.cell_contents for cell in load if callable(cell.cell_contents))

    def rows(seam: bool) -> Callable[[int], float]:
        def run(n: int) -> float:
            start = time.perf_counter()
            if seam:
                for _ in range(n):
                    model.from_db("default", names, values)
            else:
                for _ in range(n):
                    original_from_db(model, "default", names, values)
            return time.perf_counter() - start

        return run

    runners = {
        "authenticate_bare": loop(original),
        "authenticate_seam": loop(wrapped),
        "user_row_bare": rows(False),
        "user_row_seam": rows(True),
    }
    rng = random.Random(seed)
    nanos: dict[str, list[float]] = {name: [] for name in runners}
    order = list(runners)
    for run in runners.values():
        run(batch)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            gc.collect()
            gc.disable()
            try:
                nanos[name].append(runners[name](batch) / batch * 1e9)
            finally:
                gc.enable()
    print(f"the seams' own code, in-process, {rounds} interleaved rounds x {batch} calls")
    print()
    print("| call | without the seam, ns | with it, ns | added ns |")
    print("|---|---:|---:|---:|")
    for label, key in (("DRF `Request._authenticate` (a class returning a user)", "authenticate"),
                       ("a user-model row loaded (`from_db`)", "user_row")):  # fmt: skip
        bare, seam = statistics.median(nanos[key + "_bare"]), statistics.median(nanos[key + "_seam"])
        print(f"| {label} | {bare:.0f} | {seam:.0f} | {seam - bare:+.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--parts", action="store_true", help="time the seams' own code instead")
    args = parser.parse_args()
    if args.parts:
        parts(args.rounds, args.batch * 10, args.seed)
        return
    if args.worker:
        worker(args.worker)
        return

    workers = {
        name: subprocess.Popen(
            [sys.executable, __file__, "--worker", name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in VARIANTS
    }
    for proc in workers.values():
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    rng = random.Random(args.seed)
    micros: dict[str, list[float]] = {name: [] for name in workers}
    ratios: dict[str, list[float]] = {name: [] for name in workers}
    order = list(workers)
    for _ in range(args.rounds):
        rng.shuffle(order)
        this_round: dict[str, float] = {}
        for name in order:
            proc = workers[name]
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.write(f"{args.batch}\n")
            proc.stdin.flush()
            this_round[name] = json.loads(proc.stdout.readline()) / args.batch * 1e6
        for name, value in this_round.items():
            micros[name].append(value)
        for name, value in this_round.items():
            ratios[name].append(value / this_round["bare"])
    for proc in workers.values():
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)

    bare = statistics.median(micros["bare"])
    print(f"DRF token request, in-process WSGI, {args.rounds} interleaved rounds x {args.batch} requests; "
          f"Python {sys.version.split()[0]}")  # fmt: skip
    print()
    print("| variant | median µs/request | ratio to bare (median per-round) | ≈ added µs |")
    print("|---|---:|---:|---:|")
    labels = {
        "bare": "DRF + token, no library",
        "middleware": "DRF + token, `SecurityEventsMiddleware` only (no seam)",
        "secevents": "DRF + token, the library as documented (app + middleware, every seam)",
    }
    for name in VARIANTS:
        ratio = statistics.median(ratios[name])
        added = "—" if name == "bare" else f"{(ratio - 1) * bare:+.1f}"
        print(f"| {labels[name]} | {statistics.median(micros[name]):.1f} | **{ratio:.3f}x** | {added} |")


if __name__ == "__main__":
    main()
