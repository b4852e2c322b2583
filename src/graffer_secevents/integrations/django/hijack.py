"""django-hijack: impersonation as a first-class actor.

Installed by the app `graffer_secevents.integrations.django` when `"hijack"` is in `INSTALLED_APPS`;
nothing to call.

* `hijack_started`: `authn_impersonation_start`, `usr` the real account (the hijacker), `target.usr` the
  impersonated one, `evt.target_role` its privilege (`superuser`, `staff`, `user`);
* `hijack_ended`, or a logout of the hijacked session: `authn_impersonation_end`, the same accounts;
* while a session is hijacked (django-hijack's `hijack_history` in the session), every event of its requests
  names the impersonated account as `usr` (the request's user, as always) and the hijacker as
  `impersonator.usr`;
* the login django-hijack performs to switch accounts (Django's `user_logged_in`, for the impersonated
  account) carries `impersonator.usr` too, so a rule can tell it from a real login.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graffer_secevents._impersonation import add_impersonator_provider
from graffer_secevents._types import User

from ._impersonation import record_impersonation, switching_from
from ._wrap import wrap_method

__all__ = ["install"]


def install() -> None:
    """Connect django-hijack's signals and its session state. Idempotent; called by the app."""
    from hijack.signals import hijack_ended, hijack_started
    from hijack.views import AcquireUserView

    uid = "graffer_secevents.hijack."
    hijack_started.connect(_on_started, dispatch_uid=uid + "started")
    hijack_ended.connect(_on_ended, dispatch_uid=uid + "ended")
    wrap_method(AcquireUserView, "post", _acquire)
    add_impersonator_provider(_hijacker)


def _hijacker(ctx: Any) -> Any:
    """The hijacker of the bound request: the last account in django-hijack's session history."""
    request = getattr(ctx, "request", None)
    session = getattr(request, "session", None)
    if session is None:
        return None
    history = session.get("hijack_history")
    if not history or not isinstance(history, list):
        return None
    return User(id=str(history[-1]))


def _acquire(original: Callable[..., Any]) -> Callable[..., Any]:
    def post(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        # The switch logs the impersonated account in (Django's user_logged_in) before django-hijack writes
        # its session history: the real account is bound for the view, for the events of the other account.
        with switching_from(getattr(request, "user", None)):
            return original(self, request, *args, **kwargs)

    return post


def _on_started(
    sender: Any, request: Any = None, hijacker: Any = None, hijacked: Any = None, **_: Any
) -> None:
    _record("authn_impersonation_start", request, hijacker, hijacked)


def _on_ended(sender: Any, request: Any = None, hijacker: Any = None, hijacked: Any = None, **_: Any) -> None:
    _record("authn_impersonation_end", request, hijacker, hijacked)


def _record(evt_type: str, request: Any, hijacker: Any, hijacked: Any) -> None:
    record_impersonation(evt_type, request, hijacker, hijacked, where="django-hijack's signals")
