"""The last second of metric counts survives a server's stop: plain `uvicorn` (which re-raises SIGTERM after
its graceful shutdown, so `atexit` never runs) serving an app that counts failed logins, stopped with SIGTERM
right after its last answer; every count arrives on a real UDP socket on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

from test_metrics import drain, parse, udp_receiver  # noqa: F401 - the fixture is used

APP = """
import graffer_secevents as secevents
from graffer_secevents.integrations.asgi import SecurityEventsMiddleware

secevents.configure(service="stop-test", metrics="dogstatsd", output="stderr")


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    for _ in range(5):
        secevents.log_login("42", "failure", reason="invalid_credentials", exists=True)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


asgi_app = SecurityEventsMiddleware(app)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_uvicorn_sigterm_sends_the_last_counts(
    udp_receiver: socket.socket,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    (tmp_path / "stop_app.py").write_text(textwrap.dedent(APP))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "SECEVENTS_"))}
    env.update(
        DD_DOGSTATSD_URL=f"udp://127.0.0.1:{udp_receiver.getsockname()[1]}",
        SECEVENTS_HASH_KEY="stop-test-key-0123456789",
    )
    argv = [sys.executable, "-m", "uvicorn", "--app-dir", str(tmp_path), "--port", str(port)]
    proc = subprocess.Popen(
        [*argv, "--no-access-log", "--log-level", "warning", "stop_app:asgi_app"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                    assert answer.read() == b"ok"
                break
            except OSError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.1)
        for _ in range(3):  # 4 requests in all, 20 failed logins, answered well inside one flush interval
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                answer.read()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (-signal.SIGTERM, 0), stderr  # uvicorn >= 0.29 dies of the re-raised signal
    points = parse([data for data, _ in drain(udp_receiver)])
    failures = sum(
        value
        for name, value, tags in points
        if name == "secevents.login.attempts" and "outcome:failure" in tags
    )
    assert failures == 20, (points, stderr)
