"""Django over ASGI under a server that imports the application after installing its own SIGTERM handler
and re-raises SIGTERM after the graceful stop (uvicorn ``--workers``): the queue is drained on lifespan
shutdown, so every answered request's record is written and each worker writes its end record
(``secevents verify`` sees a clean end), though Django itself refuses the lifespan scope.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

HERE = Path(__file__).parent
REQUESTS = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


SERVERS = {
    "uvicorn --workers 2": lambda port: [
        sys.executable,
        "-m",
        "uvicorn",
        "django_asgi_app:application",
        "--workers=2",
        f"--port={port}",
        "--log-level=warning",
        "--no-access-log",
    ],
}


def _run(server: str, tmp_path: Path) -> tuple[list[dict[str, Any]], bytes, int]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(HERE), "PYTHONWARNINGS": "ignore"}
    env.pop("SECEVENTS_DELIVERY", None)
    stderr = tmp_path / "stderr.log"
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(SERVERS[server](port), cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=err)
    assert proc.stdout is not None
    out = bytearray()
    reader = threading.Thread(target=lambda: out.extend(proc.stdout.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            while True:
                assert proc.poll() is None, stderr.read_text()
                try:
                    client.get("/login/0")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the server did not start"
                    time.sleep(0.1)
            time.sleep(1.0)  # every worker up
            for n in range(1, REQUESTS):
                assert client.get(f"/login/{n}").status_code == 200
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        reader.join(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        reader.join(30)
        proc.stdout.close()
    records = [orjson.loads(line) for line in bytes(out).splitlines()]
    return records, stderr.read_bytes(), proc.returncode


@pytest.mark.parametrize("server", list(SERVERS))
def test_sigterm_writes_every_record_and_each_writers_end(server: str, tmp_path: Path) -> None:
    records, stderr, _ = _run(server, tmp_path)
    logins = sorted(int(r["usr"]["login"].removeprefix("user")) for r in records if "evt" in r)
    assert logins == list(range(REQUESTS)), stderr.decode()[-2000:]
    writers = {r["secevents"]["writer"] for r in records}
    ended = {r["secevents"]["writer"] for r in records if r["secevents"].get("end")}
    assert writers and ended == writers, (writers, ended, stderr.decode()[-2000:])
    verify = subprocess.run(
        [str(Path(sys.executable).parent / "secevents"), "verify", "-"],
        input=b"\n".join(orjson.dumps(r) for r in records),
        capture_output=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout.decode() + verify.stderr.decode()
