"""Hostile input, fed on purpose: lenient mode never raises and writes exactly one line; strict mode raises
our error."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graffer_secevents as api
from graffer_secevents import EventValidationError
from graffer_secevents._tools.schema import check_record


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
secret_metadata = st.one_of(
    st.dictionaries(
        st.sampled_from(["password", "token", "Cookie", "x-api-key", "sessionid", "Authorization"]),
        st.one_of(st.just("hunter2-secret"), st.dictionaries(st.text(max_size=5), st.just("hunter2-secret"))),
        max_size=4,
    ),
    st.builds(
        lambda v: {"nested": {"ok": 1, "password": v, "list": [{"api_key": v}]}}, st.just("hunter2-secret")
    ),
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


@pytest.mark.parametrize("helper", list(HELPERS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=hostile, metadata=secret_metadata)
def test_lenient_mode_never_raises_and_writes_exactly_one_json_line(
    helper: str, value: Any, metadata: dict[str, Any]
) -> None:
    out = io.StringIO()
    api.configure(output=out, strict=False, metrics="memory")
    HELPERS[helper](value, {"meta": value, **metadata})
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    record = json.loads(text)
    assert "hunter2-secret" not in text
    assert isinstance(record["evt"]["type"], str)
    if record["evt"]["type"] in api.CATALOG:
        assert [p for p in check_record(record) if not p.startswith("context")] == []


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
