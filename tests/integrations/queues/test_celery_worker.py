"""A real `celery worker` (solo pool) on a real Redis broker: tasks keep the enqueuing request's origin."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")

from queue_helpers import make_web_app, post_export, python, running, wait_for_tag, worker_env

import graffer_secevents as secevents
from graffer_secevents._origin import ORIGIN_KEY
from graffer_secevents.testing import Capture, capture_events


@pytest.fixture(scope="module")
def celery_broker(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The broker's SQLite file, with kombu's tables made here first. Otherwise the worker starting and the
    first publisher both check that the tables are missing and both create them: "table kombu_message
    already exists" (seen once, `--randomly-seed=2760116249`)."""
    from queue_jobs_celery import celery_app

    folder = str(tmp_path_factory.mktemp("celery-broker"))
    with celery_app("broker_setup", folder).connection_for_write() as connection:
        assert connection.default_channel.session is not None  # opening the channel creates the tables
    return folder


@pytest.fixture(scope="module")
def worker(celery_broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Any]]:
    where = tmp_path_factory.mktemp("celery")
    events, log = where / "events.jsonl", where / "worker.log"
    env = worker_env(events, QUEUE_BROKER_DIR=celery_broker)
    command = [
        python(),
        "-m",
        "celery",
        "-A",
        "queue_jobs_celery",
        "worker",
        "--pool=solo",
        "--loglevel=WARNING",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
    ]
    with running(command, env, log) as proc:
        yield events, log, proc


def _publisher(broker: str, protocol: int) -> Any:
    from queue_jobs_celery import celery_app

    from graffer_secevents.integrations import celery as secevents_celery

    app = celery_app(f"web_v{protocol}", broker, protocol)
    secevents_celery.install(app)
    return app


@pytest.mark.parametrize("protocol", [1, 2])
def test_a_task_enqueued_in_a_request_carries_its_user_ip_and_request_id(
    protocol: int, celery_broker: str, worker: tuple[Path, Path, Any]
) -> None:
    events, log, proc = worker
    publisher = _publisher(celery_broker, protocol)
    web = make_web_app(lambda tag: publisher.send_task("jobs.export", args=[tag]))
    tag = f"proto{protocol}"
    with capture_events():  # the web process's own records stay out of stdout
        post_export(web, tag, request_id=f"req-celery-{protocol}")
    record = wait_for_tag(events, tag, log=log, proc=proc)
    assert record["usr"] == {"id": "42"}  # usr.id as written in the request; never the login or e-mail
    assert record["network"] == {"client": {"ip": "203.0.113.9"}}
    job = record["job"]
    assert job["system"] == "celery"
    assert job["name"] == "jobs.export"
    assert len(job["id"]) == 36
    assert job["origin"]["request_id"] == f"req-celery-{protocol}"
    assert job["origin"]["usr_id"] == "42"
    assert job["enqueued_at"].endswith("Z")
    assert "alice" not in str(record)
    assert "errors" not in record["secevents"], record["secevents"]


@pytest.mark.parametrize(
    ("task", "expected_usr"),
    [("jobs.export_as_service", {"id": "svc-7"}), ("jobs.export_then_set_user", {"id": "7"})],
)
def test_a_newer_actor_bound_inside_the_task_wins(
    task: str, expected_usr: dict[str, str], celery_broker: str, worker: tuple[Path, Path, Any]
) -> None:
    events, log, proc = worker
    publisher = _publisher(celery_broker, 2)
    web = make_web_app(lambda tag: publisher.send_task(task, args=[tag]))
    tag = f"newer-{task}"
    with capture_events():
        post_export(web, tag, request_id="req-newer")
    record = wait_for_tag(events, tag, log=log, proc=proc)
    assert record["usr"] == expected_usr
    assert "network" not in record  # the request's IP belongs to the request's user, not the newer actor
    assert record["job"]["origin"] == {"request_id": "req-newer", "usr_id": "42", "client_ip": "203.0.113.9"}


