"""taskiq's `InMemoryBroker` (the broker FastAPI apps test with, and embed): tasks run in the web process, in a
task created while the request ran. Concurrent requests' tasks each carry their own request's origin, after
the response too; a client process's `broker.shutdown()` ends nothing."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("taskiq")

import httpx
from fastapi import FastAPI, Header
from taskiq import InMemoryBroker

import graffer_secevents as secevents
from graffer_secevents.integrations.fastapi import SecurityEventsMiddleware
from graffer_secevents.integrations.taskiq import SecurityEventsMiddleware as TaskiqMiddleware
from graffer_secevents.testing import Capture


def test_concurrent_requests_tasks_each_carry_their_own_origin(security_events: Capture) -> None:
    broker = InMemoryBroker().with_middlewares(TaskiqMiddleware())

    @broker.task
    async def later(tag: str) -> None:
        await asyncio.sleep(0.02)  # after the response was sent
        secevents.log_data_export(None, "orders", tag=tag)

    @broker.task(task_name="sync_now")
    def now(tag: str) -> None:  # run in taskiq's thread pool
        secevents.log_data_export(None, "orders", tag=tag)

    app = FastAPI()
    app.add_middleware(SecurityEventsMiddleware)

    @app.post("/kick/{n}")
    async def kick(n: int, x_user: str = Header()) -> dict[str, str]:
        secevents.set_user(x_user)
        await later.kiq(f"later-{n}")
        await now.kiq(f"now-{n}")
        return {}

    async def drive() -> None:
        await broker.startup()
        transport = httpx.ASGITransport(app=app, client=("203.0.113.5", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            responses = await asyncio.gather(
                *(
                    client.post(f"/kick/{n}", headers={"X-User": f"u{n}", "X-Request-ID": f"req-{n}"})
                    for n in range(8)
                )
            )
        assert all(r.status_code == 200 for r in responses)
        await asyncio.sleep(0.2)
        await broker.shutdown()

    asyncio.run(drive())
    by_tag = {r["context"]["tag"]: r for r in security_events.records}
    assert sorted(by_tag) == sorted(f"{kind}-{n}" for kind in ("later", "now") for n in range(8))
    for tag, record in by_tag.items():
        n = tag.split("-")[1]
        assert record["usr"]["id"] == f"u{n}", record
        assert record["job"]["system"] == "taskiq"
        assert record["job"]["origin"] == {
            "request_id": f"req-{n}",
            "usr_id": f"u{n}",
            "client_ip": "203.0.113.5",
        }
        assert "errors" not in record["secevents"]
    assert by_tag["now-0"]["job"]["name"] == "sync_now"


def test_a_task_kicked_outside_a_request_and_a_label_that_is_not_an_origin(security_events: Capture) -> None:
    from graffer_secevents.integrations.taskiq import ORIGIN_LABEL

    broker = InMemoryBroker().with_middlewares(TaskiqMiddleware())

    @broker.task
    async def export(tag: str) -> None:
        secevents.log_data_export(None, "orders", tag=tag)

    async def drive() -> None:
        await broker.startup()
        await export.kiq("plain")
        await export.kicker().with_labels(**{ORIGIN_LABEL: "not json"}).kiq("garbled")
        await asyncio.sleep(0.1)
        await broker.shutdown()

    with security_events.lenient():
        asyncio.run(drive())
    by_tag = {r["context"]["tag"]: r for r in security_events.records}
    assert "usr" not in by_tag["plain"] and "errors" not in by_tag["plain"]["secevents"]
    assert by_tag["plain"]["job"]["system"] == "taskiq"
    assert by_tag["garbled"]["secevents"]["errors"] == ["job.origin: text that is not JSON; dropped"]


def test_a_retried_task_keeps_the_origin_of_the_first_kick(security_events: Capture) -> None:
    """taskiq's retry middleware re-kicks the message with its labels, ours included: from a worker, where
    no request runs, the retry still names the request that kicked the first attempt."""
    import orjson
    from taskiq import SimpleRetryMiddleware

    from graffer_secevents._context import request_context
    from graffer_secevents.integrations.taskiq import ORIGIN_LABEL

    broker = InMemoryBroker().with_middlewares(
        SimpleRetryMiddleware(default_retry_count=2), TaskiqMiddleware()
    )
    attempts: list[str] = []

    @broker.task(retry_on_error=True)
    async def flaky(tag: str) -> None:
        attempts.append(tag)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        secevents.log_data_export(None, "orders", tag=tag)

    with request_context(
        secevents.RequestContext(client_ip="203.0.113.5", request_id="req-retry", user=secevents.User(id=7))
    ):
        origin = orjson.dumps(secevents.job_origin()).decode()

    async def drive() -> None:
        await broker.startup()
        await flaky.kicker().with_labels(**{ORIGIN_LABEL: origin}).kiq("retried")  # as a web process sent it
        await asyncio.sleep(0.3)
        await broker.shutdown()

    asyncio.run(drive())
    assert attempts == ["retried", "retried"]
    (record,) = security_events.records
    assert record["usr"] == {"id": "7"}
    assert record["job"]["origin"]["request_id"] == "req-retry"
    assert record["job"]["enqueued_at"] == orjson.loads(origin)["enqueued_at"]  # not re-captured on retry
