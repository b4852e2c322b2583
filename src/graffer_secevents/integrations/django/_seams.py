"""The Django seams every auth stack passes through, and the stacks only an adapter sees; installed by the
app's `ready()` (`apps.py`).

* `_backends.py`: a backend's `PermissionDenied` inside `authenticate()` (lock-outs);
* `_user_rows.py`: accounts created and passwords set, by any code, during a request;
* `_forms.py`: Django's login and password forms (and subclasses) and the reset-confirm view;
* `_asgi.py`: Django's ASGI handler answers lifespan, so an ASGI server's stop drains the queue;
* `_password_checks.py`: a wrong current password the logged-in account typed (`check_password()`);
* `drf.py` (installed by the app with DRF): DRF's authentication loop and permission check;
* per stack, when it is in `INSTALLED_APPS`: `axes.py` (django-axes), `otp.py` (django-otp),
  `oauth_toolkit.py` (django-oauth-toolkit). A stack that is not installed is never imported.
"""

from __future__ import annotations

__all__ = ["install"]


def install() -> None:
    """Install the seams, then the adapters of the stacks in `INSTALLED_APPS`. Idempotent."""
    from django.apps import apps

    from . import _asgi, _backends, _forms, _password_checks, _user_rows

    _asgi.install()
    if not apps.is_installed("django.contrib.auth"):
        # An API-only project (its own token checks, no user model): the auth seams below import
        # django.contrib.auth's models, which Django refuses outside INSTALLED_APPS; the middleware, the
        # helpers and the ASGI drain work without them.
        return
    _backends.install()
    _user_rows.install()
    _forms.install()
    _password_checks.install()
    if apps.is_installed("axes"):
        from . import axes

        axes.install()
    if apps.is_installed("django_otp"):
        from . import otp

        otp.install()
    if apps.is_installed("oauth2_provider"):
        from . import oauth_toolkit

        oauth_toolkit.install()
