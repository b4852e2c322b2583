"""The arq worker settings: `arq queue_jobs_arq.WorkerSettings --burst` runs the jobs the web process queued."""

from __future__ import annotations

import os
from typing import Any

from arq.connections import RedisSettings

import graffer_secevents as secevents
from graffer_secevents.integrations import arq as secevents_arq

if "QUEUE_EVENTS_FILE" in os.environ:  # the worker process: records to the file the test reads
    secevents.configure(output=open(os.environ["QUEUE_EVENTS_FILE"], "a", buffering=1), delivery="sync")  # noqa: SIM115


async def export(ctx: dict[str, Any], tag: str) -> None:
    secevents.log_data_export(None, "orders", record_count=3, tag=tag)


async def export_as_service(ctx: dict[str, Any], tag: str) -> None:
    with secevents.actor("jobs:reindex", user=secevents.User(id="svc-7")):
        secevents.log_data_export(None, "orders", tag=tag)


class WorkerSettings:
    functions = (export, export_as_service)
    redis_settings = RedisSettings.from_dsn(os.environ.get("QUEUE_BROKER_URL", "redis://127.0.0.1:1/0"))
    on_job_start = secevents_arq.on_job_start
    on_job_end = secevents_arq.on_job_end
    burst = True
    poll_delay = 0.05
