"""Django, configured once per process: a real auth stack (sessions, CSRF, auth) over a migrated SQLite file.

With the ``drf`` and ``allauth`` extras installed, the same project also runs Django REST framework with
simplejwt (rotation and blacklisting on) and DRF's token auth, and django-allauth with ``allauth.mfa``: one
settings object per process, so every Django test module shares it.
"""

from __future__ import annotations

import atexit
import importlib.util
import shutil
import sys
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings

_DB_DIR = Path(tempfile.mkdtemp(prefix="secevents-django-"))
atexit.register(shutil.rmtree, _DB_DIR, True)

URLS = types.ModuleType("secevents_django_test_urls")
sys.modules[URLS.__name__] = URLS

HAS_DRF = all(importlib.util.find_spec(m) for m in ("rest_framework", "rest_framework_simplejwt"))
HAS_ALLAUTH = importlib.util.find_spec("allauth") is not None
# The seams' stacks (tests/integrations/django/test_seams_*.py); axes is off unless a test turns it on.
HAS_SEAM_STACKS = all(importlib.util.find_spec(m) for m in ("axes", "django_otp", "oauth2_provider"))
HAS_HIJACK = importlib.util.find_spec("hijack") is not None
# The other impersonation stacks, wired as their docs say (tests/integrations/django/test_impersonation_stacks.py
# adds django-impersonate's middleware, which reads the session of every request, and django-su's backend,
# which has no async methods: Django's aauthenticate() fails with it).
HAS_IMPERSONATE = importlib.util.find_spec("impersonate") is not None
HAS_LOGINAS = importlib.util.find_spec("loginas") is not None
HAS_SU = importlib.util.find_spec("django_su") is not None
HAS_NINJA_JWT = importlib.util.find_spec("ninja_jwt") is not None  # tests/integrations/django/test_ninja.py

STACK_APPS = [
    *(
        ["rest_framework", "rest_framework.authtoken", "rest_framework_simplejwt.token_blacklist"]
        if HAS_DRF
        else []
    ),
    *(["allauth", "allauth.account", "allauth.mfa", "allauth.headless"] if HAS_ALLAUTH else []),
    *(
        [
            "axes",
            "django_otp",
            "django_otp.plugins.otp_totp",
            "django_otp.plugins.otp_static",
            "oauth2_provider",
        ]
        if HAS_SEAM_STACKS
        else []
    ),
    *(["hijack"] if HAS_HIJACK else []),
    *(["impersonate"] if HAS_IMPERSONATE else []),
    *(["loginas"] if HAS_LOGINAS else []),
    *(["django_su"] if HAS_SU else []),
    *(["ninja_jwt"] if HAS_NINJA_JWT else []),  # as django-ninja-jwt's docs set it up
]
STACK_SETTINGS: dict[str, Any] = {
    "AUTHENTICATION_BACKENDS": [
        "django.contrib.auth.backends.ModelBackend",
        *(["allauth.account.auth_backends.AuthenticationBackend"] if HAS_ALLAUTH else []),
    ],
    "REST_FRAMEWORK": {
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "rest_framework_simplejwt.authentication.JWTAuthentication",
            "rest_framework.authentication.TokenAuthentication",
            "rest_framework.authentication.BasicAuthentication",
            "rest_framework.authentication.SessionAuthentication",
        ],
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    },
    "SIMPLE_JWT": {
        "ROTATE_REFRESH_TOKENS": True,
        "BLACKLIST_AFTER_ROTATION": True,
        "SIGNING_KEY": "test-only-signing-key-" + "x" * 32,
    },
    "ACCOUNT_LOGIN_METHODS": {"email", "username"},
    "ACCOUNT_SIGNUP_FIELDS": ["email*", "username*", "password1*", "password2*"],
    "ACCOUNT_EMAIL_VERIFICATION": "none",
    "ACCOUNT_RATE_LIMITS": {"login_failed": "100/m/ip,3/5m/key"},
    "MFA_SUPPORTED_TYPES": ["totp", "recovery_codes"],
    "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    "AXES_ENABLED": False,  # test_seams_stacks.py turns it on with its backend
    "AXES_FAILURE_LIMIT": 3,
    "AXES_LOCKOUT_PARAMETERS": ["username"],
    "OAUTH2_PROVIDER": {"REFRESH_TOKEN_REUSE_PROTECTION": True, "PKCE_REQUIRED": False},
}

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="test-only-not-secret",
        ALLOWED_HOSTS=["testserver", "127.0.0.1", "localhost"],
        ROOT_URLCONF=URLS.__name__,
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(_DB_DIR / "db.sqlite3")}},
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",  # the admin's (tests/integrations/django/test_account_changes.py)
            "django.contrib.admin",
            "graffer_secevents.integrations.django",
            *STACK_APPS,
        ],
        MIDDLEWARE=[
            "graffer_secevents.integrations.django.SecurityEventsMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
            *(["allauth.account.middleware.AccountMiddleware"] if HAS_ALLAUTH else []),
            *(["axes.middleware.AxesMiddleware"] if HAS_SEAM_STACKS else []),
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "OPTIONS": {
                    "loaders": [
                        (
                            "django.template.loaders.locmem.Loader",
                            {
                                "registration/login.html": "{{ form }}",
                                "registration/logged_out.html": "bye",
                                # Django's password views (tests/integrations/django/test_seams_general.py)
                                "registration/password_change_form.html": "{{ form }}",
                                "registration/password_reset_form.html": "{{ form }}",
                                "registration/password_reset_confirm.html": "{{ validlink }} {{ form }}",
                                "registration/password_reset_email.html": "{{ uid }}/{{ token }}",
                            },
                        ),
                        "django.template.loaders.app_directories.Loader",  # allauth's and DRF's templates
                    ],
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ],
                },
            }
        ],
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],  # fast, for tests only
        LOGIN_URL="/login/",
        LOGIN_REDIRECT_URL="/private/",
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        **STACK_SETTINGS,
    )
    django.setup()

