"""`impersonating()` and the account-change helpers: the real account on every event of the block, the start
and end events, and one public call per change, with hostile input coerced (lenient) or refused (strict)."""

from __future__ import annotations

import asyncio
import threading

import pytest

import graffer_secevents as secevents
from graffer_secevents import EventValidationError, User
from graffer_secevents._context import RequestContext, request_context
from graffer_secevents._impersonation import _providers, add_impersonator_provider
from graffer_secevents.testing import ABSENT, Capture


def test_every_event_in_the_block_names_the_real_account(security_events: Capture) -> None:
    secevents.set_user(User(id=42, login="customer@example.com"))
    try:
        with secevents.impersonating(User(id=7, login="support@example.com", email="s@example.com")):
            secevents.log_sensitive_access(None, "invoice:9")
            secevents.emit("authz_fail", resource="/admin")
        secevents.log_sensitive_access(None, "invoice:10")
    finally:
        secevents.set_user(None)
    inside, denied, after = security_events.records
    for record in (inside, denied):
        assert record["usr"]["id"] == "42"
        assert record["impersonator"]["usr"]["id"] == "7"
        assert record["impersonator"]["usr"]["login"] == inside["impersonator"]["usr"]["login"]
        assert record["impersonator"]["usr"]["login"].startswith("anon_")  # hashed as usr.login is
        assert "s@example.com" not in str(record)
    assert "impersonator" not in after


def test_start_and_end_name_the_real_account_as_usr(security_events: Capture) -> None:
    with secevents.impersonating(7):
        secevents.log_impersonation(7, 42, target_role="superuser", reason="ticket-1")
        secevents.log_impersonation(7, 42, stage="end")
    start, end = security_events.records
    assert (
        start["evt"]["type"] == "authn_impersonation_start"
        and end["evt"]["type"] == "authn_impersonation_end"
    )
    assert start["evt"]["target_role"] == "superuser" and start["evt"]["reason"] == "ticket-1"
    for record in (start, end):
        assert record["usr"]["id"] == "7" and record["target"]["usr"]["id"] == "42"
        assert "impersonator" not in record


def test_the_context_does_not_leak_to_other_threads_or_tasks(security_events: Capture) -> None:
    def other_thread() -> None:
        secevents.emit("sensitive_read", user=1, object="x")

    async def other_task() -> None:
        secevents.emit("sensitive_read", user=2, object="y")

    with secevents.impersonating(7):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    asyncio.run(other_task())
    seen = [r.get("impersonator") for r in security_events.records]
    assert seen == [None, None]


def test_a_provider_is_asked_inside_a_request_only(security_events: Capture) -> None:
    calls: list[object] = []

    def provider(ctx: object) -> object:
        calls.append(ctx)
        return getattr(ctx, "real", None)

    add_impersonator_provider(provider)
    add_impersonator_provider(provider)  # once
    try:
        secevents.emit("sensitive_read", user=1, object="no request")
        ctx = RequestContext(user=42)
        ctx.real = 7  # type: ignore[attr-defined]
        with request_context(ctx):
            secevents.emit("sensitive_read", object="in request")
            with secevents.impersonating(9):  # a bound block wins over the provider
                secevents.emit("sensitive_read", object="bound")
    finally:
        _providers.remove(provider)
    outside, inside, bound = security_events.records
    assert "impersonator" not in outside
    assert inside["usr"]["id"] == "42" and inside["impersonator"]["usr"]["id"] == "7"
    assert bound["impersonator"]["usr"]["id"] == "9"
    assert calls == [ctx]


def test_a_failing_provider_is_no_impersonation(security_events: Capture) -> None:
    def broken(ctx: object) -> object:
        raise RuntimeError("session store down")

    add_impersonator_provider(broken)
    try:
        with request_context(RequestContext(user=42)):
            secevents.emit("sensitive_read", object="x")
    finally:
        _providers.remove(broken)
    [record] = security_events.records
    assert "impersonator" not in record and record["usr"]["id"] == "42"


