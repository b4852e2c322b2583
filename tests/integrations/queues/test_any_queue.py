"""Queues the library ships no integration for, wired with the public API only (`secevents.job_origin()` in the
request, `secevents.job(...)` in the task) as docs/integrations/task-queues.md's "Any other queue" shows: a
real `huey_consumer` process on a real Redis server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("huey")


@pytest.fixture(scope="module")
def broker_url(redis_url: str) -> Iterator[str]:
    url = f"{redis_url}/7"
    previous = os.environ.get("QUEUE_BROKER_URL")
    os.environ["QUEUE_BROKER_URL"] = url  # read when queue_jobs_huey is first imported, here and there
    yield url
    if previous is None:
        os.environ.pop("QUEUE_BROKER_URL", None)
    else:
        os.environ["QUEUE_BROKER_URL"] = previous


@pytest.fixture(scope="module")
def jobs(broker_url: str) -> Any:
    import queue_jobs_huey

    return queue_jobs_huey


def _consumer() -> list[str]:
    from queue_helpers import python

    return [python(), "-m", "huey.bin.huey_consumer", "queue_jobs_huey.huey", "-w", "2", "-k", "thread"]


@pytest.fixture(scope="module")
def consumer(
    jobs: Any, broker_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, Path, Any]]:
    from queue_helpers import running, worker_env

    where = tmp_path_factory.mktemp("huey")
    events, log = where / "events.jsonl", where / "consumer.log"
    with running(_consumer(), worker_env(events, QUEUE_BROKER_URL=broker_url), log) as proc:
        yield events, log, proc


def _enqueue_in_a_request(task: Any, tag: str, request_id: str) -> None:
    from queue_helpers import make_web_app, post_export

    import graffer_secevents as secevents
    from graffer_secevents.testing import capture_events

    web = make_web_app(lambda tag: task(tag, origin=secevents.job_origin()))
    with capture_events():
        post_export(web, tag, request_id=request_id)


def test_the_recipe_carries_the_request_s_user_ip_and_request_id(
    jobs: Any, consumer: tuple[Path, Path, Any]
) -> None:
    from queue_helpers import wait_for_tag

    events, log, proc = consumer
    _enqueue_in_a_request(jobs.export, "hu-one", "req-hu-1")
    record = wait_for_tag(events, "hu-one", log=log, proc=proc)
    assert record["usr"] == {"id": "42"}
    assert record["network"] == {"client": {"ip": "203.0.113.9"}}
    assert record["job"]["system"] == "huey"
    assert record["job"]["name"] == "export"
    assert len(record["job"]["id"]) == 36
    assert record["job"]["origin"]["request_id"] == "req-hu-1"
    assert "errors" not in record["secevents"]
    assert "alice@example.com" not in events.read_text()


def test_a_retry_keeps_the_origin(jobs: Any, consumer: tuple[Path, Path, Any]) -> None:
    from queue_helpers import wait_for_tag

    events, log, proc = consumer
    _enqueue_in_a_request(jobs.export_after_a_retry, "hu-retry", "req-hu-2")
    record = wait_for_tag(events, "hu-retry", log=log, proc=proc)
    assert record["usr"] == {"id": "42"}
    assert record["job"]["origin"]["request_id"] == "req-hu-2"


def test_a_forged_origin_argument_is_dropped_and_noted(jobs: Any, consumer: tuple[Path, Path, Any]) -> None:
    from queue_helpers import wait_for_tag

    events, log, proc = consumer
    jobs.export("hu-forged", origin={"v": 1, "usr_id": "admin", "client_ip": "10.0.0.1"})
    record = wait_for_tag(events, "hu-forged", log=log, proc=proc)
    assert "usr" not in record and "network" not in record
    assert record["secevents"]["errors"] == ["job.origin: unsigned under this process's hash_key; dropped"]


def test_the_consumer_writes_every_record_and_ends_cleanly_on_sigterm(
    jobs: Any, broker_url: str, tmp_path: Path
) -> None:
    """The default output (the consumer's stdout), two worker threads: every record, then the end record."""
    from huey import RedisHuey
    from queue_helpers import worker_env

    from graffer_secevents._tools.verify import verify_lines

    url = broker_url.rsplit("/", 1)[0] + "/8"  # not the module's consumer's database: this one's alone
    export_many = RedisHuey("secevents_huey", url=url).task()(jobs.export_many.func)
    for k in range(3):
        export_many(f"hu-exit{k}", 200)
    env = worker_env(tmp_path / "unused.jsonl", QUEUE_BROKER_URL=url)
    del env["QUEUE_EVENTS_FILE"]
    log = tmp_path / "consumer.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(_consumer(), env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while log.read_bytes().count(b'"tag":"hu-exit') < 3 * 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    lines = [line for line in log.read_bytes().splitlines() if line.startswith(b"{")]
    tags = sorted(json.loads(line)["context"]["tag"] for line in lines if b'"evt"' in line)
    assert tags == sorted(f"hu-exit{k}-{n}" for k in range(3) for n in range(200))
    report = verify_lines(lines)
    assert report.writers, report.text()
    assert report.ok(), report.text()
