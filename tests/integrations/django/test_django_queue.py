"""A Django view enqueues a Celery task; a real `celery worker` runs it: the task's events carry the logged-in
user, the client IP, the request id and a pseudonym of the session (tests/integrations/queues/ has the rest)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "queues"))  # the shared queue test helpers

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import clear_url_caches, path
from queue_helpers import python, running, wait_for_tag, worker_env
from queue_jobs_celery import celery_app

from graffer_secevents.integrations import celery as secevents_celery
from graffer_secevents.testing import Capture, hashed

_publisher: list[Any] = []


def enqueue_export(request: HttpRequest, tag: str) -> HttpResponse:
    _publisher[0].send_task("jobs.export", args=[tag])
    return HttpResponse("queued")


# The project's URLconf (this directory's conftest configured Django and built it).
sys.modules[settings.ROOT_URLCONF].urlpatterns.append(path("queue/export/<str:tag>/", enqueue_export))
clear_url_caches()


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Any]]:
    broker = str(tmp_path_factory.mktemp("django-celery-broker"))
    app = celery_app("django_web", broker)
    secevents_celery.install(app)
    _publisher[:] = [app]
    where = tmp_path_factory.mktemp("django-celery")
    events, log = where / "events.jsonl", where / "worker.log"
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
    with running(command, worker_env(events, QUEUE_BROKER_DIR=broker), log) as proc:
        yield events, log, proc


def test_a_task_enqueued_by_a_logged_in_django_view_keeps_the_user_ip_request_and_session(
    worker: tuple[Path, Path, Any], accounts: dict[str, Any], security_events: Capture
) -> None:
    events, log, proc = worker
    client = Client()
    client.force_login(accounts["ada"])
    response = client.get(
        "/queue/export/dj-1/", HTTP_X_REQUEST_ID="req-django-1", REMOTE_ADDR="198.51.100.20"
    )
    assert response.status_code == 200
    session_key = client.session.session_key
    record = wait_for_tag(events, "dj-1", log=log, proc=proc)
    assert record["usr"] == {"id": str(accounts["ada"].pk)}
    assert record["network"] == {"client": {"ip": "198.51.100.20"}}
    assert record["job"]["name"] == "jobs.export"
    origin = record["job"]["origin"]
    assert origin["request_id"] == "req-django-1"
    assert origin["session_id"] == hashed(session_key)
    assert session_key not in str(record)
    assert not re.search(r"(?<![0-9a-f])ada(?![0-9a-f])", str(record))  # not inside a hex id
