"""Real servers on 127.0.0.1 whose stdout is a pipe: stuck (nobody reads), resumed, and shut down gracefully.

The apps and server scripts are in tests/delivery/.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

APPS = Path(__file__).parent / "delivery"
BIN = Path(sys.executable).parent
LOGINS = 1000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SECEVENTS_DELIVERY"}  # the default: the queue
    env.update(PYTHONPATH=str(APPS), SECEVENTS_METRICS="none", **extra)
    return env


class _Client:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(self, path: str) -> tuple[bytes, float]:
        started = time.perf_counter()
        try:
            self.conn.request("GET", path)
            response = self.conn.getresponse()
        except (ConnectionError, http.client.HTTPException):  # a worker closed the keep-alive: reconnect
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.conn.request("GET", path)
            response = self.conn.getresponse()
        body = response.read()
        assert response.status == 200, body
        return body, time.perf_counter() - started

    def close(self) -> None:
        self.conn.close()

    def wait_ready(self, proc: subprocess.Popen[bytes], deadline: float = 60.0) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            assert proc.poll() is None, "the server exited at start-up"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        pytest.fail("the server did not start")


@contextmanager
def _server(argv: list[str], env: dict[str, str], stderr: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(argv, cwd=APPS, env=env, stdout=subprocess.PIPE, stderr=err)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        assert proc.stdout is not None
        proc.stdout.close()


class _Reader:
    """Reads the server's stdout pipe once started: until then, nobody reads it."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.stream = proc.stdout
        self.data = bytearray()
        self.thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        fd = self.stream.fileno()
        while chunk := os.read(fd, 65536):
            self.data += chunk

    def records(self) -> list[dict[str, Any]]:
        self.thread.join(30)
        lines = bytes(self.data).splitlines()
        records = [orjson.loads(line) for line in lines]  # each a whole JSON object: none torn
        return [r for r in records if "evt" in r]  # not the writers' end records


@pytest.mark.parametrize("server", ["uvicorn", "waitress", "gunicorn_gevent"])
def test_a_stuck_stdout_never_stops_the_server_answering(server: str, tmp_path: Path) -> None:
    """gunicorn's gevent worker: the writer thread is a greenlet there, and a blocking write would stop
    the whole worker (`_output.fd_write`)."""
    port = _free_port()
    argv = [sys.executable, str(APPS / f"serve_{server}.py"), str(port)]
    with _server(argv, _env(SECEVENTS_QUEUE_SIZE="200"), tmp_path / "stderr.log") as proc:
        client = _Client(port)
        client.wait_ready(proc)
        slowest = 0.0
        for n in range(LOGINS):
            _, took = client.get(f"/login?n={n}")
            slowest = max(slowest, took)
            if n % 10 == 0:
                _, took = client.get("/health")
                slowest = max(slowest, took)
        assert slowest < 2.0, f"a request took {slowest:.2f}s while stdout was stuck"
        lost = json.loads(client.get("/dropped")[0])["queue_full"]
        assert 0 < lost < LOGINS - 200  # the pipe (64 KiB) and the queue (200) hold the rest

        reader = _Reader(proc)
        reader.thread.start()  # the reader resumes
        flushed = json.loads(client.get("/flush")[0])
        assert flushed == {"flushed": True, "dropped": {"queue_full": lost}}
        client.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        records = reader.records()

    logins = [r for r in records if r["evt"]["type"] == "authn_login_fail"]
    assert len(logins) == LOGINS - lost
    ids = [int(r["usr"]["id"]) for r in logins]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(r["network"]["client"]["ip"] == "127.0.0.1" for r in logins)
    assert sum(r["secevents"].get("dropped_before", 0) for r in logins) == lost
    err = (tmp_path / "stderr.log").read_text()
    assert err.count("could not write a security event") == 1 and "reason:queue_full" in err


