"""A real `rq worker --burst` (forking a work horse per job) on a real Redis: jobs keep the request's origin."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("rq")

import queue_jobs_rq
from queue_helpers import make_web_app, post_export, python, read_records, wait_for_tag, worker_env
from redis import Redis
from rq import Queue

from graffer_secevents._origin import ORIGIN_KEY
from graffer_secevents._tools.verify import verify_lines
from graffer_secevents.integrations import rq as secevents_rq
from graffer_secevents.testing import capture_events

WORKER_CLASS = "graffer_secevents.integrations.rq.SecurityEventsWorker"


@pytest.fixture
def queue(redis_url: str, request: pytest.FixtureRequest) -> Queue:
    secevents_rq.install()
    return Queue(f"q-{request.node.name[-40:]}", connection=Redis.from_url(f"{redis_url}/2"))


def _burst(queue: Queue, redis_url: str, tmp_path: Path, **env: str) -> tuple[Path, Path]:
    events, log = tmp_path / "events.jsonl", tmp_path / "worker.log"
    with log.open("wb") as out:
        subprocess.run(
            [
                python(),
                "-m",
                "rq.cli",
                "worker",
                "--burst",
                "-w",
                WORKER_CLASS,
                "--url",
                f"{redis_url}/2",
                queue.name,
            ],
            env=worker_env(events, **env),
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=60,
            check=True,
        )
    return events, log


def test_a_job_enqueued_in_a_request_carries_its_user_ip_and_request_id(
    queue: Queue, redis_url: str, tmp_path: Path
) -> None:
    web = make_web_app(lambda tag: queue.enqueue(queue_jobs_rq.export, tag))
    with capture_events():
        post_export(web, "rq-one", request_id="req-rq-1")
    job = queue.jobs[0]
    assert set(job.meta[ORIGIN_KEY]) >= {"request_id", "usr_id", "client_ip", "enqueued_at", "sig"}
    events, log = _burst(queue, redis_url, tmp_path)
    record = wait_for_tag(events, "rq-one", log=log, timeout=5)
    assert record["usr"] == {"id": "42"}
    assert record["network"] == {"client": {"ip": "203.0.113.9"}}
    assert record["job"]["system"] == "rq"
    assert record["job"]["name"] == "queue_jobs_rq.export"
    assert record["job"]["id"] == job.id
    assert record["job"]["origin"]["request_id"] == "req-rq-1"
    assert "alice" not in str(record)
    assert "errors" not in record["secevents"]


def test_an_actor_bound_inside_the_job_wins(queue: Queue, redis_url: str, tmp_path: Path) -> None:
    web = make_web_app(lambda tag: queue.enqueue(queue_jobs_rq.export_as_service, tag))
    with capture_events():
        post_export(web, "rq-actor", request_id="req-rq-2")
    events, log = _burst(queue, redis_url, tmp_path)
    record = wait_for_tag(events, "rq-actor", log=log, timeout=5)
    assert record["usr"] == {"id": "svc-7"}
    assert record["actor"] == {"name": "jobs:reindex"}
    assert record["job"]["origin"]["usr_id"] == "42"


def test_a_malformed_origin_in_job_meta_is_dropped_and_noted(
    queue: Queue, redis_url: str, tmp_path: Path
) -> None:
    queue.enqueue(queue_jobs_rq.export, "rq-forged", meta={ORIGIN_KEY: ["not", "a", "mapping"]})
    events, log = _burst(queue, redis_url, tmp_path)
    record = wait_for_tag(events, "rq-forged", log=log, timeout=5)
    assert "usr" not in record
    assert record["job"]["system"] == "rq"
    assert "job.origin: expected a mapping, got a list; dropped" in record["secevents"]["errors"]


def test_events_of_a_job_enqueued_outside_any_request_say_only_which_job(
    queue: Queue, redis_url: str, tmp_path: Path
) -> None:
    job = queue.enqueue(queue_jobs_rq.export, "rq-plain")
    events, log = _burst(queue, redis_url, tmp_path)
    record = wait_for_tag(events, "rq-plain", log=log, timeout=5)
    assert "usr" not in record and "network" not in record
    assert record["job"] == {
        "system": "rq",
        "name": "queue_jobs_rq.export",
        "id": job.id,
        "enqueued_at": job.meta[ORIGIN_KEY]["enqueued_at"],
    }
    assert "errors" not in record["secevents"]


def test_every_work_horse_writes_what_it_queued_and_its_end_record(
    queue: Queue, redis_url: str, tmp_path: Path
) -> None:
    """The default queued delivery in the forked work horse, which RQ ends with `os._exit` right after the
    job: every record reaches the output, and each horse (its own writer) ends cleanly for `verify`."""
    jobs = [queue.enqueue(queue_jobs_rq.export_many, f"rq-horse{j}", 300) for j in range(3)]
    events, _log = _burst(queue, redis_url, tmp_path, QUEUE_DELIVERY="queue")
    records = read_records(events)
    tags = sorted(r["context"]["tag"] for r in records if "evt" in r)
    assert tags == sorted(f"rq-horse{j}-{n}" for j in range(3) for n in range(300))
    report = verify_lines(events.read_bytes().splitlines())
    assert len(report.writers) == len(jobs)
    assert report.ok(), report.text()


def test_install_is_idempotent() -> None:
    secevents_rq.install()
    first: Any = Queue.create_job
    secevents_rq.install()
    assert Queue.create_job is first
