"""Hostile input, fed on purpose: each fault issue 12 found, as a test, and strict mode raising our error.

The property-based suite over every helper is tests/test_hostile_properties.py."""

from __future__ import annotations

import array
import dataclasses
import io
import itertools
import json
import math
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graffer_secevents as api
from graffer_secevents import EventValidationError
from graffer_secevents._guard import internal_errors
from graffer_secevents._metrics import MemoryMetrics


def _cyclic() -> dict[str, Any]:
    data: dict[str, Any] = {"a": 1}
    data["self"] = data
    return data


def _deep(n: int) -> dict[str, Any]:
    data: dict[str, Any] = {"leaf": "x"}
    for _ in range(n):
        data = {"d": data}
    return data


class Hostile:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __format__(self, spec: str) -> str:
        raise RuntimeError("no format either")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no comparison either")

    __hash__ = object.__hash__


class ExplodingUser:
    is_authenticated = True

    @property
    def pk(self) -> Any:
        raise RuntimeError("database is down")


text_values = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=31)),
    st.just("line1\r\nline2\x00\x1b[31m"),
    st.just("x" * 100_000),
    st.just("\ud800\udfff lone surrogates"),
    st.just('203.0.113.7\n{"evt":{"type":"forged"}}'),
)
hostile = st.one_of(
    text_values,
    st.binary(max_size=64),
    st.just(b"\xff\xfe\xfa invalid utf-8"),
    st.integers(),
    st.just(2**80),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.lists(st.text(max_size=5), max_size=100),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=5),
    st.builds(_cyclic),
    st.builds(_deep, st.integers(5, 40)),
    st.just(Hostile()),
    st.just(ExplodingUser()),
    st.just(object()),
    st.sampled_from(["999.1.1.1", "::ffff:999.1.1.1", "[::1", "1.2.3.4:99999x", "fe80::1%eth0"]),
)
HELPERS: dict[str, Any] = {
    "log_login": lambda v, m: api.log_login(v, v, v, login=v, exists=v, reason=v, retries=v, **m),
    "log_logout": lambda v, m: api.log_logout(v, v, session_id=v, **m),
    "log_signup": lambda v, m: api.log_signup(v, v, login=v, **m),
    "log_password_change": lambda v, m: api.log_password_change(v, v, v, reason=v, **m),
    "log_password_reset": lambda v, m: api.log_password_reset(v, v, stage=v, login=v, exists=v, **m),
    "log_mfa_challenge": lambda v, m: api.log_mfa_challenge(v, v, v, method=v, reason=v, **m),
    "log_account_locked": lambda v, m: api.log_account_locked(v, v, reason=v, **m),
    "log_token_created": lambda v, m: api.log_token_created(v, v, token_id=v, entitlements=v, **m),
    "log_token_revoked": lambda v, m: api.log_token_revoked(v, v, token_id=v, **m),
    "log_access_denied": lambda v, m: api.log_access_denied(v, v, v, **m),
    "log_privilege_change": lambda v, m: api.log_privilege_change(v, v, from_role=v, to_role=v, ip=v, **m),
    "log_admin_action": lambda v, m: api.log_admin_action(v, v, v, resource=v, **m),
    "log_user_created": lambda v, m: api.log_user_created(v, v, attributes=v, ip=v, **m),
    "log_user_deleted": lambda v, m: api.log_user_deleted(v, v, ip=v, **m),
    "log_rate_limited": lambda v, m: api.log_rate_limited(v, v, max_limit=v, resource=v, **m),
    "log_input_validation_failed": lambda v, m: api.log_input_validation_failed(v, v, fields=v, **m),
    "log_sensitive_access": lambda v, m: api.log_sensitive_access(v, v, action=v, ip=v, **m),
    "log_data_export": lambda v, m: api.log_data_export(v, v, record_count=v, export_format=v, ip=v, **m),
    "emit": lambda v, m: api.emit(v, v, v, ip=v, login=v, exists=v, target_user=v, context=v, **m),
}


