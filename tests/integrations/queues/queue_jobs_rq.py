"""The RQ job functions: the web process enqueues them by reference, `rq worker` imports them to run."""

from __future__ import annotations

import os

import graffer_secevents as secevents

if "QUEUE_EVENTS_FILE" in os.environ:  # the worker (its work horse): records to the file the test reads
    secevents.configure(
        output=open(os.environ["QUEUE_EVENTS_FILE"], "a", buffering=1),  # noqa: SIM115
        delivery=os.environ.get("QUEUE_DELIVERY", "sync"),  # type: ignore[arg-type]
    )


def export(tag: str) -> None:
    secevents.log_data_export(None, "orders", record_count=3, tag=tag)


def export_as_service(tag: str) -> None:
    with secevents.actor("jobs:reindex", user=secevents.User(id="svc-7")):
        secevents.log_data_export(None, "orders", tag=tag)


def export_many(tag: str, count: int) -> None:
    for n in range(count):
        secevents.log_data_export(None, "orders", record_count=n, tag=f"{tag}-{n}")
