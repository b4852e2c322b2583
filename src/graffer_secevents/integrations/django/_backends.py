"""Authentication backends that refuse an attempt before the password is checked (`PermissionDenied`).

Django documents `PermissionDenied` raised by a backend's `authenticate()` as "stop: this user may not log
in at all"; `authenticate()` then stops trying backends and sends `user_login_failed` — which, written as
is, would say *wrong password* for an attempt whose password nobody checked (the right one included). That
is what lock-out backends do (django-axes' `AxesBackend`, rate limiters, IP blocks).

Every backend in `AUTHENTICATION_BACKENDS` (read at start-up and whenever the setting changes) has its
`authenticate()` / `aauthenticate()` wrapped once, on the class that defines it. A `PermissionDenied`
from it is one `authn_login_fail_max` for the request (the typed login hashed, `usr.exists`, a known
account's pk, and `evt.max_limit` when the refusing stack says it: `REFUSAL_LIMITS`), and the
`user_login_failed` that Django sends next is not written as a login failure (`refused_before_password`,
read by the app's receiver). The response's 401/403/429 adds no second event.

An account a backend *accepts* is noted on the request, so a JSON answer (2xx) without a login having been
recorded — a token-issuing login endpoint that calls `authenticate()` and never `login()` — records it
(`middleware.record_api_login`, when the response is ready).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Final

from graffer_secevents._context import current_request
from graffer_secevents.integrations._common import never_raise

from ._accounts import login_from, record_login_refused

__all__ = ["ACCEPTED_ATTR", "REFUSAL_LIMITS", "checking_credentials", "install", "refused_before_password"]

REFUSAL_LIMITS: Final[dict[type, Callable[[], int | None]]] = {}
"""A lock-out stack's own `PermissionDenied` subclass → how many failures it allows (`evt.max_limit`);
filled by that stack's adapter (`axes.py`)."""

_REFUSED: Final[ContextVar[bool]] = ContextVar("secevents_backend_refused", default=False)
# True while a backend's authenticate() runs: a wrong password checked there is a login failure
# (`_password_checks.py` reads it).
_CHECKING: Final[ContextVar[bool]] = ContextVar("secevents_backend_checking", default=False)
_REFUSED_ATTR: Final = "_secevents_refused_unchecked"
ACCEPTED_ATTR: Final = "_secevents_backend_accepted"
"""The request context's attribute holding the account a backend's `authenticate()` returned (read by the
middleware: `middleware.record_api_login`)."""
_WRAPPED: Final = "_secevents_backend_wrapped"


def install() -> None:
    """Wrap the configured backends now and whenever `AUTHENTICATION_BACKENDS` changes. Idempotent."""
    from django.core.signals import setting_changed

    _wrap_configured()
    setting_changed.connect(_on_setting_changed, dispatch_uid="graffer_secevents.backends")


def refused_before_password() -> bool:
    """Whether a backend refused the attempt `authenticate()` is now reporting as failed; consumes it."""
    ctx = current_request()
    if ctx is not None:  # kept on the request, so a lost signal cannot silence a later request's failure
        refused = bool(getattr(ctx, _REFUSED_ATTR, False))
        if refused:
            setattr(ctx, _REFUSED_ATTR, False)
        return refused
    if not _REFUSED.get():
        return False
    _REFUSED.set(False)
    return True


def _mark_refused() -> None:
    ctx = current_request()
    if ctx is not None:
        setattr(ctx, _REFUSED_ATTR, True)
    else:
        _REFUSED.set(True)


def _on_setting_changed(sender: Any, setting: str = "", **_kwargs: Any) -> None:
    if setting == "AUTHENTICATION_BACKENDS":
        with never_raise("the AUTHENTICATION_BACKENDS setting"):
            _wrap_configured()


def _wrap_configured() -> None:
    from django.conf import settings
    from django.utils.module_loading import import_string

    for path in settings.AUTHENTICATION_BACKENDS:
        try:
            backend = import_string(path)
        # ImportError, or a backend whose models' app is not installed: Django reports it when the backend
        # is used; not ours to stop start-up with.
        except Exception:  # noqa: BLE001, S112
            continue
        for name, make in (("authenticate", _sync), ("aauthenticate", _async)):
            owner = next((klass for klass in backend.__mro__ if name in klass.__dict__), None)
            function = owner.__dict__[name] if owner is not None else None
            if function is None or getattr(function, _WRAPPED, False) or not callable(function):
                continue
            wrapper = functools.wraps(function)(make(function))
            setattr(wrapper, _WRAPPED, True)
            setattr(owner, name, wrapper)


def _sync(original: Callable[..., Any]) -> Callable[..., Any]:
    from django.views.decorators.debug import sensitive_variables

    @sensitive_variables("args", "credentials")  # type: ignore[untyped-decorator]  # as Django's own: no password in error reports
    def authenticate(self: Any, *args: Any, **credentials: Any) -> Any:
        from django.core.exceptions import PermissionDenied

        checking = _CHECKING.set(True)
        try:
            user = original(self, *args, **credentials)
        except PermissionDenied as exc:
            _refused(self, args[0] if args else credentials.get("request"), credentials, exc)
            raise
        finally:
            _CHECKING.reset(checking)
        if user is not None:
            _note_accepted(user)
        return user

    return authenticate  # type: ignore[no-any-return]


def _async(original: Callable[..., Any]) -> Callable[..., Any]:
    from django.views.decorators.debug import sensitive_variables

    @sensitive_variables("args", "credentials")  # type: ignore[untyped-decorator]
    async def aauthenticate(self: Any, *args: Any, **credentials: Any) -> Any:
        from django.core.exceptions import PermissionDenied

        checking = _CHECKING.set(True)
        try:
            user = await original(self, *args, **credentials)
        except PermissionDenied as exc:
            _refused(self, args[0] if args else credentials.get("request"), credentials, exc)
            raise
        finally:
            _CHECKING.reset(checking)
        if user is not None:
            _note_accepted(user)
        return user

    return aauthenticate  # type: ignore[no-any-return]


def checking_credentials() -> bool:
    """Whether a configured backend's `authenticate()` is running (in this context)."""
    return _CHECKING.get()


def _note_accepted(user: Any) -> None:
    ctx = current_request()
    if ctx is not None:
        setattr(ctx, ACCEPTED_ATTR, user)


def _refused(backend: Any, request: Any, credentials: dict[str, Any], exc: BaseException) -> None:
    from .middleware import request_bound

    _mark_refused()  # before binding a context of our own: the app's receiver reads it without one
    where = f"{type(backend).__name__}.authenticate()"
    with never_raise(where), request_bound(request):
        login, keys = login_from(credentials)  # the login keys only; never the password
        limit = next((get() for klass, get in REFUSAL_LIMITS.items() if isinstance(exc, klass)), None)
        record_login_refused(login, where=where, keys=keys, max_limit=limit)
