"""``secevents demo``: a short attack scenario through the public API, printed as the JSON records a service
would write.

Normal logins, a brute force on one account, a credential-stuffing burst from one IP, a password reset, an
access denied and an admin action. The records go to stdout; a summary of the metric counts goes to stderr.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import IO

from . import _helpers as secevents
from ._config import configure
from ._metrics import MemoryMetrics
from ._types import User

__all__ = ["run_demo"]

_ADA = User(id=1001, login="ada@example.com", email="ada@example.com")
_GRACE = User(id=1002, login="grace", email="grace@example.com")
_ADMIN = User(id=1, login="root-admin")


def run_demo(out: IO[str] | None = None, summary: IO[str] | None = None) -> int:
    """Run the scenario; return the number of records written."""
    out = out if out is not None else sys.stdout
    summary = summary if summary is not None else sys.stderr
    cfg = configure(
        service="demo-shop",
        env="demo",
        version="1.0.0",
        output=out,
        metrics="memory",
        hash_key="demo-only-key",
    )
    count = 0

    def step(title: str) -> None:
        summary.write(f"# {title}\n")

    step("normal logins")
    secevents.log_login(_ADA, "success", "198.51.100.10")
    secevents.log_login(_GRACE, "success", "2001:db8:85a3::8a2e:370:7334")
    count += 2

    step("brute force: one account, many passwords, one IP")
    for _ in range(6):
        secevents.log_login(
            None,
            "failure",
            "203.0.113.66",
            login="ada@example.com",
            exists=True,
            reason="invalid_credentials",
        )
    secevents.log_account_locked(_ADA, "203.0.113.66", reason="maxretries")
    count += 7

    step("credential stuffing: one IP, many accounts, most unknown")
    for n in range(8):
        exists = n % 4 == 0
        secevents.log_login(
            None,
            "failure",
            "192.0.2.200",
            login=f"user{n}@example.org",
            exists=exists,
            reason="invalid_credentials" if exists else "unknown_user",
        )
    count += 8

    step("password reset")
    secevents.log_password_reset(None, "198.51.100.10", login="ada@example.com", exists=True)
    secevents.log_password_reset(_ADA, "198.51.100.10", stage="complete")
    count += 2

    step("access denied")
    secevents.log_access_denied(_GRACE, "/admin/users", "2001:db8:85a3::8a2e:370:7334")
    count += 1

    step("admin action")
    secevents.log_admin_action(
        _ADMIN,
        "disable_user",
        "198.51.100.1",
        resource="/users/1002",
        ticket="SEC-42",
        password="never-written",  # noqa: S106 - shows that secret-looking keys are redacted
    )
    count += 1

    if isinstance(cfg.metrics, MemoryMetrics):
        totals: Counter[str] = Counter()
        for point in cfg.metrics.points:
            if point.name == "secevents.login.attempts":
                totals[",".join(point.tags)] += point.value
        step("secevents.login.attempts by tags")
        for tags, value in sorted(totals.items()):
            summary.write(f"#   {value:3d}  {tags}\n")
    return count
