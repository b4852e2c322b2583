"""A real `taskiq worker` process on a real Redis broker (taskiq-redis), tasks kicked from a FastAPI app on a
real uvicorn server: every task's events carry the request's user, client IP and request id."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("taskiq")
pytest.importorskip("taskiq_redis")

HERE = Path(__file__).parent
QUEUE = "secevents_taskiq"


@pytest.fixture(scope="module")
def broker_url(redis_url: str) -> str:
    return f"{redis_url}/6"


@pytest.fixture(scope="module")
def worker(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Any]]:
    from queue_helpers import python, running, worker_env

    where = tmp_path_factory.mktemp("taskiq")
    events, log = where / "events.jsonl", where / "worker.log"
    command = [python(), "-m", "taskiq", "worker", "queue_jobs_taskiq:broker", "--workers", "1"]
    env = worker_env(events, QUEUE_BROKER_URL=broker_url, QUEUE_NAME=QUEUE)
    with running(command, env, log) as proc:
        yield events, log, proc


@pytest.fixture(scope="module")
def web(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The FastAPI app that kicks, on a real uvicorn server: its URL and its own records."""
    from queue_helpers import worker_env

    events = tmp_path_factory.mktemp("taskiq-web") / "web.jsonl"
    env = worker_env(events, QUEUE_BROKER_URL=broker_url, QUEUE_NAME=QUEUE)
    env.pop("QUEUE_EVENTS_FILE")  # the web process writes its own records (argv), never the worker's file
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "taskiq_web.py"), str(events)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        pytest.fail(f"the web server did not start: {line}{proc.communicate()[1][-3000:]}")
    url = f"http://127.0.0.1:{line.split()[1]}"
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(200):
            try:
                client.get("/docs")
                break
            except httpx.TransportError:
                import time

                time.sleep(0.05)
    try:
        yield url, events
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def _kick(web: tuple[str, Path], task: str, tag: str, request_id: str) -> str:
    url, _ = web
    response = httpx.post(
        f"{url}/kick/{task}/{tag}",
        headers={"X-Request-ID": request_id, "X-Test-User": "42", "X-Forwarded-For": "198.51.100.66"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["task_id"])


@pytest.mark.parametrize(
    ("task", "name"), [("export", "queue_jobs_taskiq:export"), ("export_sync", "shop.export_sync")]
)
def test_a_task_kicked_in_a_request_carries_its_user_ip_and_request_id(
    worker: tuple[Path, Path, Any], web: tuple[str, Path], task: str, name: str
) -> None:
    """Async tasks run in the task's own context, sync ones in taskiq's thread pool with a copy of it. The IP
    is the real peer (127.0.0.1): the forged `X-Forwarded-For` is not believed without trusted proxies."""
    from queue_helpers import wait_for_tag

    events, log, proc = worker
    tag = f"tq-{task}"
    task_id = _kick(web, task, tag, f"req-{tag}")
    record = wait_for_tag(events, tag, log=log, proc=proc)
    assert record["usr"] == {"id": "42"}
    assert record["network"] == {"client": {"ip": "127.0.0.1"}}
    assert record["job"]["system"] == "taskiq"
    assert record["job"]["name"] == name
    assert record["job"]["id"] == task_id
    assert record["job"]["origin"] == {"request_id": f"req-{tag}", "usr_id": "42", "client_ip": "127.0.0.1"}
    assert "errors" not in record["secevents"]
    text = events.read_text()
    assert "42@example.com" not in text and "198.51.100.66" not in text


def test_an_actor_bound_inside_the_task_wins(worker: tuple[Path, Path, Any], web: tuple[str, Path]) -> None:
    from queue_helpers import wait_for_tag

    events, log, proc = worker
    _kick(web, "export_as_service", "tq-actor", "req-tq-actor")
    record = wait_for_tag(events, "tq-actor", log=log, proc=proc)
    assert record["usr"] == {"id": "svc-7"}
    assert record["actor"] == {"name": "jobs:reindex"}
    assert record["job"]["origin"]["usr_id"] == "42"


def test_a_failing_task_is_unbound_and_nothing_leaks_into_the_next(
    worker: tuple[Path, Path, Any], web: tuple[str, Path], broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failed task's event carries its origin; a task kicked outside any request, run next by the same
    worker, says no user and no IP."""
    import asyncio

    from queue_helpers import wait_for_tag

    events, log, proc = worker
    _kick(web, "export_then_fail", "tq-fail", "req-tq-fail")
    _kick(web, "no_event", "tq-quiet", "req-tq-quiet")
    assert wait_for_tag(events, "tq-fail", log=log, proc=proc)["usr"] == {"id": "42"}

    monkeypatch.setenv("QUEUE_BROKER_URL", broker_url)  # read when queue_jobs_taskiq is first imported
    monkeypatch.setenv("QUEUE_NAME", QUEUE)
    import queue_jobs_taskiq

    async def kick_outside_a_request() -> None:
        await queue_jobs_taskiq.broker.startup()
        await queue_jobs_taskiq.export.kiq("tq-no-request")
        await queue_jobs_taskiq.broker.shutdown()

    asyncio.run(kick_outside_a_request())
    record = wait_for_tag(events, "tq-no-request", log=log, proc=proc)
    assert "usr" not in record and "network" not in record
    assert record["job"]["system"] == "taskiq"
    assert "origin" not in record["job"]


def test_a_forged_origin_label_is_dropped_and_noted(
    worker: tuple[Path, Path, Any], broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    import orjson
    from queue_helpers import wait_for_tag

    from graffer_secevents._origin import capture_origin
    from graffer_secevents.integrations.taskiq import ORIGIN_LABEL

    events, log, proc = worker
    monkeypatch.setenv("QUEUE_BROKER_URL", broker_url)  # read when queue_jobs_taskiq is first imported
    monkeypatch.setenv("QUEUE_NAME", QUEUE)
    import queue_jobs_taskiq

    forged = orjson.dumps({**capture_origin(), "usr_id": "admin"}).decode()

    async def kick_forged() -> None:
        await queue_jobs_taskiq.broker.startup()
        await queue_jobs_taskiq.export.kicker().with_labels(**{ORIGIN_LABEL: forged}).kiq("tq-forged")
        await queue_jobs_taskiq.broker.shutdown()

    asyncio.run(kick_forged())
    record = wait_for_tag(events, "tq-forged", log=log, proc=proc)
    assert "usr" not in record
    assert "origin" not in record["job"]
    assert record["secevents"]["errors"] == [
        "job.origin: signature does not verify under this process's hash_key; dropped"
    ]


def test_the_worker_process_writes_every_record_and_ends_cleanly_on_sigterm(
    broker_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default output (the worker process's stdout): every record, then the process's end record, arrive
    before taskiq's process manager ends the worker, so `verify` sees it end cleanly."""
    import asyncio
    import json
    import signal
    import time

    from queue_helpers import python, worker_env
    from taskiq_redis import ListQueueBroker

    from graffer_secevents._tools.verify import verify_lines

    queue = "secevents_taskiq_exit"
    monkeypatch.setenv(
        "QUEUE_BROKER_URL", broker_url
    )  # the module's own queue, whichever test imports it first
    monkeypatch.setenv("QUEUE_NAME", QUEUE)
    import queue_jobs_taskiq

    async def kick_many() -> None:
        broker = ListQueueBroker(broker_url, queue_name=queue)
        task = broker.register_task(
            queue_jobs_taskiq.export_many.original_func, "queue_jobs_taskiq:export_many"
        )
        await broker.startup()
        for k in range(3):
            await task.kiq(f"tq-exit{k}", 200)
        await broker.shutdown()

    asyncio.run(kick_many())
    env = worker_env(tmp_path / "unused.jsonl", QUEUE_BROKER_URL=broker_url, QUEUE_NAME=queue)
    del env["QUEUE_EVENTS_FILE"]  # the default output: the worker process's stdout
    log = tmp_path / "worker.log"
    command = [python(), "-m", "taskiq", "worker", "queue_jobs_taskiq:broker", "--workers", "1"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while log.read_bytes().count(b'"tag":"tq-exit') < 3 * 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    lines = [line for line in log.read_bytes().splitlines() if line.startswith(b"{")]
    tags = sorted(json.loads(line)["context"]["tag"] for line in lines if b'"evt"' in line)
    assert tags == sorted(f"tq-exit{k}-{n}" for k in range(3) for n in range(200))
    report = verify_lines(lines)
    assert report.writers, report.text()
    assert report.ok(), report.text() + log.read_text(errors="replace")[-3000:]