from django.contrib.auth import aauthenticate, alogin, authenticate, get_user_model, login, logout  # noqa: E402
from django.contrib.auth.decorators import login_required  # noqa: E402
from django.contrib.auth.views import LoginView, LogoutView  # noqa: E402
from django.core.exceptions import PermissionDenied  # noqa: E402
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

import graffer_secevents as api  # noqa: E402

# --- the application: no event code except where noted ---------------------------------------------------


@csrf_exempt
def api_login(request: HttpRequest) -> HttpResponse:
    user = authenticate(request, username=request.POST["username"], password=request.POST["password"])
    if user is None:
        return HttpResponse("no", status=401)
    login(request, user)
    return HttpResponse("ok")


@csrf_exempt
def api_logout(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponse("bye")


@csrf_exempt
async def async_login(request: HttpRequest) -> HttpResponse:
    user = await aauthenticate(request, username=request.POST["username"], password=request.POST["password"])
    if user is None:
        return HttpResponse("no", status=401)
    await alogin(request, user)
    return HttpResponse("ok")


@login_required
def private(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"hello {request.user.get_username()}")


def admin_only(request: HttpRequest) -> HttpResponse:
    if not request.user.is_superuser:
        raise PermissionDenied
    return HttpResponse("admin")


def token_auth_in_view(request: HttpRequest) -> HttpResponse:
    """Like Django REST framework: the user is authenticated inside the view, then access is denied."""
    request.user = get_user_model().objects.get(username=request.headers["X-Token"])
    return HttpResponse("no", status=403)


def stream(request: HttpRequest, n: int) -> StreamingHttpResponse:
    def body() -> Iterator[bytes]:
        yield b"first,"
        api.emit("data_export", object=f"report-{n}", record_count=1)
        yield b"second"

    return StreamingHttpResponse(body())


async def astream(request: HttpRequest) -> StreamingHttpResponse:
    async def body() -> Any:
        yield b"first,"
        api.emit("data_export", object="async-report", record_count=1)
        yield b"second"

    return StreamingHttpResponse(body())


def order(request: HttpRequest, order_id: int) -> HttpResponse:
    api.emit("sensitive_read", object=f"order:{order_id}")
    return HttpResponse("order")


async def aorder(request: HttpRequest, order_id: int) -> HttpResponse:
    """An async view, as docs/integrations/django.md asks of one: the user awaited before the event."""
    await request.auser()
    api.emit("sensitive_read", object=f"order:{order_id}")
    return HttpResponse("order")


def status(request: HttpRequest, code: int) -> HttpResponse:
    return HttpResponse("status", status=code)


def denied(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied


@csrf_exempt
def api_key_check(request: HttpRequest) -> HttpResponse:
    """Product code that checks its own credential and records the failure with the public API."""
    if request.headers.get("X-Api-Key") != "k-good":
        api.log_login(None, "failure", login="api-client", reason="invalid_credentials")
        return HttpResponse("no", status=401)
    if request.headers.get("X-Scope") != "admin":
        api.emit("authz_fail", user="api-client", resource="/api-key/")
        return HttpResponse("no", status=403)
    return HttpResponse("ok")


def _stack_urls() -> list[Any]:
    urls: list[Any] = []
    if HAS_SEAM_STACKS:
        import seams_views  # this directory's apps for the seams' tests

        urls += seams_views.urlpatterns
    from django.contrib import admin
    from django.urls import include

    if HAS_LOGINAS:  # before the admin's own URLs, as django-loginas's README says
        urls.append(path("admin/", include("loginas.urls")))
    urls.append(path("admin/", admin.site.urls))
    if HAS_IMPERSONATE:
        urls.append(path("impersonate/", include("impersonate.urls")))
    if HAS_SU:
        urls.append(path("su/", include("django_su.urls")))
    if HAS_HIJACK:
        urls.append(path("hijack/", include("hijack.urls")))
    if HAS_DRF:
        import drf_views  # this directory's DRF + simplejwt API

        urls += drf_views.urlpatterns
    if HAS_ALLAUTH:
        urls.append(path("accounts/", include("allauth.urls")))
        urls.append(path("_allauth/", include("allauth.headless.urls")))
    return urls


URLS.urlpatterns = [  # type: ignore[attr-defined]
    *_stack_urls(),
    path("login/", LoginView.as_view()),
    path("logout/", LogoutView.as_view()),
    path("api/login/", api_login),
    path("api/logout/", api_logout),
    path("async/login/", async_login),
    path("private/", private),
    path("admin-only/", admin_only),
    path("token-auth/", token_auth_in_view),
    path("stream/<int:n>/", stream),
    path("astream/", astream),
    path("orders/<int:order_id>/", order),
    path("aorders/<int:order_id>/", aorder),
    path("status/<int:code>/", status),
    path("denied/", denied),
    path("api-key/", api_key_check),
]


@pytest.fixture(scope="session", autouse=True)
def django_db() -> None:
    """Migrate once per process and create the accounts every test reads (tests never change them)."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    users = get_user_model()
    if not users.objects.filter(username="ada").exists():
        users.objects.create_user("ada", "ada@example.com", "correct horse")
        users.objects.create_superuser("root", "root@example.com", "admin secret")
        users.objects.create_user("ina", "ina@example.com", "inactive pass", is_active=False)


@pytest.fixture
def accounts() -> dict[str, Any]:
    users = get_user_model()
    return {name: users.objects.get(username=name) for name in ("ada", "root")}
