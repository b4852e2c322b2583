"""Django + DRF + simplejwt on a real waitress server on 127.0.0.1 (8 threads), for the token-login burst.

``python drf_server.py EVENTS_FILE``: prints ``PORT <n>`` once listening; writes events to EVENTS_FILE.
127.0.0.1 is the trusted proxy. ``POST /token/<n>`` is simplejwt's own ``TokenObtainPairView``; the accounts
``user-0`` .. ``user-36`` have the password ``pw-<k>``.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import django
from django.conf import settings

EVENTS = Path(sys.argv[1])
URLS = types.ModuleType("drf_load_test_urls")
sys.modules[URLS.__name__] = URLS

settings.configure(
    DEBUG=False,
    SECRET_KEY="load-test-only",
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF=URLS.__name__,
    DATABASES={
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(EVENTS.with_suffix(".sqlite3"))}
    },
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "rest_framework",
        "rest_framework_simplejwt.token_blacklist",
        "graffer_secevents.integrations.django",
    ],
    MIDDLEWARE=["graffer_secevents.integrations.django.SecurityEventsMiddleware"],
    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    SIMPLE_JWT={"SIGNING_KEY": "load-test-only-signing-key-" + "z" * 32},
    SECEVENTS={
        "output": open(EVENTS, "ab"),  # noqa: SIM115 - the process's lifetime
        "trusted_proxies": ["127.0.0.1/32"],
        "metrics": "none",
        "privacy": {"usr.login": "keep"},
    },
    SECEVENTS_STATUS_EVENTS={401: "authz_fail"},  # on, to prove a refused login is still one event
)
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework_simplejwt.views import TokenObtainPairView  # noqa: E402
from waitress.server import create_server  # noqa: E402

URLS.urlpatterns = [path("token/<int:n>", TokenObtainPairView.as_view())]  # type: ignore[attr-defined]

if __name__ == "__main__":
    call_command("migrate", verbosity=0, interactive=False)
    users = get_user_model()
    users.objects.bulk_create(
        [users(username=f"user-{k}", password=make_password(f"pw-{k}")) for k in range(37)]
    )
    # waitress deletes forwarding headers unless told otherwise; the library resolves them itself.
    server = create_server(
        WSGIHandler(), host="127.0.0.1", port=0, threads=8, clear_untrusted_proxy_headers=False
    )
    print(f"PORT {server.effective_port}", flush=True)
    server.run()
