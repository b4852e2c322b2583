"""Client IPs that match what the library says, under two server defaults, with the real servers on 127.0.0.1:
uvicorn's proxy headers (on unless --no-proxy-headers) rewrite the peer before the library sees it, and
waitress's clear_untrusted_proxy_headers (on by default) deletes the forwarding headers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

BIN = Path(sys.executable).parent
FORGED = "6.6.6.6"

ASGI_APP = """
import graffer_secevents as secevents
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from graffer_secevents.integrations.asgi import SecurityEventsMiddleware

secevents.configure(metrics="none", delivery="sync", {options})

async def login(request):
    secevents.log_login(1, "success")
    return PlainTextResponse("ok")

app = SecurityEventsMiddleware(Starlette(routes=[Route("/", login)]))
"""

WSGI_APP = """
import graffer_secevents as secevents
from flask import Flask
from graffer_secevents.integrations.flask import SecurityEvents

secevents.configure(metrics="none", delivery="sync", {options})
app = Flask(__name__)
SecurityEvents(app)

@app.get("/")
def login():
    secevents.log_login(1, "success")
    return "ok"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_and_ask(
    tmp: Path, app: str, options: str, argv: list[str], headers: dict[str, str]
) -> tuple[str, str]:
    """Serve `app` with `argv` (PORT replaced), send one request, stop the server: (client ip, stderr)."""
    (tmp / "app.py").write_text(textwrap.dedent(app.format(options=options)))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECEVENTS_", "DD_"))}
    env["SECEVENTS_HASH_KEY"] = "a-key-of-at-least-16-bytes"
    env["PYTHONWARNINGS"] = "always"
    process = subprocess.Popen(
        [a.replace("PORT", str(port)) for a in argv],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()  # type: ignore[union-attr]
                time.sleep(0.1)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers=headers)
        with opener.open(request, timeout=20) as response:
            assert response.status == 200
    finally:
        process.terminate()
        out, err = process.communicate(timeout=20)
    parsed = [orjson.loads(line) for line in out.splitlines() if line.startswith(b"{")]
    records = [r for r in parsed if "evt" in r]  # not the writer's end record
    assert len(records) == 1, (out, err)
    return records[0]["network"]["client"]["ip"], err.decode()


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


def uvicorn(*flags: str) -> list[str]:
    return [str(BIN / "uvicorn"), "app:app", "--host", "127.0.0.1", "--port", "PORT", *flags]


def test_uvicorn_default_proxy_headers_are_named_not_called_ignored(tmp: Path) -> None:
    """Plain `uvicorn app:app`: the forged header from a loopback peer is what uvicorn made the client; the
    library says uvicorn applied it (with the flag that stops it), never that it was ignored."""
    ip, err = serve_and_ask(tmp, ASGI_APP, "", uvicorn(), {"X-Forwarded-For": FORGED})
    assert ip == FORGED
    assert "uvicorn replaces the peer address with an address from X-Forwarded-For" in err
    assert "--forwarded-allow-ips 127.0.0.1" in err and "--no-proxy-headers" in err
    assert "header ignored" not in err
    assert err.count("uvicorn replaces the peer address") == 1


def test_uvicorn_without_proxy_headers_leaves_the_library_to_decide(tmp: Path) -> None:
    ip, err = serve_and_ask(tmp, ASGI_APP, "", uvicorn("--no-proxy-headers"), {"X-Forwarded-For": FORGED})
    assert ip == "127.0.0.1"
    assert "X-Forwarded-For/Forwarded header ignored" in err  # true here: nothing applied it
    assert "uvicorn replaces" not in err
    ip, err = serve_and_ask(
        tmp,
        ASGI_APP,
        'trusted_proxies="127.0.0.1/32"',
        uvicorn("--no-proxy-headers"),
        {"X-Forwarded-For": f"{FORGED}, 203.0.113.9"},
    )
    assert ip == "203.0.113.9" and "SecEventsWarning" not in err  # behind a sidecar: the library walks


def waitress(*flags: str) -> list[str]:
    return [str(BIN / "waitress-serve"), "--listen=127.0.0.1:PORT", *flags, "app:app"]


def test_waitress_default_header_stripping_is_said_behind_a_trusted_proxy(tmp: Path) -> None:
    ip, err = serve_and_ask(
        tmp, WSGI_APP, 'trusted_proxies="127.0.0.1/32"', waitress(), {"X-Forwarded-For": "203.0.113.9"}
    )
    assert ip == "127.0.0.1"  # waitress deleted the header: the proxy's address
    assert "waitress removes X-Forwarded-For and Forwarded" in err
    assert "--no-clear-untrusted-proxy-headers" in err


def test_waitress_keeping_the_headers_lets_the_library_resolve(tmp: Path) -> None:
    ip, err = serve_and_ask(
        tmp,
        WSGI_APP,
        'trusted_proxies="127.0.0.1/32"',
        waitress("--no-clear-untrusted-proxy-headers"),
        {"X-Forwarded-For": "203.0.113.9"},
    )
    assert ip == "203.0.113.9"
    assert "waitress removes" not in err


def test_waitress_trusted_proxy_rewrite_is_named(tmp: Path) -> None:
    ip, err = serve_and_ask(
        tmp,
        WSGI_APP,
        "",
        waitress("--trusted-proxy=127.0.0.1", "--trusted-proxy-headers=x-forwarded-for"),
        {"X-Forwarded-For": FORGED},
    )
    assert ip == FORGED
    assert "waitress replaces the peer address" in err and "header ignored" not in err


def gunicorn_uvicorn(*flags: str) -> list[str]:
    return [
        str(BIN / "gunicorn"),
        "-k",
        "uvicorn.workers.UvicornWorker",
        "-w",
        "1",
        "-b",
        "127.0.0.1:PORT",
        *flags,
        "app:app",
    ]


def test_gunicorn_uvicorn_worker_rewrite_names_gunicorns_flag(tmp: Path) -> None:
    """Under gunicorn's uvicorn worker, uvicorn's proxy headers follow gunicorn's --forwarded-allow-ips
    (127.0.0.1 by default): the warning names the gunicorn flag, not uvicorn's, which is not there."""
    ip, err = serve_and_ask(tmp, ASGI_APP, "", gunicorn_uvicorn(), {"X-Forwarded-For": FORGED})
    assert ip == FORGED
    assert "uvicorn replaces the peer address" in err and "run gunicorn with --forwarded-allow-ips=''" in err
    assert "--no-proxy-headers" not in err


def test_gunicorn_uvicorn_worker_trusting_no_peer_leaves_the_library_to_decide(tmp: Path) -> None:
    ip, err = serve_and_ask(
        tmp, ASGI_APP, "", gunicorn_uvicorn("--forwarded-allow-ips", ""), {"X-Forwarded-For": FORGED}
    )
    assert ip == "127.0.0.1"
    assert "uvicorn replaces" not in err and "header ignored" in err
