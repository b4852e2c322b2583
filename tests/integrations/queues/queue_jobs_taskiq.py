"""The taskiq broker and tasks both sides import: the web process kicks, `taskiq worker` runs."""

from __future__ import annotations

import os

from taskiq_redis import ListQueueBroker

import graffer_secevents as secevents
from graffer_secevents.integrations.taskiq import SecurityEventsMiddleware

broker = ListQueueBroker(
    os.environ.get("QUEUE_BROKER_URL", "redis://127.0.0.1:1/0"),
    queue_name=os.environ.get("QUEUE_NAME", "secevents_taskiq"),
).with_middlewares(SecurityEventsMiddleware())

if "QUEUE_EVENTS_FILE" in os.environ:  # the worker process: records to the file the test reads
    secevents.configure(output=open(os.environ["QUEUE_EVENTS_FILE"], "a", buffering=1), delivery="sync")  # noqa: SIM115


@broker.task
async def export(tag: str) -> None:
    secevents.log_data_export(None, "orders", record_count=3, tag=tag)


@broker.task(task_name="shop.export_sync")
def export_sync(tag: str) -> None:
    """A sync task: taskiq runs it in its thread pool."""
    secevents.log_data_export(None, "orders", tag=tag)


@broker.task
async def export_as_service(tag: str) -> None:
    with secevents.actor("jobs:reindex", user=secevents.User(id="svc-7")):
        secevents.log_data_export(None, "orders", tag=tag)


@broker.task
async def export_then_fail(tag: str) -> None:
    secevents.log_data_export(None, "orders", tag=tag)
    raise RuntimeError("the task failed after its event")


@broker.task
async def no_event(tag: str) -> None:
    """Emits nothing itself: the event after it (`export`) must not inherit its binding."""


@broker.task
async def export_many(tag: str, count: int) -> None:
    for n in range(count):
        secevents.log_data_export(None, "orders", record_count=n, tag=f"{tag}-{n}")