@pytest.mark.parametrize("helper", [h for h in HELPERS if h != "emit"])
def test_strict_mode_raises_our_error_for_an_invalid_ip(helper: str) -> None:
    api.configure(output=io.StringIO(), strict=True, metrics="memory")
    with pytest.raises(EventValidationError, match=r"network\.client\.ip"):
        HELPERS[helper]("999.1.1.1", {})


@settings(max_examples=100, deadline=None)
@given(value=hostile)
def test_strict_mode_raises_only_our_error(value: Any) -> None:
    out = io.StringIO()
    api.configure(output=out, strict=True, metrics="memory")
    raised: EventValidationError | None = None
    try:
        api.log_login(value, value, value, login=value, exists=value, reason=value, meta=value)
    except EventValidationError as exc:
        raised = exc
    if raised is not None:
        assert str(raised).startswith("authn_login")
        assert out.getvalue() == ""
    else:
        assert out.getvalue().count("\n") == 1


def test_deep_metadata_is_flattened_below_the_datadog_nesting_limit() -> None:
    out = io.StringIO()
    api.configure(output=out, strict=False, metrics="memory")
    api.emit("authz_admin", user=1, action="a", blob=_deep(30))
    record = json.loads(out.getvalue())

    def depth(value: Any) -> int:
        return 1 + max((depth(v) for v in value.values()), default=0) if isinstance(value, dict) else 0

    assert depth(record) < 10
    assert any("flattened" in e for e in record["secevents"]["errors"])


def test_many_metadata_keys_stay_under_the_attribute_limit() -> None:
    out = io.StringIO()
    api.configure(output=out, strict=False, metrics="memory")
    api.emit("authz_admin", user=1, action="a", **{f"k{i}": i for i in range(1000)})
    record = json.loads(out.getvalue())

    def leaves(value: Any) -> int:
        return sum(leaves(v) for v in value.values()) if isinstance(value, dict) else 1

    assert leaves(record) < 256
    assert any("attributes" in e for e in record["secevents"]["errors"])


def test_control_characters_cannot_forge_a_second_line() -> None:
    out = io.StringIO()
    api.configure(output=out, strict=False, metrics="memory")
    api.log_login(None, "failure", login='x"}\n{"evt":{"type":"authn_login_success"}}', reason="a\nb\rc\x00")
    assert out.getvalue().count("\n") == 1
    assert json.loads(out.getvalue())["evt"]["reason"] == "a\nb\rc\x00"


# --- each fault of issue 12, reproduced ---------------------------------------------------------------------


class HostileStr(str):
    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no comparison")

    def __hash__(self) -> int:
        raise RuntimeError("no hash")

    def __len__(self) -> int:
        raise RuntimeError("no len")


class NoBool:
    """What a numpy array does to ``if retries:``: its truth value is ambiguous."""

    def __bool__(self) -> bool:
        raise ValueError("The truth value of an array with more than one element is ambiguous")


def _lenient() -> io.StringIO:
    out = io.StringIO()
    api.configure(output=out, strict=False, metrics="memory")
    return out


def _record(out: io.StringIO) -> dict[str, Any]:
    text = out.getvalue()
    assert text.count("\n") == 1
    record: dict[str, Any] = json.loads(text)
    return record


def _notes(record: dict[str, Any]) -> list[str]:
    notes: list[str] = record.get("secevents", {}).get("errors", [])
    return notes


def _evidence_kept(record: dict[str, Any], evt_type: str) -> None:
    assert record["evt"]["type"] == evt_type
    assert record["usr"]["id"] == "42"
    assert record["network"]["client"]["ip"] == "203.0.113.7"


def test_retries_whose_truth_value_raises_still_writes_the_login() -> None:
    out = _lenient()
    api.log_login(42, "success", "203.0.113.7", retries=NoBool())
    record = _record(out)
    _evidence_kept(record, "authn_login_successafterfail")
    assert any(n.startswith("evt.retries") for n in _notes(record))


def test_retries_as_an_array_still_writes_the_login() -> None:
    out = _lenient()
    api.log_login(42, "success", "203.0.113.7", retries=array.array("i", [1, 2]))
    _evidence_kept(_record(out), "authn_login_successafterfail")


