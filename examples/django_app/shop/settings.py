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
    # secevents: with DRF in INSTALLED_APPS the same app records simplejwt's and DRF's logins, bad tokens,
    # refresh-token reuse and logouts too (docs/integrations/drf.md); nothing else to add.
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
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

# The token API (shop/api.py): JWTs with rotation and blacklisting, so a refresh token used twice is caught.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}
SIMPLE_JWT = {
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "SIGNING_KEY": os.environ.get("JWT_SIGNING_KEY", SECRET_KEY + "-jwt-signing-key-dev-only-0123456789"),
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
