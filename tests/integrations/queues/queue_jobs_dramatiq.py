"""The Dramatiq broker and actors both sides import: the web process sends, the `dramatiq` worker runs."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

import graffer_secevents as secevents
from graffer_secevents.integrations.dramatiq import SecurityEventsMiddleware

broker = RedisBroker(url=os.environ.get("QUEUE_BROKER_URL", "redis://127.0.0.1:1/0"))
broker.add_middleware(SecurityEventsMiddleware())
dramatiq.set_broker(broker)

if "QUEUE_EVENTS_FILE" in os.environ:  # the worker process: records to the file the test reads
    secevents.configure(output=open(os.environ["QUEUE_EVENTS_FILE"], "a", buffering=1), delivery="sync")  # noqa: SIM115

_failed_once: set[str] = set()


@dramatiq.actor(queue_name="secevents_test", max_retries=0)
def export(tag: str) -> None:
    secevents.log_data_export(None, "orders", record_count=3, tag=tag)


@dramatiq.actor(queue_name="secevents_test", max_retries=0)
def export_as_service(tag: str) -> None:
    with secevents.actor("jobs:reindex", user=secevents.User(id="svc-7")):
        secevents.log_data_export(None, "orders", tag=tag)


@dramatiq.actor(queue_name="secevents_test", max_retries=2, min_backoff=10, max_backoff=20)
def export_after_a_retry(tag: str) -> None:
    """Fails on its first run; the retry (re-enqueued by the worker) must keep the request's origin."""
    if tag not in _failed_once:
        _failed_once.add(tag)
        raise RuntimeError("first attempt fails")
    secevents.log_data_export(None, "orders", tag=tag)


@dramatiq.actor(queue_name="secevents_exit", max_retries=0)
def export_many(tag: str, count: int) -> None:
    for n in range(count):
        secevents.log_data_export(None, "orders", record_count=n, tag=f"{tag}-{n}")
