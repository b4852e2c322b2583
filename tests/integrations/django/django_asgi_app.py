"""A Django project served over ASGI by a real server (tests/integrations/django/test_django_asgi_shutdown.py).

``uvicorn django_asgi_app:application --workers 2``: each worker imports this module after the server
installed its own SIGTERM handler. ``GET /login/<n>`` records one failed login for account ``n`` through
Django's own ``authenticate()`` (a backend that refuses everyone, so no database is needed); events go to
stdout, the default.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import django
from django.conf import settings

URLS = types.ModuleType("django_asgi_app_urls")
sys.modules[URLS.__name__] = URLS


class RefuseEveryone:
    """An authentication backend that checks nothing and refuses every attempt."""

    def authenticate(self, request: Any, **credentials: Any) -> None:
        return None

    def get_user(self, user_id: Any) -> None:
        return None


settings.configure(
    DEBUG=False,
    SECRET_KEY="asgi-shutdown-test-only",
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF=URLS.__name__,
    DATABASES={},
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "graffer_secevents.integrations.django",
    ],
    MIDDLEWARE=["graffer_secevents.integrations.django.SecurityEventsMiddleware"],
    AUTHENTICATION_BACKENDS=[f"{__name__}.RefuseEveryone"],
    USE_TZ=True,
    SECEVENTS={"metrics": "none", "hash_key": "asgi-shutdown-test-key", "privacy": {"usr.login": "keep"}},
)
django.setup()

from django.contrib.auth import authenticate  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def login(request: HttpRequest, n: int) -> HttpResponse:
    authenticate(request, username=f"user{n}", password="wrong")
    return HttpResponse("no", status=200)


URLS.urlpatterns = [path("login/<int:n>", login)]  # type: ignore[attr-defined]
application = get_asgi_application()
