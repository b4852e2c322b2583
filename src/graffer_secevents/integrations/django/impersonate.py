"""django-impersonate: impersonation as a first-class actor, with no code of the application's.

Installed by the app `graffer_secevents.integrations.django` when `"impersonate"` is in `INSTALLED_APPS`
(with django-impersonate's `ImpersonateMiddleware` in `MIDDLEWARE`, as its own docs ask); nothing to call.

* `session_begin`: `authn_impersonation_start`, `usr` the real account, `target.usr` the impersonated one,
  `evt.target_role` its privilege (`superuser`, `staff`, `user`);
* `session_end` (`/impersonate/stop/`), or a logout of the impersonated session: `authn_impersonation_end`;
* in between, every event of the session's requests names the impersonated account as `usr` (the request's
  user, as django-impersonate sets it) and the real one as `impersonator.usr`. The real account is the
  `request.impersonator` django-impersonate's middleware sets once its own checks pass (the session's
  `_impersonate` value, its permission and URI checks, `MAX_DURATION`): a session value it refuses
  names no impersonator.
"""

from __future__ import annotations

from typing import Any

from graffer_secevents._impersonation import add_impersonator_provider
from graffer_secevents._types import User

from ._impersonation import record_impersonation

__all__ = ["install"]

_WHERE = "django-impersonate's signals"


def install() -> None:
    """Connect django-impersonate's signals and read its middleware's state. Idempotent; called by the app."""
    from impersonate.signals import session_begin, session_end

    uid = "graffer_secevents.impersonate."
    session_begin.connect(_on_begin, dispatch_uid=uid + "begin")
    session_end.connect(_on_end, dispatch_uid=uid + "end")
    add_impersonator_provider(_impersonator)


def _impersonator(ctx: Any) -> Any:
    """The real account of the bound request, as django-impersonate's middleware accepted it."""
    real = getattr(getattr(ctx, "request", None), "impersonator", None)
    if real is None or getattr(real, "is_authenticated", False) is not True:
        return None
    return User(id=str(real.pk))


def _on_begin(
    sender: Any, impersonator: Any = None, impersonating: Any = None, request: Any = None, **_: Any
) -> None:
    record_impersonation("authn_impersonation_start", request, impersonator, impersonating, where=_WHERE)


def _on_end(
    sender: Any, impersonator: Any = None, impersonating: Any = None, request: Any = None, **_: Any
) -> None:
    record_impersonation("authn_impersonation_end", request, impersonator, impersonating, where=_WHERE)