def test_a_str_subclass_stage_with_a_hostile_eq_picks_the_event_by_its_text() -> None:
    out = _lenient()
    api.log_password_reset(42, "203.0.113.7", stage=HostileStr("complete"))
    _evidence_kept(_record(out), "authn_password_reset")


def test_a_str_subclass_action_with_a_hostile_hash_picks_the_event_by_its_text() -> None:
    out = _lenient()
    api.log_sensitive_access(42, "invoices", action=HostileStr("delete"), ip="203.0.113.7")
    _evidence_kept(_record(out), "sensitive_delete")


def test_a_str_subclass_event_type_is_looked_up_by_its_text() -> None:
    out = _lenient()
    api.emit(HostileStr("authz_fail"), 42, ip="203.0.113.7", resource=HostileStr("/admin"))
    record = _record(out)
    _evidence_kept(record, "authz_fail")
    assert record["evt"]["resource"] == "/admin"


def test_a_lone_surrogate_in_a_context_key_is_escaped_and_the_evidence_kept() -> None:
    out = _lenient()
    api.log_login(42, "failure", "203.0.113.7", reason="invalid_credentials", **{"\ud800": "\udfff"})
    record = _record(out)
    _evidence_kept(record, "authn_login_fail")
    assert record["context"] == {"\\ud800": "\\udfff"}
    assert any("lone surrogates" in n for n in _notes(record))


def test_a_lone_surrogate_in_a_user_id_is_escaped_not_dropped() -> None:
    out = _lenient()
    api.log_login("42\ud800", "failure", "203.0.113.7")
    record = _record(out)
    assert record["usr"]["id"] == "42\\ud800"
    assert record["network"]["client"]["ip"] == "203.0.113.7"


def test_an_integer_past_the_digit_limit_keeps_the_record() -> None:
    out = _lenient()
    huge = 10**5000
    api.log_rate_limited(42, "203.0.113.7", max_limit=huge, blob=huge, nested={"n": [huge]})
    record = _record(out)
    _evidence_kept(record, "excess_rate_limit_exceeded")
    assert record["context"]["blob"].startswith("[an integer of")
    assert record["evt"]["max_limit"].startswith("[an integer of")
    assert any(n.startswith("context.blob: integer out of the 64-bit range") for n in _notes(record))


def test_an_integer_past_64_bits_is_text_within_the_limit_and_noted() -> None:
    out = _lenient()
    api.log_admin_action(42, "a", "203.0.113.7", big=10**2000, edge=2**63)
    record = _record(out)
    assert record["context"]["edge"] == str(2**63)
    assert len(record["context"]["big"]) == 1024
    notes = _notes(record)
    assert any(n.startswith("context.edge: integer out") for n in notes)
    assert any(n.startswith("context.big: 2001 characters") for n in notes)


def test_a_user_id_past_the_digit_limit_is_written_as_its_size() -> None:
    out = _lenient()
    api.log_login(10**5000, "failure", "203.0.113.7")
    record = _record(out)
    assert record["usr"]["id"].startswith("[an integer of")


def test_a_password_nested_deeper_than_the_depth_limit_is_redacted_in_the_flattened_text() -> None:
    out = _lenient()
    api.log_admin_action(
        42, "a", "203.0.113.7", blob={"a": {"b": {"c": {"d": {"e": {"f": {"password": "hunter2"}}}}}}}
    )
    text = out.getvalue()
    assert "hunter2" not in text
    assert "[REDACTED]" in text
    assert any("flattened to text" in n for n in _notes(json.loads(text)))


def test_a_long_key_naming_a_token_is_redacted_before_it_is_cut() -> None:
    out = _lenient()
    key = "x" * 45 + "_refresh_token"
    api.log_admin_action(42, "a", "203.0.113.7", **{key: "hunter2"})
    record = _record(out)
    assert record["context"] == {key[:49]: "[REDACTED]"}
    assert "hunter2" not in out.getvalue()


@dataclasses.dataclass
class Credentials:
    username: str
    password: str


class Account(pydantic.BaseModel):
    name: str
    api_token: str


