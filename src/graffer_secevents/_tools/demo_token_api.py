"""The token-API part of `secevents demo`: a brute force against the Django example's simplejwt endpoint.

`examples/django_app` (its `/api/token/` is simplejwt's `TokenObtainPairView`) is served on 127.0.0.1
(an ephemeral port, in a background thread) with a throwaway SQLite database; the demo is its reverse proxy
(127.0.0.1 is a trusted proxy, each client's address goes in `X-Forwarded-For`). The records go through the
demo's own configuration. The example needs Django, Django REST framework and simplejwt; without them, or
when this process already runs another Django project (settings are once per process), the part is skipped
with a note.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from graffer_secevents._config import get_config, set_config
from graffer_secevents._errors import SecEventsWarning

from .examples_path import example_path

__all__ = ["run_token_api_demo"]

_EXAMPLE = example_path("django_app")
ATTACKER = "203.0.113.77"
GUESSES = 6


class _UnavailableError(Exception):
    pass


def run_token_api_demo(step: Callable[[str], None]) -> None:
    """Serve the Django example's token API on 127.0.0.1 and brute-force it; never raises."""
    try:
        app = _django_example()
    except _UnavailableError as exc:
        step(f"token API part skipped: {exc}")
        return
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

    with serving(make_server("127.0.0.1", 0, app, handler_class=QuietHandler)) as base:
        step(f"examples/django_app's token API (DRF + simplejwt) is serving on {base}")
        _drive(base, step)


@contextmanager
def serving(server: Any) -> Generator[str]:
    """Serve `server` (a `socketserver`-style WSGI server on 127.0.0.1) in a thread; yield its base URL and
    shut it down after the block. The demo's Flask shop and this token API both run this way."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _django_example() -> Any:
    try:
        import django
        from django.conf import settings
    except ImportError as exc:
        raise _UnavailableError(f"it needs Django ({exc})") from None
    for module in ("rest_framework", "rest_framework_simplejwt"):
        if _missing(module):
            raise _UnavailableError(f"it needs {module} (pip install 'graffer-secevents[drf]')")
    if settings.configured:
        if "shop" not in settings.INSTALLED_APPS:
            raise _UnavailableError("this process already runs another Django project")
    elif not (_EXAMPLE / "shop" / "settings.py").exists():
        raise _UnavailableError("examples/django_app is missing")
    else:
        before = get_config()
        sys.path.insert(0, str(_EXAMPLE))
        os.environ["DJANGO_SETTINGS_MODULE"] = "shop.settings"
        os.environ["SHOP_DB"] = str(Path(tempfile.mkdtemp(prefix="secevents-demo-")) / "shop.sqlite3")
        # A demo-only speed-up: every guess costs a PBKDF2 run otherwise (~0.5 s on a busy CI machine).
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecEventsWarning)  # the shop's own configure() has no hash key
            django.setup()
        # The example's SECEVENTS setting configured the library for the shop; the demo's settings (output,
        # trusted proxy, hash key, in-memory metrics) stay in force.
        shop = set_config(before)
        if shop is not None and shop.metrics is not None and shop.metrics is not before.metrics:
            shop.metrics.close()
        from django.core.management import call_command  # pyright: ignore[reportUnknownVariableType] - Django is untyped

        call_command("setup_demo", verbosity=0, stdout=io.StringIO())
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def _post(base: str, path: str, body: dict[str, str], ip: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1
        base + path,
        data=orjson.dumps(body) if body else None,
        method="POST" if body else "GET",
        headers={
            "Content-Type": "application/json",
            "X-Forwarded-For": ip,
            "User-Agent": "python-requests/2.32",
            **(headers or {}),
        },
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            status: int = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
    return status


def _drive(base: str, step: Callable[[str], None]) -> None:
    step(f"token-API brute force: {GUESSES} passwords for grace against /api/token/ from one IP, then a hit")
    for attempt in range(GUESSES):
        _post(base, "/api/token/", {"username": "grace", "password": f"guess-{attempt}"}, ATTACKER)
    _post(base, "/api/token/", {"username": "grace", "password": "hopper-1906"}, ATTACKER)
    step("the same client replays a forged JWT against /api/orders/")
    _post(base, "/api/orders/", {}, ATTACKER, {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.forged"})
