"""`secevents.actor(...)`: who or what acts in system work, as a context manager and a decorator."""

from __future__ import annotations

import asyncio
import threading

import pytest

import graffer_secevents as secevents
from graffer_secevents import EventValidationError
from graffer_secevents.testing import Capture, hashed


def test_events_inside_say_who_acted_and_events_outside_say_nobody(security_events: Capture) -> None:
    with secevents.actor("cron:purge", user=secevents.User(id="svc-1", login="purger@example.com")):
        secevents.log_user_deleted(None, target_user=1002)
    secevents.log_user_deleted(None, target_user=1003)
    inside, outside = security_events.records
    assert inside["usr"] == {"id": "svc-1", "login": hashed("purger@example.com")}  # privacy applies
    assert inside["actor"] == {"name": "cron:purge"}
    assert inside["target"] == {"usr": {"id": "1002"}}
    assert "usr" not in outside and "actor" not in outside


def test_a_name_alone_names_the_process_and_no_user(security_events: Capture) -> None:
    with secevents.actor("manage.py migrate", reason="deploy:42"):
        secevents.emit("config_changed", outcome="success")
    record = security_events.assert_emitted("config_changed", actor__name="manage.py migrate")
    assert record["actor"]["reason"] == "deploy:42"
    assert "usr" not in record


def test_the_event_s_own_user_and_a_user_set_inside_win_over_the_actor_s(security_events: Capture) -> None:
    with secevents.actor("script", user="svc-1"):
        secevents.log_data_export("ada", "orders")
        secevents.set_user("7")
        secevents.log_data_export(None, "orders")
    own, newer = security_events.records
    assert own["usr"] == {"id": "ada"} and own["actor"] == {"name": "script"}
    assert newer["usr"] == {"id": "7"}


def test_blocks_nest_and_the_innermost_wins_until_it_ends(security_events: Capture) -> None:
    with secevents.actor("outer", user="svc-outer"):
        with secevents.actor("inner"):
            secevents.log_data_export(None, "a")
        secevents.log_data_export(None, "b")
    inner, outer = security_events.records
    assert inner["actor"] == {"name": "inner"} and "usr" not in inner
    assert outer["actor"] == {"name": "outer"} and outer["usr"] == {"id": "svc-outer"}


def test_as_a_decorator_on_sync_and_async_functions(security_events: Capture) -> None:
    @secevents.actor("nightly-export", reason="scheduled")
    def export() -> str:
        secevents.log_data_export(None, "orders")
        return "done"

    @secevents.actor("async-export")
    async def export_async() -> str:
        await asyncio.sleep(0)
        secevents.log_data_export(None, "orders")
        return "done"

    assert export() == "done"
    assert asyncio.run(export_async()) == "done"
    secevents.log_data_export(None, "after")
    names = [r.get("actor", {}).get("name") for r in security_events.records]
    assert names == ["nightly-export", "async-export", None]


def test_one_actor_object_reentered_and_another_thread_unaffected(security_events: Capture) -> None:
    acting = secevents.actor("svc")
    with acting, acting:
        other = threading.Thread(target=lambda: secevents.log_data_export(None, "other-thread"))
        other.start()
        other.join()
        secevents.log_data_export(None, "this-thread")
    secevents.log_data_export(None, "after")
    by_object = {r["evt"]["object"]: r.get("actor") for r in security_events.records}
    assert by_object == {"other-thread": None, "this-thread": {"name": "svc"}, "after": None}


@pytest.mark.parametrize(
    ("name", "reason", "note"),
    [
        (42, None, "actor.name: expected a string, got int; written as text"),
        ("x" * 200, None, "actor.name: 200 characters, truncated to 128"),
        ("cron\n[fake] admin", None, "actor.name: control characters replaced"),
        (
            "cron",
            "has spaces and ☃",
            "actor.reason: expected up to 64 characters of [A-Za-z0-9_.:-]; dropped",
        ),
        (None, None, "actor: neither a name nor a user given"),
    ],
)
def test_bad_actor_input_is_noted_in_lenient_mode_and_raises_in_strict_mode(
    security_events: Capture, name: object, reason: object, note: str
) -> None:
    with security_events.lenient(), secevents.actor(name, reason=reason):  # type: ignore[arg-type]
        secevents.log_data_export(None, "orders")
    record = security_events.records[-1]
    assert note in record["secevents"]["errors"]
    if "control" in note:
        assert record["actor"]["name"] == "cron?[fake] admin"
    with pytest.raises(EventValidationError, match="actor"), secevents.actor(name, reason=reason):  # type: ignore[arg-type]
        secevents.log_data_export(None, "orders")
