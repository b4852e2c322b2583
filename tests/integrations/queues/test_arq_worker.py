"""A real arq worker (`arq ... --burst`) on a real Redis: jobs keep the enqueuing request's origin."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("arq")

from arq.connections import ArqRedis, RedisSettings, create_pool
from queue_helpers import make_web_app, post_export, python, wait_for_tag, worker_env

from graffer_secevents.integrations import arq as secevents_arq
from graffer_secevents.testing import capture_events


@pytest.fixture
def broker_url(redis_url: str) -> str:
    return f"{redis_url}/4"


async def _enqueue(url: str, function: str, tag: str, **options: Any) -> str:
    pool = await create_pool(RedisSettings.from_dsn(url))
    try:
        job = await pool.enqueue_job(function, tag, **options)
        assert job is not None
        return job.job_id
    finally:
        await pool.aclose()


def _burst(url: str, tmp_path: Path) -> tuple[Path, Path]:
    events, log = tmp_path / "events.jsonl", tmp_path / "worker.log"
    with log.open("wb") as out:
        subprocess.run(
            [python(), "-m", "arq", "queue_jobs_arq.WorkerSettings", "--burst"],
            env=worker_env(events, QUEUE_BROKER_URL=url),
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=60,
            check=True,
        )
    return events, log


def _web(url: str, function: str) -> Any:
    secevents_arq.install()
    return make_web_app(lambda tag: asyncio.run(_enqueue(url, function, tag)))


def test_a_job_enqueued_in_a_request_carries_its_user_ip_and_request_id(
    broker_url: str, tmp_path: Path
) -> None:
    with capture_events():
        post_export(_web(broker_url, "export"), "arq-one", request_id="req-arq-1")
    events, log = _burst(broker_url, tmp_path)
    record = wait_for_tag(events, "arq-one", log=log, timeout=5)
    assert record["usr"] == {"id": "42"}
    assert record["network"] == {"client": {"ip": "203.0.113.9"}}
    assert record["job"]["system"] == "arq"
    assert record["job"]["name"] == "export"
    assert len(record["job"]["id"]) == 32
    assert record["job"]["origin"]["request_id"] == "req-arq-1"
    assert "alice" not in str(record)
    assert "errors" not in record["secevents"]


def test_an_actor_bound_inside_the_job_wins(broker_url: str, tmp_path: Path) -> None:
    with capture_events():
        post_export(_web(broker_url, "export_as_service"), "arq-actor", request_id="req-arq-2")
    events, log = _burst(broker_url, tmp_path)
    record = wait_for_tag(events, "arq-actor", log=log, timeout=5)
    assert record["usr"] == {"id": "svc-7"}
    assert record["actor"] == {"name": "jobs:reindex"}
    assert record["job"]["origin"]["usr_id"] == "42"


def test_a_garbage_origin_key_is_dropped_and_noted(broker_url: str, tmp_path: Path) -> None:
    """Whoever can write to Redis can overwrite the origin key: garbage there is noted, never written."""
    secevents_arq.install()

    async def enqueue_then_forge() -> None:
        job_id = await _enqueue(broker_url, "export", "arq-forged")
        pool: ArqRedis = await create_pool(RedisSettings.from_dsn(broker_url))
        try:
            await pool.set(secevents_arq.ORIGIN_KEY_PREFIX + job_id, b"\xff not json")
        finally:
            await pool.aclose()

    asyncio.run(enqueue_then_forge())
    events, log = _burst(broker_url, tmp_path)
    record = wait_for_tag(events, "arq-forged", log=log, timeout=5)
    assert "usr" not in record
    assert "name" not in record["job"]
    assert "job.origin: expected a mapping, got a list; dropped" in record["secevents"]["errors"]


def test_a_caller_job_id_is_kept(broker_url: str, tmp_path: Path) -> None:
    secevents_arq.install()
    job_id = asyncio.run(_enqueue(broker_url, "export", "arq-own-id", _job_id="my-own-id-1"))
    assert job_id == "my-own-id-1"
    events, log = _burst(broker_url, tmp_path)
    record = wait_for_tag(events, "arq-own-id", log=log, timeout=5)
    assert record["job"]["id"] == "my-own-id-1"
    assert record["job"]["name"] == "export"
