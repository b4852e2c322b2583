"""A background job's origin: captured at enqueue as the record writes it, validated in the worker, and
written into the job's events (the queue integrations' real-worker tests: tests/integrations/queues/)."""

from __future__ import annotations

import warnings
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graffer_secevents as secevents
from graffer_secevents import EventValidationError, RequestContext
from graffer_secevents._config import get_config
from graffer_secevents._context import request_context
from graffer_secevents._origin import bound_job, capture_origin, read_origin
from graffer_secevents._tools.schema import check_record
from graffer_secevents.testing import Capture, hashed


def _request(**fields: Any) -> RequestContext:
    ctx = RequestContext(
        client_ip="203.0.113.9",
        request_id="req-1",
        method="POST",
        path="/export",
        user_agent="Mozilla/5.0",
        user=secevents.User(id=42, login="ada@example.com", email="ada@example.com", name="Ada"),
    )
    for key, value in fields.items():
        setattr(ctx, key, value)
    return ctx


# --- what travels ----------------------------------------------------------------------------------------------


def test_a_request_s_origin_is_what_its_events_write_and_nothing_more(security_events: Capture) -> None:
    with request_context(_request(session_id="raw-session-key")):
        origin = capture_origin()
    assert set(origin) == {"v", "request_id", "usr_id", "client_ip", "session_id", "enqueued_at", "sig"}
    assert origin["usr_id"] == "42"
    assert origin["client_ip"] == "203.0.113.9"
    assert origin["session_id"] == hashed("raw-session-key")
    text = orjson.dumps(origin).decode()
    for secret in ("ada@example.com", "Ada", "raw-session-key", "Mozilla", "/export"):
        assert secret not in text


def test_the_origin_applies_the_privacy_rules_of_the_enqueuing_process(security_events: Capture) -> None:
    secevents.configure(privacy={"usr.id": "hash", "network.client.ip": "truncate"})
    with request_context(_request()):
        origin = capture_origin()
    assert origin["usr_id"] == hashed("42")
    assert origin["client_ip"] == "203.0.113.0"
    secevents.configure(privacy={"usr.id": "drop", "network.client.ip": "drop"})
    with request_context(_request()):
        origin = capture_origin()
    assert "usr_id" not in origin and "client_ip" not in origin


def test_the_job_s_events_write_the_origin_unchanged_not_hashed_twice(security_events: Capture) -> None:
    secevents.configure(privacy={"usr.id": "hash"})
    with request_context(_request()):
        origin = capture_origin()
    with bound_job("rq", "jobs.export", "job-1", origin):
        secevents.log_data_export(None, "orders")
    record = security_events.assert_emitted("data_export", usr__id=hashed("42"))
    assert record["job"]["origin"]["usr_id"] == hashed("42")
    assert check_record(record) == []


def test_an_email_identity_travels_only_as_its_pseudonym(security_events: Capture) -> None:
    class FlaskLoginUser:
        is_authenticated = True

        def get_id(self) -> str:
            return "ada@example.com"

    with request_context(_request(user=FlaskLoginUser())):
        origin = capture_origin()
    assert origin["usr_id"] == hashed("ada@example.com")


def test_trace_ids_travel_and_fill_a_job_without_a_trace_of_its_own(security_events: Capture) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span, request_context(_request()):
        origin = capture_origin()
        ids = span.get_span_context()
    assert origin["trace_kind"] == "otel"
    with bound_job("celery", "jobs.export", "t-1", origin):
        secevents.log_data_export(None, "no-span")
        with tracer.start_as_current_span("job") as job_span:
            secevents.log_data_export(None, "own-span")
            own = job_span.get_span_context()
    no_span, own_span = security_events.records
    assert no_span["trace_id"] == f"{ids.trace_id:032x}" and no_span["span_id"] == f"{ids.span_id:016x}"
    assert own_span["trace_id"] == f"{own.trace_id:032x}" and own_span["span_id"] == f"{own.span_id:016x}"
    assert own_span["job"]["origin"]["trace_id"] == f"{ids.trace_id:032x}"
    assert check_record(no_span) == [] and check_record(own_span) == []


def test_a_job_enqueued_by_a_job_passes_the_first_request_s_origin_on(security_events: Capture) -> None:
    with request_context(_request()):
        first = capture_origin()
    with bound_job("celery", "jobs.first", "t-1", first):
        second = capture_origin()
    assert second["request_id"] == "req-1" and second["usr_id"] == "42"
    assert second["enqueued_at"] >= first["enqueued_at"]
    with bound_job("celery", "jobs.second", "t-2", second):
        secevents.log_data_export(None, "orders")
    security_events.assert_emitted("data_export", usr__id="42", job__origin__request_id="req-1")


