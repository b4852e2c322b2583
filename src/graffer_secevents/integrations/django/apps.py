"""The Django app: put ``"graffer_secevents.integrations.django"`` in ``INSTALLED_APPS``.

``ready()`` connects Django's authentication signals, so ``login()``, ``logout()`` and ``authenticate()``
(and their async forms, and every view built on them such as ``LoginView``) record events with no event code
in the application:

========================  =========================================================================
signal                    event
========================  =========================================================================
``user_logged_in``        ``authn_login_success`` with the user
``user_login_failed``     ``authn_login_fail``: ``usr.login`` from the credentials' username field,
                          ``usr.exists`` looked up through the user model, ``evt.reason``
                          ``invalid_credentials`` or ``unknown_user``; the password is never read
``user_logged_out``       ``session_logout`` with the user and the (hashed) session key
========================  =========================================================================

The ``SECEVENTS`` setting (a dict of `graffer_secevents.configure` options, plus the middleware's
``status_events``) is applied here too; see docs/integrations/django.md.
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig

from graffer_secevents._pipeline import emit_event
from graffer_secevents.integrations._common import never_raise

from .middleware import request_bound

__all__ = ["SecEventsConfig"]


class SecEventsConfig(AppConfig):  # type: ignore[misc]  # Django ships no type information
    """Connects Django's auth signals to security events and applies the ``SECEVENTS`` setting."""

    name = "graffer_secevents.integrations.django"
    label = "graffer_secevents"
    verbose_name = "Security events"

    def ready(self) -> None:
        from django.contrib.auth import signals

        from ._settings import apply_settings

        apply_settings()
        signals.user_logged_in.connect(_on_logged_in, dispatch_uid="graffer_secevents.logged_in")
        signals.user_login_failed.connect(_on_login_failed, dispatch_uid="graffer_secevents.login_failed")
        signals.user_logged_out.connect(_on_logged_out, dispatch_uid="graffer_secevents.logged_out")


def _on_logged_in(sender: Any, request: Any = None, user: Any = None, **_kwargs: Any) -> None:
    with request_bound(request), never_raise("Django's user_logged_in event"):
        emit_event("authn_login_success", user=user, outcome="success")


def _on_login_failed(sender: Any, credentials: Any = None, request: Any = None, **_kwargs: Any) -> None:
    with request_bound(request), never_raise("Django's user_login_failed event"):
        login = _login_from(credentials)
        found = _find_account(login) if login is not None else _UNKNOWN
        exists = None if found is _UNKNOWN else found is not None
        reason = None if exists is None else ("invalid_credentials" if exists else "unknown_user")
        # An existing account is named by its pk, as its successful logins are: rules that follow one
        # @usr.id through failures to a success (brute force) see one account, not two.
        user = found if exists else None
        emit_event(
            "authn_login_fail",
            user=user,
            outcome="failure",
            login=login,
            exists=exists,
            params={"reason": reason},
        )


def _on_logged_out(sender: Any, request: Any = None, user: Any = None, **_kwargs: Any) -> None:
    if user is None:  # logging out an anonymous session is not an event
        return
    with request_bound(request), never_raise("Django's user_logged_out event"):
        session = getattr(request, "session", None)
        session_id = getattr(session, "session_key", None)
        params = {"session_id": session_id} if session_id else None
        emit_event("session_logout", user=user, params=params)


def _login_from(credentials: Any) -> str | None:
    """What was typed as the login: ``username`` (as ``ModelBackend`` reads it), else the model's field.

    Only these two keys are read; the password (already masked by Django) is never touched.
    """
    if not isinstance(credentials, dict):
        return None
    from django.contrib.auth import get_user_model

    value = credentials.get("username")
    if value is None:
        field = getattr(get_user_model(), "USERNAME_FIELD", "username")
        value = credentials.get(field)
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


_UNKNOWN: Any = object()


def _find_account(login: str) -> Any:
    """The pk of the account with this login (``None`` if there is none), through the user model;
    ``_UNKNOWN`` when the lookup fails."""
    try:
        from django.contrib.auth import get_user_model
        from django.db import connections, router, transaction

        model = get_user_model()
        query = model._default_manager.filter(**{model.USERNAME_FIELD: login}).values_list("pk", flat=True)
        alias = router.db_for_read(model)
        if connections[alias].in_atomic_block:
            # A savepoint, so a failing lookup cannot break the application's transaction.
            with transaction.atomic(using=alias):  # pyright: ignore[reportGeneralTypeIssues]
                return query.first()
        return query.first()
    except Exception:  # noqa: BLE001 - no database, no table, or an event loop: unknown, never an error
        return _UNKNOWN
