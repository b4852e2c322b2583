"""`add_security_context` in a real structlog chain, inside real Flask requests (Flask's test client).

structlog is configured locally with `structlog.wrap_logger`, never globally: the test's logger is its own.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import structlog
from flask import Flask
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

import graffer_secevents as api
from graffer_secevents.integrations.flask import SecurityEvents
from graffer_secevents.integrations.structlog import SECURITY_CONTEXT_KEYS, add_security_context
from graffer_secevents.testing import Capture

PEER = "203.0.113.9"


class Account:
    is_authenticated = True

    def __init__(self, pk: int) -> None:
        self.pk = pk

    def get_username(self) -> str:
        return "ada"


class Exploding:
    is_authenticated = True

    @property
    def pk(self) -> int:
        raise RuntimeError("lazy user lookup failed")


@pytest.fixture
def app_log() -> tuple[Any, io.StringIO]:
    out = io.StringIO()
    log = structlog.wrap_logger(
        structlog.PrintLogger(out),
        processors=[add_security_context, structlog.processors.JSONRenderer(sort_keys=True)],
    )
    return log, out


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def build_app(log: Any, user: object) -> Flask:
    app = Flask(__name__)
    SecurityEvents(app)

    @app.get("/")
    def home() -> str:
        api.set_user(user)
        log.info("cart viewed", items=3)
        api.log_login(user, "success")
        return "ok"

    @app.get("/preset")
    def preset() -> str:
        log.info("own fields win", **{"usr.id": "mine", "http.request_id": "theirs"})
        return "ok"

    return app


def test_a_log_line_inside_a_request_carries_the_records_request_id_ip_and_hashed_user(
    security_events: Capture, app_log: tuple[Any, io.StringIO]
) -> None:
    api.configure(hash_key="structlog-test-key", privacy={"usr.id": "hash", "network.client.ip": "truncate"})
    log, out = app_log
    client = build_app(log, Account(1001)).test_client()
    response = client.get("/", headers={"X-Request-ID": "req-abc-123"}, environ_base={"REMOTE_ADDR": PEER})
    assert response.status_code == 200

    (line,) = lines(out)
    (record,) = security_events.records
    assert line["event"] == "cart viewed" and line["items"] == 3
    assert line["http.request_id"] == record["http"]["request_id"] == "req-abc-123"
    # The IP and usr.id go through the same privacy rules as the record (truncated; hashed under the key).
    assert line["network.client.ip"] == record["network"]["client"]["ip"] != PEER
    assert line["network.client.ip"].startswith("203.0.113.")
    # usr.id goes through the same privacy rules as the record (hashed under the configured key).
    assert line["usr.id"] == record["usr"]["id"]
    assert line["usr.id"] != "1001" and line["usr.id"].startswith("anon_")


def test_the_applications_own_keys_are_not_overwritten(app_log: tuple[Any, io.StringIO]) -> None:
    log, out = app_log
    build_app(log, Account(7)).test_client().get("/preset", environ_base={"REMOTE_ADDR": PEER})
    (line,) = lines(out)
    assert line["usr.id"] == "mine" and line["http.request_id"] == "theirs"
    assert line["network.client.ip"] == PEER


def test_outside_a_request_nothing_is_added(app_log: tuple[Any, io.StringIO]) -> None:
    log, out = app_log
    api.set_user(Account(1001))
    try:
        log.info("batch job finished")
    finally:
        api.set_user(None)  # bound on pytest's own thread: not for the next test's events
    (line,) = lines(out)
    assert line == {"event": "batch job finished"}
    assert not set(line) & set(SECURITY_CONTEXT_KEYS)


def test_a_user_object_that_raises_costs_only_the_user_field(
    security_events: Capture, app_log: tuple[Any, io.StringIO]
) -> None:
    log, out = app_log
    with security_events.lenient():
        response = build_app(log, Exploding()).test_client().get("/", environ_base={"REMOTE_ADDR": PEER})
    assert response.status_code == 200
    (line,) = lines(out)
    assert line["event"] == "cart viewed"
    assert "usr.id" not in line
    assert line["network.client.ip"] == PEER


def test_otel_span_ids_match_the_records(security_events: Capture, app_log: tuple[Any, io.StringIO]) -> None:
    log, out = app_log
    tracer = TracerProvider().get_tracer("test")
    app = build_app(log, Account(1))

    @app.get("/traced")
    def traced() -> str:
        with tracer.start_as_current_span("view"):
            log.info("inside a span")
            api.log_login(Account(1), "success")
        return "ok"

    app.test_client().get("/traced", environ_base={"REMOTE_ADDR": PEER})
    (line,) = lines(out)
    (record,) = security_events.records
    assert trace.get_current_span().get_span_context().is_valid is False  # the span ended with the view
    assert line["trace_id"] == record["trace_id"] and len(line["trace_id"]) == 32
    assert line["span_id"] == record["span_id"] and len(line["span_id"]) == 16


def test_a_processor_error_never_loses_the_line() -> None:
    class BrokenDict(dict[str, Any]):
        def setdefault(self, key: str, default: Any = None) -> Any:
            raise RuntimeError("hostile event dict")

    app = Flask(__name__)
    SecurityEvents(app)
    seen: list[Any] = []

    @app.get("/")
    def home() -> str:
        with trace_span():
            seen.append(add_security_context(None, "info", BrokenDict(event="x")))
        return "ok"

    app.test_client().get("/", environ_base={"REMOTE_ADDR": PEER})
    (event_dict,) = seen
    assert event_dict["event"] == "x" and event_dict["network.client.ip"] == PEER
    assert "trace_id" not in event_dict


def trace_span() -> Any:
    return TracerProvider().get_tracer("test").start_as_current_span("view")


DOCS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "integrations" / "structlog.md"

DOCS_DRIVER = """
import json, sys
from flask import Flask
from graffer_secevents.integrations.flask import SecurityEvents

app = Flask(__name__)
SecurityEvents(app)
log = structlog.get_logger()

@app.get("/")
def home():
    log.info("cart viewed", items=3)
    return "ok"

app.test_client().get("/", headers={"X-Request-ID": "req-abc-123"}, environ_base={"REMOTE_ADDR": "203.0.113.9"})
log.info("outside")
"""


def test_the_documented_configuration_works_in_a_fresh_process(tmp_path: Path) -> None:
    (setup, *_rest) = re.findall(r"```python\n(.*?)```", DOCS_PAGE.read_text(), re.S)
    script = tmp_path / "docs_example.py"
    script.write_text(setup + DOCS_DRIVER)
    done = subprocess.run(
        [sys.executable, "-W", "error", str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    inside, outside = (json.loads(line) for line in done.stdout.splitlines())
    assert inside["event"] == "cart viewed" and inside["level"] == "info"
    assert inside["http.request_id"] == "req-abc-123" and inside["network.client.ip"] == PEER
    assert not set(outside) & set(SECURITY_CONTEXT_KEYS)
