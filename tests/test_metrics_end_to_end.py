"""Metrics through the public helpers, end to end: every helper, hostile values in every field, a real
DogStatsD client in a subprocess that exits without flushing, and a real UDP socket on 127.0.0.1."""

from __future__ import annotations

import socket
from collections import Counter

from test_metrics import _TAG, drain, parse, run_python, udp_receiver  # noqa: F401 - the fixture is used

# Values a careless integration would leak into tags: emails, IPs, user ids, session and request ids.
HOSTILE = ["ada@example.com", "203.0.113.77", "2001:db8::77", "user-4242", "sess-9f8e7d", "req-abc123"]

SCRIPT = r"""
import io
import graffer_secevents as s

s.configure(service="shop", metrics="dogstatsd", output=io.StringIO(), hash_key="k" * 16)
H = {hostile!r}
ip = H[1]
for v in H:
    u = s.User(id=v, login=v, email=v, name=v)
    s.log_login(u, "failure", ip, login=v, exists=False, reason=v, note=v)
    s.log_login(u, "success", ip, login=v, retries=2, note=v)
    s.log_login(None, "failure", ip, login=v, exists=True, reason="invalid_credentials", request_id=v)
    s.log_logout(u, ip, session_id=v, note=v)
    s.log_signup(u, ip, login=v)
    s.log_password_change(u, "failure", ip, reason=v)
    s.log_password_reset(u, ip, login=v, exists=False, stage="request")
    s.log_mfa_challenge(u, "failure", ip, method=v, reason=v)
    s.log_account_locked(u, ip, reason=v)
    s.log_token_created(u, ip, token_id=v, entitlements=[v])
    s.log_token_revoked(u, ip, token_id=v)
    s.log_access_denied(u, v, ip)
    s.log_privilege_change(u, u, from_role=v, to_role=v, ip=ip)
    s.log_admin_action(u, v, ip, resource=v)
    s.log_user_created(u, u, attributes=[v], ip=ip)
    s.log_user_deleted(u, u, ip=ip)
    s.log_rate_limited(u, ip, max_limit=5, resource=v)
    s.log_input_validation_failed(u, ip, fields=[v])
    s.log_sensitive_access(u, v, action="read", ip=ip)
    s.log_data_export(u, v, record_count=3, export_format=v, ip=ip)
    s.emit("authz_fail", user=u, ip=ip, resource=v, extra=v)
# No flush: the exit hook sends the aggregated counts.
"""


def test_no_tag_from_any_helper_carries_a_user_id_login_email_ip_or_session(
    udp_receiver: socket.socket,  # noqa: F811 - the fixture
) -> None:
    port = udp_receiver.getsockname()[1]
    result = run_python(SCRIPT.format(hostile=HOSTILE), env={"DD_DOGSTATSD_URL": f"udp://127.0.0.1:{port}"})
    assert result.returncode == 0, result.stderr
    points = parse([data for data, _ in drain(udp_receiver)])
    ours = [p for p in points if p[0].startswith("secevents.")]
    assert ours, "no secevents.* metric arrived"
    for name, _value, tags in ours:
        for tag in tags:
            assert _TAG.fullmatch(tag), (name, tag)
            for value in HOSTILE:
                assert value.lower() not in tag, (name, tag)
            assert not any(
                part in tag for part in ("example", "203.0.113", "2001:db8", "4242", "sess-", "req-")
            )
    totals: Counter[tuple[str, frozenset[str]]] = Counter()
    for name, value, tags in ours:
        totals[name, tags] += value
    per_metric: Counter[str] = Counter()
    for (name, _tags), value in totals.items():
        per_metric[name] += value
    n = len(HOSTILE)
    assert per_metric["secevents.login.attempts"] == 3 * n  # every login arrived, none twice
    assert per_metric["secevents.events"] == 21 * n
    # service:shop is configure()'s service, sent once as a constant tag because DD_SERVICE is unset.
    hostile_reason = frozenset({"outcome:failure", "reason:other", "usr_exists:false", "service:shop"})
    assert totals["secevents.login.attempts", hostile_reason] == n  # free-text reasons become "other"
