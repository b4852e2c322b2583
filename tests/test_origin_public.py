"""The public origin API, `secevents.job_origin()` and `secevents.job(...)`: any queue, scheduler or thread the
library has no integration for carries the request's origin to its jobs, validated as the integrations
validate theirs (the real consumer processes: tests/integrations/queues/test_any_queue.py)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import orjson
import pytest

import graffer_secevents as secevents
from graffer_secevents import EventValidationError, RequestContext
from graffer_secevents._context import request_context
from graffer_secevents._tools.schema import check_record
from graffer_secevents.testing import Capture


def _request() -> RequestContext:
    return RequestContext(
        client_ip="203.0.113.9",
        request_id="req-any-1",
        method="POST",
        path="/export",
        user_agent="Mozilla/5.0",
        user=secevents.User(id=42, login="ada@example.com", email="ada@example.com"),
    )


def test_job_origin_is_a_small_signed_json_dict_with_no_secret(security_events: Capture) -> None:
    with request_context(_request()):
        origin = secevents.job_origin()
    text = orjson.dumps(origin).decode()
    assert origin["usr_id"] == "42" and origin["client_ip"] == "203.0.113.9"
    assert origin["request_id"] == "req-any-1" and isinstance(origin["sig"], str)
    assert len(text) < 512
    for secret in ("ada@example.com", "Mozilla", "/export"):
        assert secret not in text


def test_a_job_writes_the_origin_s_user_ip_and_identity(security_events: Capture) -> None:
    with request_context(_request()):
        origin = secevents.job_origin()
    with secevents.job(origin, system="huey", name="shop.export_orders", job_id="t-1"):
        secevents.log_data_export(None, "orders", record_count=3)
    record = security_events.assert_emitted("data_export", usr__id="42")
    assert record["network"]["client"]["ip"] == "203.0.113.9"
    assert record["job"]["system"] == "huey"
    assert record["job"]["name"] == "shop.export_orders" and record["job"]["id"] == "t-1"
    assert record["job"]["enqueued_at"] == origin["enqueued_at"]
    assert record["job"]["origin"]["request_id"] == "req-any-1"
    assert "errors" not in record["secevents"]
    assert check_record(record) == []


def test_the_origin_may_travel_as_json_text(security_events: Capture) -> None:
    with request_context(_request()):
        text = orjson.dumps(secevents.job_origin()).decode()
    with secevents.job(text, system="kafka", job_id=7):
        secevents.log_data_export(None, "orders")
    record = security_events.assert_emitted("data_export", usr__id="42")
    assert record["job"]["id"] == "7"


def test_a_forged_origin_raises_in_strict_mode_and_the_job_still_runs(security_events: Capture) -> None:
    ran = []
    with secevents.job({"v": 1, "usr_id": "admin", "client_ip": "10.0.0.1"}, system="huey"):
        ran.append(True)  # entering never raises: only the events inside say what was dropped
        with pytest.raises(EventValidationError, match=r"job\.origin: unsigned"):
            secevents.log_data_export(None, "orders")
    assert ran == [True]


def test_a_tampered_origin_is_dropped_whole_and_noted(security_events: Capture) -> None:
    with request_context(_request()):
        origin = secevents.job_origin()
    with security_events.lenient(), secevents.job({**origin, "usr_id": "1"}, system="huey"):
        secevents.log_data_export(None, "orders")
    record = security_events.records[-1]
    assert "usr" not in record and "network" not in record
    assert "origin" not in record["job"]
    assert record["secevents"]["errors"] == [
        "job.origin: signature does not verify under this process's hash_key; dropped"
    ]


@pytest.mark.parametrize(
    ("origin", "note"),
    [
        ("{not json", "job.origin: text that is not JSON; dropped"),
        (b"x" * 10_000, "job.origin: 10000 characters of text, over 4096; dropped"),
        (12, "job.origin: expected a mapping, got a int; dropped"),
        ({"v": 2}, "job.origin: unknown version (a int); dropped"),
    ],
)
def test_an_unreadable_origin_is_noted_and_the_job_bound(
    security_events: Capture, origin: object, note: str
) -> None:
    with security_events.lenient(), secevents.job(origin, system="cron_q", name="n", job_id="1"):
        secevents.log_data_export(None, "orders")
    record = security_events.records[-1]
    assert record["job"] == {"system": "cron_q", "name": "n", "id": "1"}
    errors = record["secevents"]["errors"]
    assert errors == [note]
    assert check_record(record) == []


def test_a_malformed_system_is_written_as_other_and_noted(security_events: Capture) -> None:
    with security_events.lenient(), secevents.job(None, system="Huey Queue!\n"):
        secevents.log_data_export(None, "orders")
    record = security_events.records[-1]
    assert record["job"] == {"system": "other"}
    assert record["secevents"]["errors"][0].startswith("job.system: expected 1-32 characters")
    assert check_record(record) == []


def test_the_job_is_unbound_after_the_block_even_when_it_fails(security_events: Capture) -> None:
    def failing_job() -> None:
        with secevents.job(None, system="huey"):
            secevents.set_user("7")
            raise RuntimeError("the job failed")

    with pytest.raises(RuntimeError):
        failing_job()
    secevents.log_data_export(None, "orders")
    record = security_events.records[-1]
    assert "job" not in record and "usr" not in record


def test_an_actor_inside_the_job_wins_and_the_origin_stays_under_job(security_events: Capture) -> None:
    with request_context(_request()):
        origin = secevents.job_origin()
    with secevents.job(origin, system="huey"), secevents.actor("svc", user=secevents.User(id="svc-1")):
        secevents.log_data_export(None, "orders")
    record = security_events.assert_emitted("data_export", usr__id="svc-1")
    assert "network" not in record
    assert record["job"]["origin"]["usr_id"] == "42"


def test_work_handed_off_inside_a_job_passes_the_first_request_s_origin_on(security_events: Capture) -> None:
    with request_context(_request()):
        first = secevents.job_origin()
    with secevents.job(first, system="huey"):
        second = secevents.job_origin()
    with secevents.job(second, system="taskiq"):
        secevents.log_data_export(None, "orders")
    record = security_events.assert_emitted("data_export", usr__id="42")
    assert record["job"]["origin"]["request_id"] == "req-any-1"


def test_as_a_decorator_each_call_is_bound_sync_async_and_in_a_thread(security_events: Capture) -> None:
    with request_context(_request()):
        origin = secevents.job_origin()

    @secevents.job(origin, system="thread")
    def sync_job(tag: str) -> None:
        secevents.log_data_export(None, "orders", tag=tag)

    @secevents.job(origin, system="thread", name="async-job")
    async def async_job(tag: str) -> None:
        secevents.log_data_export(None, "orders", tag=tag)

    thread = threading.Thread(target=sync_job, args=("in-thread",))  # a thread starts with an empty context
    thread.start()
    thread.join()
    asyncio.run(async_job("async"))
    sync_job("here")
    secevents.log_data_export(None, "orders", tag="after")
    by_tag: dict[str, Any] = {r["context"]["tag"]: r for r in security_events.records}
    for tag in ("in-thread", "async", "here"):
        assert by_tag[tag]["usr"] == {"id": "42"}, tag
        assert by_tag[tag]["job"]["origin"]["request_id"] == "req-any-1"
    assert by_tag["here"]["job"]["name"] == f"{__name__}.{sync_job.__qualname__}"
    assert by_tag["async"]["job"]["name"] == "async-job"
    assert "job" not in by_tag["after"] and "usr" not in by_tag["after"]


def test_a_worker_with_stricter_privacy_applies_its_own_modes(security_events: Capture) -> None:
    with request_context(_request()):
        origin = secevents.job_origin()
    secevents.configure(privacy={"usr.id": "drop", "network.client.ip": "truncate"})
    with secevents.job(origin, system="huey"):
        secevents.log_data_export(None, "orders")
    record = security_events.records[-1]
    assert "usr" not in record
    assert record["network"]["client"]["ip"] == "203.0.113.0"
