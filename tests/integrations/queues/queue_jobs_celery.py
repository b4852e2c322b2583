"""The Celery app both sides import: the web process publishes, `celery worker` runs the tasks."""

from __future__ import annotations

import os

from celery import Celery

import graffer_secevents as secevents
from graffer_secevents.integrations import celery as secevents_celery


def celery_app(name: str, folder: str, protocol: int = 2) -> Celery:
    """A Celery app on kombu's SQLAlchemy transport over an SQLite file in `folder` (a real broker shared by
    processes, transactional: a message is never read half-written, as kombu's filesystem transport can be
    when the worker lists a file before the publisher has written it; Celery's Redis transport needs
    redis-py >= 6.4, which arq's pin below 6 rules out in one environment)."""
    app = Celery(name, broker=f"sqla+sqlite:///{os.path.join(os.path.abspath(folder), 'broker.sqlite3')}")
    app.conf.update(
        task_protocol=protocol,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_polling_interval=0.05,
    )
    return app


app = celery_app("queue_jobs_celery", os.environ.get("QUEUE_BROKER_DIR", "."))
secevents_celery.install(app)

if "QUEUE_EVENTS_FILE" in os.environ:  # the worker process: records to the file the test reads
    secevents.configure(output=open(os.environ["QUEUE_EVENTS_FILE"], "a", buffering=1), delivery="sync")  # noqa: SIM115


@app.task(name="jobs.export")
def export(tag: str) -> None:
    secevents.log_data_export(None, "orders", record_count=3, tag=tag)


@app.task(name="jobs.export_as_service")
def export_as_service(tag: str) -> None:
    with secevents.actor("jobs:reindex", user=secevents.User(id="svc-7")):
        secevents.log_data_export(None, "orders", tag=tag)


@app.task(name="jobs.export_then_set_user")
def export_then_set_user(tag: str) -> None:
    secevents.set_user(secevents.User(id="7"))
    secevents.log_data_export(None, "orders", tag=tag)


@app.task(name="jobs.export_then_enqueue")
def export_then_enqueue(tag: str) -> None:
    """A task that enqueues another: the second runs with the first request's origin."""
    app.send_task("jobs.export", args=[f"{tag}-child"])