def test_gunicorn_preload_two_workers_write_every_record_once(tmp_path: Path) -> None:
    port = _free_port()
    argv = [
        str(BIN / "gunicorn"),
        "--preload",
        "--workers=2",
        f"--bind=127.0.0.1:{port}",
        "--graceful-timeout=20",
        "apps:wsgi_app",
    ]
    with _server(argv, _env(BOOT_EVENT="1"), tmp_path / "stderr.log") as proc:
        reader = _Reader(proc)
        reader.thread.start()
        _Client(port).wait_ready(proc)
        clients = [_Client(port) for _ in range(4)]

        def send(k: int) -> None:
            for n in range(k, 400, 4):
                clients[k].get(f"/login?n={n}")

        threads = [threading.Thread(target=send, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for client in clients:
            client.close()
        proc.send_signal(signal.SIGTERM)  # graceful stop: workers exit through the normal exit path
        assert proc.wait(60) == 0
        records = reader.records()

    ids = sorted(int(r["usr"]["id"]) for r in records if r["evt"]["type"] == "authn_login_fail")
    assert ids == list(range(400))  # every record once: none lost on stop, none repeated by a worker
    boots = [r for r in records if r["evt"]["type"] == "admin_action"]
    assert len(boots) == 1  # the master's record, queued before the fork, is the master's alone
    assert "could not write" not in (tmp_path / "stderr.log").read_text()


def _exit_drops(stderr: bytes) -> dict[str, int]:
    """The drops each process reported on stderr as it exited, summed."""
    counts: dict[str, int] = {}
    last: dict[bytes, bytes] = {}  # a process may say it twice (lifespan, then SIGTERM): its last word
    for match in re.finditer(
        rb"graffer_secevents\[(\d+)\]: .*dropped in this process, by reason: ([a-z_: ,0-9]+)", stderr
    ):
        last[match.group(1)] = match.group(2)
    for said in last.values():
        for part in said.decode().split(", "):
            reason, _, n = part.partition(": ")
            counts[reason] = counts.get(reason, 0) + int(n)
    return counts


SIGTERM_SERVERS = {
    # uvicorn's own supervisor (spawned workers): the app is imported after uvicorn installed its handlers,
    # so the drain runs on lifespan shutdown; uvicorn then re-raises SIGTERM.
    "uvicorn --workers 2": lambda port: [
        sys.executable,
        "-m",
        "uvicorn",
        "apps:asgi_app",
        "--workers=2",
        f"--port={port}",
        "--log-level=warning",
        "--no-access-log",
    ],
    # gunicorn's UvicornWorker resets SIGTERM to SIG_DFL before loading the app: the library's handler is
    # what uvicorn saves and restores, and lifespan drains first.
    "gunicorn UvicornWorker": lambda port: [
        str(BIN / "gunicorn"),
        "--workers=2",
        "--worker-class=uvicorn.workers.UvicornWorker",
        f"--bind=127.0.0.1:{port}",
        "--graceful-timeout=30",
        "apps:asgi_app",
    ],
}


@pytest.mark.parametrize("server", list(SIGTERM_SERVERS))
def test_sigterm_with_a_stalled_reader_writes_or_counts_every_answered_request(
    server: str, tmp_path: Path
) -> None:
    port = _free_port()
    emitted = 600
    env = _env(SECEVENTS_QUEUE_SIZE="200", SECEVENTS_HASH_KEY="k" * 16, PYTHONWARNINGS="ignore")
    with _server(SIGTERM_SERVERS[server](port), env, tmp_path / "stderr.log") as proc:
        clients = [_Client(port) for _ in range(4)]
        clients[0].wait_ready(proc)
        time.sleep(1.0)  # both workers up

        def send(k: int) -> None:
            for n in range(k, emitted, 4):
                clients[k].get(f"/login?n={n}")  # asserts 200: every one answered, so emitted

        threads = [threading.Thread(target=send, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for client in clients:
            client.close()
        proc.send_signal(signal.SIGTERM)  # nobody has read stdout yet, nor will until the server is gone
        proc.wait(60)
        reader = _Reader(proc)
        reader.thread.start()
        records = reader.records()
    written = sorted(int(r["usr"]["id"]) for r in records if r["evt"]["type"] == "authn_login_fail")
    assert len(set(written)) == len(written)
    counted = _exit_drops((tmp_path / "stderr.log").read_bytes())
    assert counted.get("exit", 0) > 0 and set(counted) <= {"exit", "queue_full"}
    assert len(written) + sum(counted.values()) == emitted, (len(written), counted)


@pytest.mark.skipif(not (BIN / "uwsgi").exists(), reason="uWSGI is not installed (the dev group's pyuwsgi)")
@pytest.mark.parametrize("mode", ["preforked", "lazy-apps", "event at import"])
def test_uwsgi_workers_write_every_record_once_and_end_cleanly(mode: str, tmp_path: Path) -> None:
    """uWSGI loads the app in its master and forks its workers in C (no `os.register_at_fork` hook runs
    there) unless `--lazy-apps`: each worker is still a writer of its own, answers every request, and
    drains at SIGINT (uWSGI's stop: the workers end with `Py_Finalize`, so `atexit` runs). The master runs
    no Python at its exit: a record it wrote at import is followed by an end record at once."""
    port = _free_port()
    # No --threads: uWSGI skips a worker's atexit when one of its threads is in a request as SIGINT lands.
    argv = [str(BIN / "uwsgi"), "--master", "--processes=2", f"--http-socket=127.0.0.1:{port}"]
    argv += ["--module=apps:wsgi_app", "--disable-logging"]
    argv += {"lazy-apps": ["--lazy-apps"], "event at import": ["--py-call-uwsgi-fork-hooks"]}.get(mode, [])
    env = {**_env(SECEVENTS_HASH_KEY="k" * 16, PYTHONWARNINGS="ignore"), "SECEVENTS_METRICS": "dogstatsd"}
    if mode == "event at import":
        env["BOOT_EVENT"] = "1"
    with open(tmp_path / "out.log", "wb") as out:  # uWSGI sends the app's stdout to its log: stderr
        proc = subprocess.Popen(argv, cwd=APPS, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        clients = [_Client(port) for _ in range(4)]
        clients[0].wait_ready(proc)
        loaded = 2 if mode == "lazy-apps" else 1  # the master binds the socket before the apps are loaded
        deadline = time.monotonic() + 60
        while (tmp_path / "out.log").read_bytes().count(b"(default app)") < loaded:
            assert time.monotonic() < deadline, "the workers did not load the app"
            time.sleep(0.1)

        def send(k: int) -> None:
            for n in range(k, 200, 4):
                clients[k].get(f"/login?n={n}")  # asserts 200 (a worker that hangs fails it by timeout)

        threads = [threading.Thread(target=send, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for client in clients:
            client.close()
        # uWSGI skips the exit handlers of a worker still inside a request (docs/delivery.md), and a worker
        # finishes its bookkeeping after the client has the response: stop idle workers.
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    lines = (tmp_path / "out.log").read_bytes().splitlines()
    records = [orjson.loads(line) for line in lines if line.startswith(b"{")]
    logins = [r for r in records if r.get("evt", {}).get("type") == "authn_login_fail"]
    assert sorted(int(r["usr"]["id"]) for r in logins) == list(range(200))
    assert len({r["http"]["request_id"] for r in logins}) == 200
    writers = {r["secevents"]["writer"] for r in records}
    ends = [r for r in records if r["secevents"].get("end")]
    assert len(writers) == len({r["secevents"]["writer"] for r in ends}) >= 1  # each with an end record
    boots = [r for r in records if r.get("evt", {}).get("type") == "admin_action"]
    assert len(boots) == (1 if mode == "event at import" else 0)
    verify = subprocess.run(
        [str(BIN / "secevents"), "verify", "-"],
        input=b"".join(line + b"\n" for line in lines if line.startswith(b"{")),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout
