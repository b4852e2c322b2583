"""Impersonation: the real account behind the effective one, on every event written while it lasts.

While a session impersonates another account (a support engineer "logged in as" a customer), the
application sees the impersonated account: events name it as `usr.*`, as they always name the account the
session acts as. This module adds who is really acting, as `impersonator.usr.*` (the same privacy rules as
`usr.*`), so a rule can group by either.

The real account comes from, in order:

* `impersonating(real_user)`, a context the application binds around the work done on another account's
  behalf (a hand-rolled "log in as" feature binds it per request, in its own middleware);
* a provider an integration registers with `add_impersonator_provider`, asked with the bound request
  context (the Django app registers one reading django-hijack's session state).

Nothing here imports a framework.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import Any, Final

from ._privacy import Privacy
from ._types import UserLike
from ._users import _user_parts, _usr

__all__ = [
    "IMPERSONATION_TYPES",
    "add_impersonator_provider",
    "current_impersonator",
    "impersonating",
    "impersonator_usr",
    "provided_impersonator",
]

IMPERSONATION_TYPES: Final = frozenset({"authn_impersonation_start", "authn_impersonation_end"})
"""The start and end events name the real account as `usr` and the impersonated one as `target.usr`."""

_impersonator: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "graffer_secevents_impersonator", default=None
)

ImpersonatorProvider = Callable[[Any], Any]
_providers: list[ImpersonatorProvider] = []


@contextmanager
def impersonating(real_user: UserLike) -> Generator[None, None, None]:
    """Mark everything emitted inside the block as done by `real_user` on another account's behalf.

    Events keep naming the account the session acts as (`usr.*`, the request's user or the `user`
    passed) and add the real one as `impersonator.usr.*`, privacy-processed as `usr.*` is. Record the
    start and the end of the impersonation itself with `log_impersonation`.

    Args:
        real_user: the account really acting (an id, a `graffer_secevents.User` or a framework user);
            `None` binds nothing.

    Example:
        ```python
        def middleware(request):  # a hand-rolled "log in as": the session keeps the real user's id
            real_id = request.session.get("impersonator_id")
            if real_id is None:
                return get_response(request)
            with secevents.impersonating(real_id):
                return get_response(request)
        ```
    """
    token = _impersonator.set(real_user)
    try:
        yield
    finally:
        _impersonator.reset(token)


def add_impersonator_provider(provider: ImpersonatorProvider) -> None:
    """Ask `provider(request_context)` for the real account when no `impersonating` block is bound.

    A provider returns the real account (anything `user=` accepts) or `None`; it is called for each event
    emitted inside a request, so it must be cheap (cache on the context object) and it must not raise
    (an exception counts as no impersonation).
    """
    if provider not in _providers:
        _providers.append(provider)


def current_impersonator(request: object) -> Any:
    """The real account behind the current events, or `None` (see the module docstring for the order)."""
    real = _impersonator.get()
    if real is not None or request is None or not _providers:
        return real
    return provided_impersonator(request)


def provided_impersonator(request: object) -> Any:
    """The first real account a registered provider names for `request`, or `None`."""
    for provider in _providers:
        try:
            real = provider(request)
        except Exception:  # noqa: BLE001, S112 - a provider that fails: no impersonation seen
            continue
        if real is not None:
            return real
    return None


def impersonator_usr(privacy: Privacy, evt_type: str, real: object, errors: list[str]) -> dict[str, Any]:
    """`impersonator.usr` of one record: `real` privacy-processed as `usr` is; empty on the start and end
    events, which name the real account as `usr` themselves."""
    if evt_type in IMPERSONATION_TYPES:
        return {}
    return _usr(
        privacy, False, _user_parts("impersonator.usr", real, errors), errors, prefix="impersonator.usr"
    )