def test_work_enqueued_under_an_actor_carries_it(security_events: Capture) -> None:
    with secevents.actor("cron:nightly", user="svc-1"):
        origin = capture_origin()
    assert origin["actor"] == "cron:nightly" and origin["usr_id"] == "svc-1"
    with bound_job("arq", "reindex", "a-1", origin):
        secevents.log_data_export(None, "orders")
    record = security_events.assert_emitted("data_export", usr__id="svc-1", actor__name="cron:nightly")
    assert record["job"]["origin"] == {"usr_id": "svc-1", "actor": "cron:nightly"}


def test_without_a_hash_key_the_origin_is_not_signed_and_still_read(
    security_events: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECEVENTS_HASH_KEY")
    _configure_without_key()
    with request_context(_request()):
        origin = capture_origin()
    assert "sig" not in origin
    kept, notes = read_origin(origin)
    assert kept["usr_id"] == "42" and notes == []


# --- what the worker trusts --------------------------------------------------------------------------------


def _unsigned(**fields: Any) -> dict[str, Any]:
    return {"v": 1, **fields}


@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A worker configured without a hash key: the origin is validated field by field only."""
    monkeypatch.delenv("SECEVENTS_HASH_KEY")
    _configure_without_key()
    return get_config()


def _configure_without_key() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", secevents.SecEventsWarning)  # "no hash_key": warned once per process
        secevents.configure(hash_key=None)


@pytest.mark.parametrize(
    ("field", "value", "note"),
    [
        ("request_id", "req 1\n", "job.origin.request_id: malformed"),
        ("request_id", 42, "job.origin.request_id: malformed (a int)"),
        ("usr_id", {"id": "admin"}, "job.origin.usr_id: expected a string, got a dict"),
        ("usr_id", "x" * 1025, "job.origin.usr_id: not 1-1024 printable characters"),
        ("usr_id", '42\n{"evt": {}}', "job.origin.usr_id: not 1-1024 printable characters"),
        ("client_ip", "not-an-ip", "job.origin.client_ip: not an IP address"),
        ("client_ip", "203.0.113.9:443", "job.origin.client_ip: not an IP address"),
        ("session_id", "raw-session", "job.origin.session_id: malformed"),
        ("actor", "", "job.origin.actor: not 1-128 printable characters"),
        ("enqueued_at", "yesterday", "job.enqueued_at: malformed"),
        ("trace_id", "abc", "job.origin.trace_kind: expected 'dd' or 'otel', got a NoneType; trace dropped"),
        ("evil", "x", "job.origin: unknown keys ignored: 'evil'"),
    ],
)
def test_each_malformed_field_is_dropped_and_noted(no_key: Any, field: str, value: object, note: str) -> None:
    kept, notes = read_origin(_unsigned(**{"actor": "cron", field: value}), no_key)
    assert any(n.startswith(note) for n in notes), notes
    assert field not in kept
    if field != "actor":
        assert kept["actor"] == "cron"  # the rest of the block is kept


@pytest.mark.parametrize(
    ("raw", "note"),
    [
        (["v", 1], "job.origin: expected a mapping, got a list; dropped"),
        ('{"v": 1}', "job.origin: expected a mapping, got a string of 8 characters; dropped"),
        ({"v": 2, "usr_id": "42"}, "job.origin: unknown version (a int); dropped"),
        ({"usr_id": "42"}, "job.origin: unknown version (a NoneType); dropped"),
        ({"v": 1, "usr_id": "x" * 5000}, "job.origin: 5019 bytes, more than 4096; dropped"),
        ({"v": 1, 7: "int key"}, "job.origin: not JSON-serialisable; dropped"),
        ({"v": 1, "usr_id": float("nan")}, "job.origin.usr_id: expected a string, got a float; dropped"),
    ],
)
def test_a_block_of_the_wrong_shape_is_dropped_whole(no_key: Any, raw: object, note: str) -> None:
    kept, notes = read_origin(raw, no_key)
    assert kept == {}
    assert notes == [note]


def test_a_worker_with_a_key_drops_an_unsigned_or_altered_origin_whole(security_events: Capture) -> None:
    with request_context(_request()):
        signed = capture_origin()
    assert read_origin(signed)[0]["usr_id"] == "42"
    for forged, why in [
        ({**signed, "usr_id": "admin"}, "signature does not verify"),
        ({k: v for k, v in signed.items() if k != "sig"}, "unsigned"),
        ({**signed, "sig": 12}, "signature does not verify"),
    ]:
        kept, notes = read_origin(forged)
        assert kept == {}
        assert notes == [f"job.origin: {why} under this process's hash_key; dropped"]


def test_a_signature_made_under_another_key_does_not_verify(security_events: Capture) -> None:
    secevents.configure(hash_key="the-web-tier-key")
    with request_context(_request()):
        origin = capture_origin()
    secevents.configure(hash_key="the-worker-key-0123456789")
    assert read_origin(origin)[0] == {}


def test_a_malformed_job_identity_is_bounded_and_noted(security_events: Capture) -> None:
    with security_events.lenient(), bound_job("celery", "n" * 300, ["not", "an", "id"], None):
        secevents.log_data_export(None, "orders")
    record = security_events.records[-1]
    assert record["job"] == {"system": "celery"}
    assert "job.id: expected a string, got a list; dropped" in record["secevents"]["errors"]
    assert any(n.startswith("job.name: not 1-256 printable") for n in record["secevents"]["errors"])


def test_a_forged_origin_raises_in_strict_mode(security_events: Capture) -> None:
    with (
        bound_job("rq", "jobs.export", "j-1", {"v": 1, "usr_id": "admin"}),
        pytest.raises(EventValidationError, match=r"job\.origin: unsigned"),
    ):
        secevents.log_data_export(None, "orders")


def test_the_job_is_unbound_after_the_run(security_events: Capture) -> None:
    with bound_job("rq", "jobs.export", "j-1", None):
        secevents.set_user("7")  # bound inside the job: gone with it
    secevents.log_data_export(None, "orders")
    record = security_events.records[-1]
    assert "job" not in record and "usr" not in record


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_field_values = st.one_of(
    _json,
    st.sampled_from(
        [
            "203.0.113.9",
            "::1",
            "anon_" + "0" * 32,
            "req-1",
            "1" * 20,
            "0" * 32,
            "f" * 16,
            "dd",
            "otel",
            "2026-12-05T19:41:12.504410Z",
        ]
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "request_id",
                "usr_id",
                "client_ip",
                "session_id",
                "actor",
                "trace_kind",
                "trace_id",
                "span_id",
                "enqueued_at",
                "other",
            ]
        ),
        _field_values,
        max_size=9,
    ),
    st.one_of(st.none(), st.text(max_size=300), st.integers()),
    st.one_of(st.none(), st.text(max_size=200), st.integers(), st.lists(st.integers(), max_size=2)),
)
def test_any_origin_gives_a_valid_record_and_never_raises(
    fields: dict[str, Any], name: Any, job_id: Any
) -> None:
    """Whatever a broker hands over, the job's event is written and valid against the schema. Without a key
    each field kept has its shape; with one, an unsigned block is dropped whole."""
    from graffer_secevents.testing import capture_events

    for keyed in (False, True):
        with capture_events(strict=False) as capture:
            if not keyed:
                _configure_without_key()
            with bound_job("dramatiq", name, job_id, {"v": 1, **fields}):
                secevents.log_data_export(None, "orders")
        (record,) = capture.records
        assert check_record(record) == [], record
        origin = record["job"].get("origin", {})
        if keyed:
            assert origin == {}
        for key, value in origin.items():
            assert fields[key] == value  # kept only as sent, never altered


def test_a_newer_actor_inside_a_job_enqueues_without_the_request_s_ip(security_events: Capture) -> None:
    """The chain keeps the request id; the IP and session belonged to the request's user, not the newer one."""
    with request_context(_request(session_id="key")):
        first = capture_origin()
    with bound_job("celery", "jobs.first", "t-1", first):
        secevents.set_user("7")
        by_user = capture_origin()
    with bound_job("celery", "jobs.first", "t-2", first), secevents.actor("jobs:reindex"):
        by_process = capture_origin()
    assert by_user["request_id"] == "req-1" and by_user["usr_id"] == "7"
    assert "client_ip" not in by_user and "session_id" not in by_user
    assert by_process["actor"] == "jobs:reindex" and by_process["request_id"] == "req-1"
    assert "usr_id" not in by_process and "client_ip" not in by_process


def test_a_worker_with_stricter_privacy_holds_the_origin_to_its_own_modes(security_events: Capture) -> None:
    with request_context(_request()):
        origin = capture_origin()  # usr.id and IP kept by the web tier
    secevents.configure(privacy={"usr.id": "drop", "network.client.ip": "truncate"})
    with bound_job("celery", "jobs.export", "t-1", origin):
        secevents.log_data_export(None, "orders")
    record = security_events.records[-1]
    assert "usr" not in record
    assert record["network"] == {"client": {"ip": "203.0.113.0"}}
    assert record["job"]["origin"] == {"request_id": "req-1", "client_ip": "203.0.113.0"}
    secevents.configure(privacy={"usr.id": "hash", "network.client.ip": "hash"})
    with bound_job("celery", "jobs.export", "t-2", origin):
        secevents.log_data_export(None, "orders")
    record = security_events.records[-1]
    assert record["usr"] == {"id": hashed("42")}
    assert record["network"] == {"client": {"ip": hashed("203.0.113.9")}}
