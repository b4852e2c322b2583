"""Settings of the example shop. The graffer_secevents parts are marked ``# secevents``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "graffer_secevents.integrations.django",  # secevents: Django's auth signals become events
    "shop",
]

MIDDLEWARE = [
    "graffer_secevents.integrations.django.SecurityEventsMiddleware",  # secevents: first, to see everything
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

# secevents: configure() options, applied when the app is ready, and the middleware's status_events. Behind
# a load balancer or an ingress, add "trusted_proxies": [its CIDRs] (or set SECEVENTS_TRUSTED_PROXIES; see
# docs/client-ip.md); without them the socket peer is the client.
SECEVENTS = {
    "service": "django-shop",
    "env": os.environ.get("DD_ENV", "dev"),
    # 403 → authz_fail is on by default; these two are opt-in.
    "status_events": {401: "authz_fail", 429: "excess_rate_limit_exceeded"},
}

ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DB", str(Path(tempfile.gettempdir()) / "secevents-django-shop.sqlite3")),
    }
}
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
