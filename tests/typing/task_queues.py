"""The task-queue page's examples (docs/integrations/task-queues.md) and `secevents.actor(...)`, type-checked
with ``mypy --strict`` and pyright as users would write them (not run by pytest)."""

from __future__ import annotations

from typing import Any

import dramatiq
from celery import Celery
from dramatiq.brokers.redis import RedisBroker
from redis import Redis
from rq import Queue
from taskiq import InMemoryBroker

import graffer_secevents as secevents
from graffer_secevents.integrations import arq as secevents_arq
from graffer_secevents.integrations import celery as secevents_celery
from graffer_secevents.integrations import rq as secevents_rq
from graffer_secevents.integrations.dramatiq import SecurityEventsMiddleware
from graffer_secevents.integrations.taskiq import SecurityEventsMiddleware as TaskiqMiddleware

app = Celery("shop", broker="redis://localhost:6379/0")
secevents_celery.install(app)

secevents_rq.install()
queue = Queue("exports", connection=Redis())
worker_class: type[secevents_rq.SecurityEventsWorker] = secevents_rq.SecurityEventsWorker

broker = RedisBroker(url="redis://localhost:6379/0")  # type: ignore[no-untyped-call]  # dramatiq leaves it untyped
broker.add_middleware(SecurityEventsMiddleware())
dramatiq.set_broker(broker)

secevents_arq.install()


async def export_orders(ctx: dict[str, Any], account_id: int) -> None:
    secevents.log_data_export(None, "orders", record_count=account_id)


class WorkerSettings:
    functions = (export_orders,)
    on_job_start = secevents_arq.on_job_start
    on_job_end = secevents_arq.on_job_end


def purge(account_id: int) -> None:
    with secevents.actor("cron:purge", user=secevents.User(id="svc-purger"), reason="scheduled") as scope:
        secevents.log_user_deleted(None, target_user=account_id)
        assert scope.name == "cron:purge"


@secevents.actor("billing-sync", user=secevents.User(id="svc-billing"))
def sync(account_id: int) -> str:
    secevents.log_privilege_change(None, account_id, from_role="trial", to_role="customer")
    return "done"


@secevents.actor("async-export")
async def export_async(account_id: int) -> int:
    return account_id


def uses_the_decorated() -> None:
    result: str = sync(1)
    del result


taskiq_broker = InMemoryBroker().with_middlewares(TaskiqMiddleware())

# Any other queue: the origin as a JSON-safe dict in the request, `job(...)` in the worker.
origin: dict[str, Any] = secevents.job_origin()


def huey_task(tag: str, origin: dict[str, Any] | str | None = None, task_id: str | None = None) -> None:
    with secevents.job(origin, system="huey", name="shop.export", job_id=task_id) as bound:
        secevents.log_data_export(None, "orders", tag=tag)
        assert bound.system == "huey"


@secevents.job(origin, system="thread")
def in_a_thread(account_id: int) -> str:
    return str(account_id)


@secevents.job(origin, system="thread")
async def in_a_task(account_id: int) -> int:
    return account_id


def uses_the_jobs() -> None:
    text: str = in_a_thread(1)
    del text