def test_dataclasses_and_pydantic_models_are_walked_as_mappings_with_secrets_redacted() -> None:
    out = _lenient()
    api.log_admin_action(
        42,
        "a",
        "203.0.113.7",
        creds=Credentials("ada", "hunter2"),
        account=Account(name="ada", api_token="t0k"),
    )
    record = _record(out)
    assert record["context"]["creds"] == {"username": "ada", "password": "[REDACTED]"}
    assert record["context"]["account"] == {"name": "ada", "api_token": "[REDACTED]"}
    assert "hunter2" not in out.getvalue() and "t0k" not in out.getvalue()
    assert any(n == "context.creds: a Credentials written as its fields" for n in _notes(record))


def test_a_dataclass_passed_where_text_goes_is_never_rendered_with_its_repr() -> None:
    out = _lenient()
    api.log_access_denied(42, Credentials("ada", "hunter2"), "203.0.113.7")  # type: ignore[arg-type]
    record = _record(out)
    assert record["evt"]["resource"] == "[a Credentials]"
    assert "hunter2" not in out.getvalue()


def test_two_long_logins_that_differ_after_the_limit_get_different_pseudonyms() -> None:
    out = _lenient()
    api.log_login(None, "failure", login="a" * 2000 + "1")
    api.log_login(None, "failure", login="a" * 2000 + "2")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["usr"]["login"] != second["usr"]["login"]
    assert first["usr"]["login"].startswith("anon_")


def test_an_endless_iterator_as_fields_returns_with_the_first_items() -> None:
    out = _lenient()
    api.log_input_validation_failed(42, "203.0.113.7", fields=(f"f{i}" for i in itertools.count()))
    record = _record(out)
    assert record["evt"]["fields"] == [f"f{i}" for i in range(64)]
    assert any("more than 64 items" in n for n in _notes(record))


def test_an_endless_iterator_in_context_returns() -> None:
    out = _lenient()
    api.log_admin_action(42, "a", "203.0.113.7", ticks=itertools.count())
    record = _record(out)
    assert record["context"]["ticks"] == list(range(64))


def test_a_non_finite_float_is_written_as_null_and_noted() -> None:
    out = _lenient()
    api.log_admin_action(42, "a", "203.0.113.7", ratio=math.nan)
    record = _record(out)
    assert record["context"]["ratio"] is None
    assert any(n.startswith("context.ratio: nan") for n in _notes(record))


def test_a_mapping_whose_items_raise_is_noted_and_the_rest_written() -> None:
    class Broken(dict[str, Any]):
        def items(self) -> Any:
            raise RuntimeError("lazy loading failed")

    out = _lenient()
    api.emit("authz_admin", 42, ip="203.0.113.7", action="a", context=Broken(x=1), other=1)
    record = _record(out)
    _evidence_kept(record, "authz_admin")
    assert record["context"] == {"other": 1}
    assert any("reading the Broken failed" in n for n in _notes(record))


def test_notes_quoting_a_huge_key_stay_within_the_string_limit() -> None:
    out = _lenient()
    api.log_admin_action(42, "a", "203.0.113.7", d={"k" * 5000: {"\ud800" * 3000: 1}})
    record = _record(out)
    assert all(len(n) <= 1024 for n in _notes(record))


def test_an_internal_bug_is_counted_and_never_raised_in_lenient_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug of ours (simulated by breaking the timestamp step) reaches the guard: counted, not raised."""
    from graffer_secevents import _pipeline

    monkeypatch.setattr(_pipeline, "_timestamp", lambda: 1 / 0)
    out = _lenient()
    before = internal_errors()
    api.log_login(42, "failure", "203.0.113.7")
    assert internal_errors() == before + 1
    assert out.getvalue() == ""
    metrics = api.get_config().metrics
    assert isinstance(metrics, MemoryMetrics)
    assert metrics.total("secevents.dropped", "reason:internal_error") == 1


def test_an_internal_bug_is_our_error_in_strict_mode_with_the_cause_attached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from graffer_secevents import _pipeline

    monkeypatch.setattr(_pipeline, "_timestamp", lambda: 1 / 0)
    api.configure(output=io.StringIO(), strict=True, metrics="memory")
    with pytest.raises(EventValidationError, match="internal error") as caught:
        api.log_login(42, "failure", "203.0.113.7")
    assert isinstance(caught.value.__cause__, ZeroDivisionError)
