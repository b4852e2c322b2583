"""A Django project on a real waitress server on 127.0.0.1 (8 threads) for the no-bleed load test.

``python django_server.py EVENTS_FILE``: prints ``PORT <n>`` once listening; writes events to EVENTS_FILE.
127.0.0.1 is the trusted proxy. Failed logins go through Django's own ``authenticate()`` (the
``user_login_failed`` signal); the other requests authenticate inside the view, as Django REST framework
does, and are denied, so the middleware's 403 event must read the user at response time. With Django REST
framework and simplejwt installed, ``POST /token/<n>`` is simplejwt's own ``TokenObtainPairView`` (the
token-login burst); the accounts ``user-0`` .. ``user-36`` have the password ``pw-<k>``. The 401 rule is on,
to prove a refused login is still one event.
"""

from __future__ import annotations

import importlib.util
import random
import sys
import time
import types
from pathlib import Path

import django
from django.conf import settings

EVENTS = Path(sys.argv[1])
HAS_DRF = importlib.util.find_spec("rest_framework_simplejwt") is not None
URLS = types.ModuleType("load_test_urls")
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
        "django.contrib.sessions",
        "graffer_secevents.integrations.django",
        *(["rest_framework", "rest_framework_simplejwt.token_blacklist"] if HAS_DRF else []),
    ],
    MIDDLEWARE=[
        "graffer_secevents.integrations.django.SecurityEventsMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ],
    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    SECEVENTS={
        "output": open(EVENTS, "ab"),  # noqa: SIM115 - the process's lifetime
        "trusted_proxies": ["127.0.0.1/32"],
        "metrics": "none",
        "privacy": {"usr.login": "keep"},
    },
    SECEVENTS_STATUS_EVENTS={401: "authz_fail"},
    SIMPLE_JWT={"SIGNING_KEY": "load-test-only-signing-key-" + "z" * 32},
)
django.setup()

from django.contrib.auth import authenticate, get_user_model  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402
from waitress.server import create_server  # noqa: E402

import graffer_secevents as api  # noqa: E402


def pause() -> None:
    time.sleep(random.random() / 200)


@csrf_exempt
def login(request: HttpRequest, n: int) -> HttpResponse:
    pause()
    user = authenticate(request, username=request.POST["username"], password=request.POST["password"])
    return HttpResponse("ok" if user else "no", status=200 if user else 401)


def work(request: HttpRequest, n: int) -> HttpResponse:
    request.user = get_user_model().objects.get(username=request.headers["X-Test-User"])
    pause()
    api.emit("sensitive_read", object=f"work-{n}")
    return HttpResponse("no", status=403)


URLS.urlpatterns = [path("login/<int:n>", login), path("work/<int:n>", work)]  # type: ignore[attr-defined]
if HAS_DRF:
    from rest_framework_simplejwt.views import TokenObtainPairView

    URLS.urlpatterns.append(path("token/<int:n>", TokenObtainPairView.as_view()))  # type: ignore[attr-defined]

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
