"""The OpenTelemetry bridge with the real SDK: trace ids in the record, one span event per security event.

A provider-local tracer and the SDK's in-memory exporter: the global tracer provider (settable once per process)
is never touched. ddtrace is imported in this process by its pytest plugin, with no span active, which is also
the case checked here: ddtrace present but idle leaves the OpenTelemetry span in charge.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import graffer_secevents as api
from graffer_secevents import RequestContext, User
from graffer_secevents._bridges import otel_attributes
from graffer_secevents._context import request_context
from graffer_secevents.testing import Capture

_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))
TRACER = _PROVIDER.get_tracer("graffer_secevents.tests")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def finished(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


def event_attributes(span: ReadableSpan) -> dict[str, Any]:
    (event,) = span.events
    return dict(event.attributes or {})


REQUEST = RequestContext(
    client_ip="203.0.113.9", user_agent="Mozilla/5.0 (X11)", method="POST", path="/login"
)


def test_the_record_carries_the_active_spans_ids_as_32_and_16_hex(
    security_events: Capture, spans: InMemorySpanExporter
) -> None:
    with TRACER.start_as_current_span("login") as span:
        api.log_login(User(id="u-1", login="ada"), "success")
    record = security_events.assert_emitted("authn_login_success")
    context = span.get_span_context()
    assert record["trace_id"] == f"{context.trace_id:032x}"
    assert record["span_id"] == f"{context.span_id:016x}"
    assert re.fullmatch(r"[0-9a-f]{32}", record["trace_id"]) and re.fullmatch(
        r"[0-9a-f]{16}", record["span_id"]
    )
    assert "dd" not in record  # ddtrace is imported here, but has no span


def test_the_span_gets_an_event_named_after_the_type_with_semconv_attributes(
    security_events: Capture, spans: InMemorySpanExporter
) -> None:
    with TRACER.start_as_current_span("login"), request_context(REQUEST):
        api.log_login(None, "failure", login="ada@example.com", exists=False, reason="unknown_user")
    record = security_events.assert_emitted("authn_login_fail")
    span = finished(spans, "login")
    assert [event.name for event in span.events] == ["authn_login_fail"]
    assert event_attributes(span) == {
        "user.id": record["usr"]["id"],
        "user.name": record["usr"]["login"],  # the processed (hashed) login, as in the log
        "usr.exists": False,
        "client.address": "203.0.113.9",
        "user_agent.original": "Mozilla/5.0 (X11)",
        "evt.name": "authentication",
        "evt.category": "authentication",
        "evt.outcome": "failure",
        "evt.reason": "unknown_user",
    }
    assert record["usr"]["login"].startswith("anon_")


def test_privacy_rules_apply_to_the_span_event_as_to_the_log(
    security_events: Capture, spans: InMemorySpanExporter
) -> None:
    api.configure(privacy={"network.client.ip": "truncate", "usr.email": "drop", "usr.id": "hash"})
    with TRACER.start_as_current_span("login"), request_context(REQUEST):
        api.log_login(User(id="u-1", login="ada", email="ada@example.com", name="Ada L."), "success")
    record = security_events.assert_emitted("authn_login_success")
    attributes = event_attributes(finished(spans, "login"))
    assert attributes["client.address"] == record["network"]["client"]["ip"] == "203.0.113.0"
    assert attributes["user.id"] == record["usr"]["id"] != "u-1"
    assert "user.email" not in attributes and "email" not in record["usr"]
    assert "user.full_name" not in attributes  # usr.name is dropped by default
    assert not re.search(r"(?<![0-9a-f])ada(?![0-9a-f])", repr(attributes))  # not inside a hex pseudonym


def test_the_event_goes_to_the_innermost_active_span_only(
    security_events: Capture, spans: InMemorySpanExporter
) -> None:
    with TRACER.start_as_current_span("request"), TRACER.start_as_current_span("handler") as handler:
        api.log_access_denied(User(id="u-7"), "/admin")
    record = security_events.assert_emitted("authz_fail")
    assert record["span_id"] == f"{handler.get_span_context().span_id:016x}"
    assert finished(spans, "request").events == ()
    assert [e.name for e in finished(spans, "handler").events] == ["authz_fail"]


def test_target_users_and_list_parameters_become_attributes(
    security_events: Capture, spans: InMemorySpanExporter
) -> None:
    with TRACER.start_as_current_span("admin"):
        api.log_privilege_change(
            User(id="admin-1"), User(id="u-6", login="frank"), from_role="user", to_role="admin"
        )
        api.log_user_created(User(id="admin-1"), User(id="u-9"), attributes=["email", "role"])
    change, created = finished(spans, "admin").events
    assert change.name == "authz_change"
    assert dict(change.attributes or {}) == {
        "user.id": "admin-1",
        "target.usr.id": "u-6",
        "target.usr.login": security_events.assert_emitted("authz_change")["target"]["usr"]["login"],
        "evt.name": "authz_change",
        "evt.category": "iam",
        "evt.outcome": "success",
        "evt.from_role": "user",
        "evt.to_role": "admin",
    }
    assert tuple((created.attributes or {})["evt.attributes"]) == ("email", "role")


def test_a_detection_without_an_outcome_has_no_outcome_attribute(
    security_events: Capture, spans: InMemorySpanExporter
) -> None:
    with TRACER.start_as_current_span("scan"):
        api.emit("malicious_attack_tool", tool_name="sqlmap")
    attributes = event_attributes(finished(spans, "scan"))
    assert "evt.outcome" not in attributes
    assert attributes["evt.tool_name"] == "sqlmap"


def test_span_events_off_keeps_the_ids_but_adds_no_event(
    security_events: Capture, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECEVENTS_OTEL_SPAN_EVENTS", "false")
    api.configure(reset=True)  # the fixture built the configuration already: re-read the environment
    with TRACER.start_as_current_span("login"):
        api.log_login(User(id="u-1"), "success")
    assert "trace_id" in security_events.assert_emitted("authn_login_success")
    assert finished(spans, "login").events == ()


def test_without_an_active_span_there_are_no_ids_and_no_event(
    security_events: Capture, spans: InMemorySpanExporter
) -> None:
    api.log_login(User(id="u-1"), "success")
    record = security_events.assert_emitted("authn_login_success")
    assert "trace_id" not in record and "dd" not in record
    assert spans.get_finished_spans() == ()


def test_a_non_recording_span_gives_ids_but_takes_no_event(security_events: Capture) -> None:
    """An unsampled incoming trace: the ids still correlate the log; there is nowhere to put an event."""
    context = trace.SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=trace.TraceFlags(0),
    )
    with trace.use_span(trace.NonRecordingSpan(context)):
        api.log_login(User(id="u-1"), "success")
    record = security_events.assert_emitted("authn_login_success")
    assert (record["trace_id"], record["span_id"]) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")


def test_a_failing_span_never_reaches_the_caller(
    security_events: Capture, recwarn: pytest.WarningsRecorder
) -> None:
    class BrokenSpan(trace.NonRecordingSpan):
        def is_recording(self) -> bool:
            return True

        def add_event(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("exporter bug")

    context = trace.SpanContext(trace_id=1, span_id=2, is_remote=False, trace_flags=trace.TraceFlags(1))
    with trace.use_span(BrokenSpan(context)):
        api.log_login(User(id="u-1"), "success")
        api.log_login(User(id="u-1"), "success")
    assert len(security_events.find("authn_login_success")) == 2


def test_attributes_are_read_from_the_record_only() -> None:
    spec = api.CATALOG["authn_login_fail"]
    record = {
        "evt": {
            "type": "authn_login_fail",
            "name": "authentication",
            "category": "authentication",
            "reason": "x",
        },
        "usr": {"id": "anon_1", "login": "anon_1"},
    }
    assert otel_attributes(spec, record) == {
        "evt.name": "authentication",
        "evt.category": "authentication",
        "evt.reason": "x",
        "user.id": "anon_1",
        "user.name": "anon_1",
    }
