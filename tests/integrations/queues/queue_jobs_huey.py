"""huey tasks wired with the public API only, exactly as docs/integrations/task-queues.md's "Any other queue"
recipe shows: the web process passes `secevents.job_origin()` as an argument, the task opens `secevents.job`."""

from __future__ import annotations

import os
from typing import Any

from huey import RedisHuey

import graffer_secevents as secevents

huey = RedisHuey("secevents_huey", url=os.environ.get("QUEUE_BROKER_URL", "redis://127.0.0.1:1/0"))

if "QUEUE_EVENTS_FILE" in os.environ:  # the consumer process: records to the file the test reads
    secevents.configure(output=open(os.environ["QUEUE_EVENTS_FILE"], "a", buffering=1), delivery="sync")  # noqa: SIM115

_failed_once: set[str] = set()


@huey.task(context=True)
def export(tag: str, origin: Any = None, task: Any = None) -> None:
    with secevents.job(origin, system="huey", name=task.name, job_id=task.id):
        secevents.log_data_export(None, "orders", record_count=3, tag=tag)


@huey.task(context=True, retries=1, retry_delay=0)
def export_after_a_retry(tag: str, origin: Any = None, task: Any = None) -> None:
    """Fails on its first run; huey re-enqueues the same task, arguments and all: the origin too."""
    with secevents.job(origin, system="huey", name=task.name, job_id=task.id):
        if tag not in _failed_once:
            _failed_once.add(tag)
            raise RuntimeError("first attempt fails")
        secevents.log_data_export(None, "orders", tag=tag)


@huey.task()
def export_many(tag: str, count: int, origin: Any = None) -> None:
    with secevents.job(origin, system="huey", name="export_many"):
        for n in range(count):
            secevents.log_data_export(None, "orders", record_count=n, tag=f"{tag}-{n}")
