"""django-axes: what its lock-out adds to the backend seam (`_backends.py`).

Installed by the app when `"axes"` is in `INSTALLED_APPS`; nothing to call. The attempts themselves need
no adapter: `AxesBackend` refuses a locked-out attempt with `PermissionDenied` inside `authenticate()`,
before any password is checked, which the backend seam records as `authn_login_fail_max` (never a wrong
password, the right one included). This module adds what only axes knows:

* its failure limit (`AXES_FAILURE_LIMIT`, when it is a number) as that event's `evt.max_limit`;
* `user_locked_out` sent by the attempt that crosses the limit (a real wrong password, written as such by
  Django's `user_login_failed`): `authn_login_lock` with the account and `evt.reason: maxretries`. Axes
  sends the signal again for every refused attempt while locked; those already have their event.
"""

from __future__ import annotations

from typing import Any

from graffer_secevents.integrations._auth import already_recorded, mark_denied, record_auth
from graffer_secevents.integrations._common import never_raise

from ._accounts import UNKNOWN, find_account
from ._backends import REFUSAL_LIMITS
from .middleware import request_bound

__all__ = ["install"]

_WHERE = "django-axes' user_locked_out"


def install() -> None:
    """Connect `user_locked_out` and register axes' refusal. Idempotent; called by the app."""
    from axes.exceptions import AxesBackendPermissionDenied
    from axes.signals import user_locked_out

    REFUSAL_LIMITS[AxesBackendPermissionDenied] = _failure_limit
    user_locked_out.connect(_on_locked_out, dispatch_uid="graffer_secevents.axes.locked_out")


def _failure_limit() -> int | None:
    from axes.conf import settings

    limit = getattr(settings, "AXES_FAILURE_LIMIT", None)
    return limit if isinstance(limit, int) and not isinstance(limit, bool) else None


def _on_locked_out(sender: Any, request: Any = None, username: Any = None, **_kwargs: Any) -> None:
    with request_bound(getattr(request, "_request", request)), never_raise(_WHERE):
        if already_recorded("authn_login_fail_max"):  # a refused attempt while locked: recorded already
            return
        login = username if isinstance(username, str) and username else None
        found = find_account(login) if login is not None else UNKNOWN
        user = found[0] if found is not UNKNOWN and found is not None else None
        record_auth("authn_login_lock", where=_WHERE, user=user, login=login, params={"reason": "maxretries"})
        mark_denied()  # axes answers this attempt with its lock-out response: no status event besides