def test_a_user_set_inside_one_task_does_not_leak_into_the_next(
    celery_broker: str, worker: tuple[Path, Path, Any]
) -> None:
    events, log, proc = worker
    publisher = _publisher(celery_broker, 2)
    publisher.send_task("jobs.export_then_set_user", args=["leak-first"])
    wait_for_tag(events, "leak-first", log=log, proc=proc)
    publisher.send_task("jobs.export", args=["leak-second"])  # enqueued by no request, no actor
    record = wait_for_tag(events, "leak-second", log=log, proc=proc)
    assert "usr" not in record
    assert record["job"]["name"] == "jobs.export"


@pytest.mark.parametrize("protocol", [1, 2])
def test_a_forged_origin_header_is_not_trusted(
    protocol: int, celery_broker: str, worker: tuple[Path, Path, Any]
) -> None:
    """Whoever can publish can forge the header: unsigned under the worker's hash_key, it is dropped whole."""
    events, log, proc = worker
    publisher = _publisher(celery_broker, protocol)
    forged = {"v": 1, "usr_id": "admin", "client_ip": "198.51.100.66", "request_id": "forged"}
    tag = f"forged{protocol}"
    publisher.send_task("jobs.export", args=[tag], headers={ORIGIN_KEY: forged})
    record = wait_for_tag(events, tag, log=log, proc=proc)
    assert "usr" not in record
    assert "network" not in record
    assert "origin" not in record["job"]
    assert any("job.origin: unsigned" in note for note in record["secevents"]["errors"])


def test_a_task_enqueued_by_a_task_keeps_the_first_request_s_origin(
    celery_broker: str, worker: tuple[Path, Path, Any]
) -> None:
    events, log, proc = worker
    publisher = _publisher(celery_broker, 2)
    web = make_web_app(lambda tag: publisher.send_task("jobs.export_then_enqueue", args=[tag]))
    with capture_events():
        post_export(web, "chain", request_id="req-chain")
    record = wait_for_tag(events, "chain-child", log=log, proc=proc)
    assert record["usr"] == {"id": "42"}
    assert record["network"] == {"client": {"ip": "203.0.113.9"}}
    assert record["job"]["name"] == "jobs.export"
    assert record["job"]["origin"]["request_id"] == "req-chain"
    assert "errors" not in record["secevents"]


def test_in_eager_mode_the_task_runs_in_the_request_and_says_so(security_events: Capture) -> None:
    """Not a substitute for a worker (no message is published), but an app under eager mode in its own tests
    still sees the request's user on the task's events, and which task wrote them."""
    from celery import Celery

    from graffer_secevents.integrations import celery as secevents_celery

    app = Celery("eager")
    app.conf.task_always_eager = True
    secevents_celery.install(app)

    @app.task(name="eager.export")
    def export(tag: str) -> None:
        secevents.log_data_export(None, "orders", tag=tag)

    web = make_web_app(export.delay)
    post_export(web, "eager", request_id="req-eager")
    record = security_events.assert_emitted("data_export", usr__id="42", job__name="eager.export")
    assert record["network"] == {"client": {"ip": "203.0.113.9"}}
    assert record["http"]["request_id"] == "req-eager"
    assert "origin" not in record["job"]


def test_records_reach_stdout_as_json_lines_though_the_worker_redirects_stdout_to_its_logger() -> None:
    """A Celery worker replaces `sys.stdout` and `sys.stderr` with a `LoggingProxy` by default
    (`worker_redirect_stdouts`): a record written through it became a log line around the JSON
    (`[... WARNING/MainProcess] {...}`) on stderr. The default output is the process's own stdout."""
    code = textwrap.dedent(
        """
        import logging, sys
        from celery import Celery
        import graffer_secevents as secevents

        app = Celery("redirected")
        app.log.setup_logging_subsystem(loglevel="WARNING")
        app.log.redirect_stdouts_to_logger(logging.getLogger("celery.redirected"), "WARNING")  # as the worker
        assert type(sys.stdout).__name__ == "LoggingProxy"
        print("the application's own print")  # still Celery's to log
        for n in range(20):
            secevents.log_data_export(None, "orders", record_count=n)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECEVENTS_")}
    result = subprocess.run(
        [python(), "-c", code],
        capture_output=True,
        env={**env, "SECEVENTS_METRICS": "none"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["evt"]["record_count"] for r in records if "evt" in r] == list(range(20))
    assert records[-1]["secevents"]["end"] is True
    assert b"data_export" not in result.stderr
    assert b"the application's own print" in result.stderr  # Celery's redirect is left as it was