def test_hostile_real_user_is_noted_leniently_and_refused_strictly(security_events: Capture) -> None:
    with security_events.lenient(), secevents.impersonating(b"\xffbytes"):
        secevents.emit("sensitive_read", user=1, object="x")
    [record] = security_events.records
    assert any(e.startswith("impersonator.usr") for e in record["secevents"]["errors"])
    with (
        secevents.impersonating(["not", "a", "user"]),
        pytest.raises(EventValidationError, match=r"impersonator\.usr"),
    ):
        secevents.emit("sensitive_read", user=1, object="x")


# --- one public call per change ----------------------------------------------------------------------------


def test_account_change_helpers_write_their_catalog_rows(security_events: Capture) -> None:
    secevents.log_privilege_change(
        1, 2, from_role="member", to_role="admin", granted=["admin"], revoked=("member",)
    )
    secevents.log_group_membership(1, 2, "billing")
    secevents.log_group_membership(1, 2, "billing", action="remove")
    secevents.log_account_status(1, 2, enabled=False, reason="offboarding")
    secevents.log_account_status(1, 2, enabled=True)
    secevents.log_user_updated(1, 2, attributes=["email"])
    secevents.log_mfa_change(2, enabled=True, method="webauthn")
    secevents.log_mfa_change(2, enabled=False, method="totp", reason="lost device")
    records = security_events.records
    assert [r["evt"]["type"] for r in records] == [
        "authz_change",
        "group_member_added",
        "group_member_removed",
        "user_disabled",
        "user_enabled",
        "user_updated",
        "authn_mfa_enabled",
        "authn_mfa_disabled",
    ]
    assert records[0]["evt"]["granted"] == ["admin"] and records[0]["evt"]["revoked"] == ["member"]
    assert records[2]["evt"]["group"] == "billing"
    assert records[3]["evt"]["reason"] == "offboarding"
    assert all(r["target"]["usr"]["id"] == "2" for r in records[:6])
    assert records[7]["evt"] == {
        "type": "authn_mfa_disabled",
        "name": "authn_mfa_disabled",
        "category": "iam",
        "outcome": "success",
        "method": "totp",
        "reason": "lost device",
    }
    security_events.assert_emitted("user_updated", target__usr__login=ABSENT)


@pytest.mark.secevents_lenient
def test_helpers_never_guess_a_grant_from_hostile_values(security_events: Capture) -> None:
    class Sneaky(str):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = str.__hash__

    secevents.log_group_membership(1, 2, "ops", action=Sneaky("nope"))  # type: ignore[arg-type]
    secevents.log_account_status(1, 2, enabled="yes")  # type: ignore[arg-type]
    secevents.log_mfa_change(2, enabled=1)  # type: ignore[arg-type]
    secevents.log_impersonation(1, 2, stage="middle")  # type: ignore[arg-type]
    secevents.log_privilege_change(1, 2, granted="superuser")  # a lone string: one item, noted
    added, disabled, mfa_off, start, change = security_events.records
    assert added["evt"]["type"] == "group_member_added" and added["context"]["action"] == "nope"
    assert disabled["evt"]["type"] == "user_disabled"  # only True enables
    assert mfa_off["evt"]["type"] == "authn_mfa_disabled"  # only True enables
    assert start["evt"]["type"] == "authn_impersonation_start" and start["context"]["stage"] == "middle"
    assert change["evt"]["granted"] == ["superuser"] and change["secevents"]["errors"]


def test_strict_mode_refuses_a_bad_grant(security_events: Capture) -> None:
    with pytest.raises(EventValidationError, match=r"evt\.granted"):
        secevents.log_privilege_change(1, 2, granted=[object()])
    assert security_events.records == []


def test_the_schema_accepts_what_impersonation_writes_and_nothing_more(security_events: Capture) -> None:
    from graffer_secevents._tools.schema import check_record

    with secevents.impersonating(User(id=7, login="support@example.com")):
        secevents.log_sensitive_access(42, "invoice:9")
    secevents.log_impersonation(7, 42, stage="end", target_role="user")
    during, end = security_events.records
    assert check_record(during) == [] and check_record(end) == []
    forged = {**during, "impersonator": {"usr": {"id": "7", "exists": True}}}
    assert any("impersonator" in problem for problem in check_record(forged))
