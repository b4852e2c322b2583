"""A real `dramatiq` worker process on a real Redis broker: messages keep the request's origin."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dramatiq")


@pytest.fixture(scope="module")
def broker_url(redis_url: str) -> Iterator[str]:
    url = f"{redis_url}/3"
    previous = os.environ.get("QUEUE_BROKER_URL")
    os.environ["QUEUE_BROKER_URL"] = url  # read when queue_jobs_dramatiq is first imported, here and there
    yield url
    if previous is None:
        os.environ.pop("QUEUE_BROKER_URL", None)
    else:
        os.environ["QUEUE_BROKER_URL"] = previous


@pytest.fixture(scope="module")
def jobs(broker_url: str) -> Any:
    import queue_jobs_dramatiq

    return queue_jobs_dramatiq


@pytest.fixture(scope="module")
def worker(
    jobs: Any, broker_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, Path, Any]]:
    from queue_helpers import python, running, worker_env

    where = tmp_path_factory.mktemp("dramatiq")
    events, log = where / "events.jsonl", where / "worker.log"
    command = [
        python(),
        "-m",
        "dramatiq",
        "queue_jobs_dramatiq",
        "--processes",
        "1",
        "--threads",
        "1",
        "--queues",
        "secevents_test",
    ]
    with running(command, worker_env(events, QUEUE_BROKER_URL=broker_url), log) as proc:
        yield events, log, proc


def _send(actor: Any, tag: str, request_id: str) -> None:
    from queue_helpers import make_web_app, post_export

    from graffer_secevents.testing import capture_events

    web = make_web_app(actor.send)
    with capture_events():
        post_export(web, tag, request_id=request_id)


def test_a_message_sent_in_a_request_carries_its_user_ip_and_request_id(
    jobs: Any, worker: tuple[Path, Path, Any]
) -> None:
    from queue_helpers import wait_for_tag

    events, log, proc = worker
    _send(jobs.export, "dq-one", "req-dq-1")
    record = wait_for_tag(events, "dq-one", log=log, proc=proc)
    assert record["usr"] == {"id": "42"}
    assert record["network"] == {"client": {"ip": "203.0.113.9"}}
    assert record["job"]["system"] == "dramatiq"
    assert record["job"]["name"] == "export"
    assert len(record["job"]["id"]) == 36
    assert record["job"]["origin"]["request_id"] == "req-dq-1"
    assert "errors" not in record["secevents"]


def test_an_actor_bound_inside_the_message_wins(jobs: Any, worker: tuple[Path, Path, Any]) -> None:
    from queue_helpers import wait_for_tag

    events, log, proc = worker
    _send(jobs.export_as_service, "dq-actor", "req-dq-2")
    record = wait_for_tag(events, "dq-actor", log=log, proc=proc)
    assert record["usr"] == {"id": "svc-7"}
    assert record["actor"] == {"name": "jobs:reindex"}
    assert record["job"]["origin"]["usr_id"] == "42"


def test_a_retry_keeps_the_origin_of_the_first_send(jobs: Any, worker: tuple[Path, Path, Any]) -> None:
    from queue_helpers import wait_for_tag

    events, log, proc = worker
    _send(jobs.export_after_a_retry, "dq-retry", "req-dq-3")
    record = wait_for_tag(events, "dq-retry", log=log, proc=proc)
    assert record["usr"] == {"id": "42"}
    assert record["job"]["origin"]["request_id"] == "req-dq-3"
    assert "errors" not in record["secevents"]


def test_a_tampered_origin_option_is_dropped_and_noted(jobs: Any, worker: tuple[Path, Path, Any]) -> None:
    """A signed origin whose user was changed on the broker no longer verifies: nothing of it is kept."""
    from queue_helpers import wait_for_tag

    from graffer_secevents._origin import ORIGIN_KEY, capture_origin

    events, log, proc = worker
    tampered = {**capture_origin(), "usr_id": "admin"}
    jobs.export.send_with_options(args=("dq-tampered",), **{ORIGIN_KEY: tampered})
    record = wait_for_tag(events, "dq-tampered", log=log, proc=proc)
    assert "usr" not in record
    assert "origin" not in record["job"]
    assert any("signature does not verify" in note for note in record["secevents"]["errors"])


def test_the_worker_processes_write_every_record_and_end_cleanly_on_sigterm(
    jobs: Any, broker_url: str, tmp_path: Path
) -> None:
    """The default output in `dramatiq` worker processes, whose `sys.stdout` is a pipe to the parent that the
    command closes right after the worker stops: every record, then each process's end record, arrive
    before that (`after_worker_shutdown`), so `verify` sees each worker end cleanly."""
    import signal
    import subprocess
    import time

    from queue_helpers import python, worker_env

    from graffer_secevents._tools.verify import verify_lines

    for k in range(3):
        jobs.export_many.send(f"dq-exit{k}", 200)
    env = worker_env(tmp_path / "unused.jsonl", QUEUE_BROKER_URL=broker_url)
    del env["QUEUE_EVENTS_FILE"]  # the default output: the worker process's stdout
    log = tmp_path / "worker.log"
    command = [python(), "-m", "dramatiq", "queue_jobs_dramatiq", "--processes", "2", "--threads", "2"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "--queues", "secevents_exit"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 30
            while log.read_bytes().count(b'"tag":"dq-exit') < 3 * 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    lines = [line for line in log.read_bytes().splitlines() if line.startswith(b"{")]
    tags = sorted(json.loads(line)["context"]["tag"] for line in lines if b'"evt"' in line)
    assert tags == sorted(f"dq-exit{k}-{n}" for k in range(3) for n in range(200))
    report = verify_lines(lines)
    assert report.writers, report.text()
    assert report.ok(), report.text()
