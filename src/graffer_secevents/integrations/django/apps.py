"""The Django app: put `"graffer_secevents.integrations.django"` in `INSTALLED_APPS`.

`ready()` connects Django's authentication signals, so `login()`, `logout()` and `authenticate()`
(and their async forms, and every view built on them such as `LoginView`) record events with no event code
in the application:

========================  =========================================================================
signal                    event
========================  =========================================================================
`user_logged_in`        `authn_login_success` with the user
`user_login_failed`     `authn_login_fail`: `usr.login` from the credentials' username (or
                          e-mail, as allauth passes it), `usr.exists` looked up through the user
                          model, `evt.reason` `invalid_credentials`, `unknown_user` or
                          `account_disabled`; the password is never read. A credential naming
                          no account (a magic-link or API token a backend checks) is
                          `invalid_token` (`not_allowed` at an SSO callback: the
                          backend refused the identity), its value never read
`user_logged_out`       `session_logout` with the user and the (hashed) session key
========================  =========================================================================

When Django REST framework (`rest_framework`), django-allauth (`allauth.account`), django-hijack
(`hijack`), django-impersonate (`impersonate`), django-loginas (`loginas`), django-su (`django_su`) or
python-social-auth (`social_django`) is in `INSTALLED_APPS` too, its adapter (`drf.py`, `allauth.py`,
`hijack.py`, `impersonate.py`, `loginas.py`, `su.py`, `social_auth.py`) is installed here as well;
so is `ninja.py` when django-ninja can be imported (its APIs live in the URLconf, not in `INSTALLED_APPS`).

Privilege and account changes of `AUTH_USER_MODEL` (`_privileges.py`) and the admin's log entries
(`_admin.py`, when `django.contrib.admin` is installed) are connected here too; see docs/actors.md.

The `SECEVENTS` setting (a dict of `graffer_secevents.configure` options, plus the middleware's
`status_events`) is applied here too; see docs/integrations/django.md.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from django.apps import AppConfig

from graffer_secevents._config import get_config
from graffer_secevents._context import current_request
from graffer_secevents._errors import SecEventsWarning
from graffer_secevents.integrations._auth import record_auth, record_bad_credential
from graffer_secevents.integrations._common import never_raise
from graffer_secevents.integrations._sso import REASON_REFUSED, is_sso_callback

from . import _backends, _impersonation
from ._accounts import login_from, record_login_failure
from .middleware import posted_form, request_bound

__all__ = ["SecEventsConfig"]


class SecEventsConfig(AppConfig):  # type: ignore[misc]  # Django ships no type information
    """Connects Django's auth signals to security events and applies the `SECEVENTS` setting."""

    name = "graffer_secevents.integrations.django"
    label = "graffer_secevents"
    verbose_name = "Security events"

    def ready(self) -> None:
        import warnings

        from django.apps import apps
        from django.contrib.auth import signals

        from . import checks  # noqa: F401  # pyright: ignore[reportUnusedImport] - registers the system checks
        from ._settings import apply_settings

        with warnings.catch_warnings():
            # The missing key is a system check here (W001), shown by manage.py, not a warning in every
            # command and every worker; the flag stays set, so it is not given later either.
            warnings.filterwarnings(
                "ignore", message="graffer_secevents: no hash_key", category=SecEventsWarning
            )
            apply_settings()
            get_config()  # built now, from SECEVENTS and the environment: a refusal stops start-up here
        signals.user_logged_in.connect(_on_logged_in, dispatch_uid="graffer_secevents.logged_in")
        signals.user_login_failed.connect(_on_login_failed, dispatch_uid="graffer_secevents.login_failed")
        signals.user_logged_out.connect(_on_logged_out, dispatch_uid="graffer_secevents.logged_out")
        _install_auth_stacks()
        from . import _seams

        _seams.install()  # lock-out backends, account rows, password forms, axes/otp/oauth-toolkit
        from . import _admin, _privileges

        if apps.is_installed("django.contrib.auth"):  # else there is no AUTH_USER_MODEL to watch
            _privileges.install()  # privilege and account changes of AUTH_USER_MODEL, by any path
            _admin.install()  # the admin's LogEntry, when django.contrib.admin is installed


def _install_auth_stacks() -> None:
    """Hook the auth stacks that are in `INSTALLED_APPS`; a stack that is not costs nothing (no import)."""
    from django.apps import apps

    if apps.is_installed("rest_framework"):
        from . import drf

        drf.install()
    if apps.is_installed("allauth.account"):
        from . import allauth

        allauth.install()
    if apps.is_installed("hijack"):
        from . import hijack

        hijack.install()
    if apps.is_installed("impersonate"):
        from . import impersonate

        impersonate.install()
    if apps.is_installed("loginas"):
        from . import loginas

        loginas.install()
    if apps.is_installed("django_su"):
        from . import su

        su.install()
    if apps.is_installed("social_django"):
        from . import social_auth

        social_auth.install()
    if importlib.util.find_spec("ninja") is not None:  # a NinjaAPI is mounted in urls.py, not an app
        # Not in INSTALLED_APPS, so maybe not even used: a failure to hook it never stops start-up.
        with never_raise("django-ninja's adapter"):
            from . import ninja

            ninja.install()


def _on_logged_in(sender: Any, request: Any = None, user: Any = None, **_kwargs: Any) -> None:
    with request_bound(request):
        # Once per request: a stack that also reports the login (a token view calling login()) adds none.
        where = "Django's user_logged_in event"
        record_auth("authn_login_success", where=where, user=user, outcome="success")


def _on_login_failed(sender: Any, credentials: Any = None, request: Any = None, **_kwargs: Any) -> None:
    if _backends.refused_before_password():  # a backend refused it unchecked: recorded as such, not here
        return
    with request_bound(request):
        where = "Django's user_login_failed event"
        login, keys = login_from(credentials)
        if login is None and _names_a_token(credentials):
            # A credential that names no account (a magic-link or API token checked by a backend): a bad
            # token, as DRF's and the 401 rule's; its value is never read. At an SSO callback the provider's
            # code was exchanged and the backend refused the identity it vouched for (no account to create).
            at_callback = is_sso_callback(current_request(), posted_form(request))
            reason = REASON_REFUSED if at_callback else "invalid_token"
            record_bad_credential(where, reason=reason)
            return
        record_login_failure(login, where=where, keys=keys)


def _names_a_token(credentials: object) -> bool:
    """Whether `authenticate()` was given a credential besides a password (no login key: `login_from`)."""
    if not isinstance(credentials, Mapping):
        return False
    return any(key != "password" and value not in (None, "") for key, value in credentials.items())


def _on_logged_out(sender: Any, request: Any = None, user: Any = None, **_kwargs: Any) -> None:
    if user is None:  # logging out an anonymous session is not an event
        return
    where = "Django's user_logged_out event"
    with request_bound(request), never_raise(where):
        session = getattr(request, "session", None)
        session_id = getattr(session, "session_key", None)
        params = {"session_id": session_id} if session_id else None
        # Once per request: a stack that sends the signal and then calls logout() (djoser with
        # CREATE_SESSION_ON_LOGIN) logged out once.
        record_auth("session_logout", where=where, user=user, params=params)
    # An impersonated session that logs out has ended its impersonation, whichever view logged it out.
    _impersonation.end_at_logout(request, user)
