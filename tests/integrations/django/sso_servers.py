"""An OpenID Connect provider and the Django SSO clients that log in through it, each a real server on 127.0.0.1.

``python sso_servers.py EVENTS_FILE`` with ``SSO_ROLE`` in the environment; prints ``PORT <n>`` once listening.

* ``SSO_ROLE=idp``: django-oauth-toolkit as an OIDC provider (RS256 ID tokens with the ``email`` claim), its
  accounts ``alice``, ``carol``, ``ina`` and ``mallory`` (``mallory@evil.test``) with the password ``pw``; every
  client asks for consent (the browser posts the toolkit's own form, ``allow`` or not). ``GET /idp/login/?u=``
  logs a browser in at the provider, ``GET /idp/register/?client_id=&redirect_uri=`` adds a client (its secret
  is ``CLIENT_SECRET``). The provider writes no events (it is another service).
* ``SSO_ROLE=mozilla|social|allauth`` with ``SSO_IDP`` (the provider's URL) and ``SSO_CLIENT``: a Django
  service logging in with mozilla-django-oidc, python-social-auth (``social_django``) or django-allauth's
  ``openid_connect`` provider, set up as each one's docs show, with this library's app and middleware as
  docs/integrations/django.md shows and no event code. Its accounts: ``alice`` (active) and ``ina``
  (inactive); social-auth creates its own at a first login (the test deactivates ``ina`` after hers). mozilla-django-oidc does not create accounts (``OIDC_CREATE_USER=False``); social-auth
  allows ``example.com`` only (its whitelist); allauth's adapter opens signup to ``example.com`` only.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Any

import django
from django.conf import settings

EVENTS = Path(sys.argv[1])
ROLE = os.environ["SSO_ROLE"]
CLIENT_SECRET = "client-secret-" + "s3cr3t" * 4
URLS = types.ModuleType("sso_urls")
sys.modules[URLS.__name__] = URLS

APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
STACK: dict[str, Any] = {}
if ROLE == "idp":
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    APPS.append("oauth2_provider")
    STACK = {
        "OAUTH2_PROVIDER": {
            "OIDC_ENABLED": True,
            "OIDC_RSA_PRIVATE_KEY": key.decode(),
            "PKCE_REQUIRED": False,
            "OAUTH2_VALIDATOR_CLASS": "sso_servers.ClaimsValidator",
            "SCOPES": {"openid": "OpenID", "email": "e-mail", "profile": "profile"},
        },
        "LOGIN_URL": "/idp/login/",
    }
else:
    IDP = os.environ["SSO_IDP"]
    CLIENT = os.environ["SSO_CLIENT"]
    APPS.append("graffer_secevents.integrations.django")
    MIDDLEWARE.insert(0, "graffer_secevents.integrations.django.SecurityEventsMiddleware")
    # Written as each event happens (`delivery: sync`), so the test reads a flow's records as soon as its
    # last response is in, without racing the writer thread.
    secevents = {"output": EVENTS.open("ab"), "metrics": "none", "delivery": "sync"}
    STACK = {"LOGIN_REDIRECT_URL": "/private/", "SECEVENTS": secevents}
    if ROLE == "mozilla":  # mozilla-django-oidc's "Quick start"
        APPS.append("mozilla_django_oidc")
        BACKENDS.append("mozilla_django_oidc.auth.OIDCAuthenticationBackend")
        STACK |= {
            "OIDC_RP_CLIENT_ID": CLIENT,
            "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_RP_SIGN_ALGO": "RS256",
            "OIDC_OP_JWKS_ENDPOINT": f"{IDP}/o/.well-known/jwks.json",
            "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{IDP}/o/authorize/",
            "OIDC_OP_TOKEN_ENDPOINT": f"{IDP}/o/token/",
            "OIDC_OP_USER_ENDPOINT": f"{IDP}/o/userinfo/",
            "OIDC_CREATE_USER": False,
            "LOGIN_REDIRECT_URL_FAILURE": "/failed/",
        }
    elif ROLE == "social":  # python-social-auth's Django configuration, its OpenID Connect backend
        APPS.append("social_django")
        BACKENDS.insert(0, "social_core.backends.open_id_connect.OpenIdConnectAuth")
        MIDDLEWARE.append("social_django.middleware.SocialAuthExceptionMiddleware")
        STACK |= {
            "SOCIAL_AUTH_OIDC_OIDC_ENDPOINT": f"{IDP}/o",
            "SOCIAL_AUTH_OIDC_KEY": CLIENT,
            "SOCIAL_AUTH_OIDC_SECRET": CLIENT_SECRET,
            "SOCIAL_AUTH_OIDC_WHITELISTED_DOMAINS": ["example.com"],
            "SOCIAL_AUTH_LOGIN_ERROR_URL": "/failed/",
            "SOCIAL_AUTH_INACTIVE_USER_URL": "/failed/",
            "SOCIAL_AUTH_JSONFIELD_ENABLED": True,
        }
    elif ROLE == "allauth":  # django-allauth's "Installation" and its OpenID Connect provider
        APPS += [
            "allauth",
            "allauth.account",
            "allauth.socialaccount",
            "allauth.socialaccount.providers.openid_connect",
        ]
        BACKENDS.append("allauth.account.auth_backends.AuthenticationBackend")
        MIDDLEWARE.append("allauth.account.middleware.AccountMiddleware")
        STACK |= {
            "SOCIALACCOUNT_PROVIDERS": {
                "openid_connect": {
                    "APPS": [
                        {
                            "provider_id": "idp",
                            "name": "IdP",
                            "client_id": CLIENT,
                            "secret": CLIENT_SECRET,
                            "settings": {"server_url": f"{IDP}/o"},
                        }
                    ]
                }
            },
            "SOCIALACCOUNT_LOGIN_ON_GET": True,
            "SOCIALACCOUNT_ADAPTER": "sso_servers.ServiceAdapter",
            "SOCIALACCOUNT_EMAIL_AUTHENTICATION": True,
            "SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT": True,
            "ACCOUNT_EMAIL_VERIFICATION": "none",
            "ACCOUNT_LOGIN_METHODS": {"email", "username"},
        }

settings.configure(
    DEBUG=False,
    SECRET_KEY=f"sso-test-{ROLE}",
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF=URLS.__name__,
    DATABASES={
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(EVENTS.with_suffix(".sqlite3"))}
    },
    INSTALLED_APPS=APPS,
    MIDDLEWARE=MIDDLEWARE,
    AUTHENTICATION_BACKENDS=BACKENDS,
    TEMPLATES=[
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "APP_DIRS": True,
            "OPTIONS": {
                "context_processors": [
                    "django.template.context_processors.request",
                    "django.contrib.auth.context_processors.auth",
                    "django.contrib.messages.context_processors.messages",
                ]
            },
        }
    ],
    SESSION_COOKIE_NAME=f"{ROLE}session",  # one browser, two sites on 127.0.0.1: cookies are per host
    CSRF_COOKIE_NAME=f"{ROLE}csrf",
    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    **STACK,
)
django.setup()

from django.contrib.auth import get_user_model, login  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import include, path  # noqa: E402
from waitress.server import create_server  # noqa: E402

if ROLE == "idp":
    from oauth2_provider.oauth2_validators import OAuth2Validator

    class ClaimsValidator(OAuth2Validator):  # type: ignore[misc]
        oidc_claim_scope = None  # every claim, whatever the scope asked

        def get_additional_claims(self, request: Any) -> dict[str, Any]:
            user = request.user
            return {"email": user.email, "email_verified": True, "preferred_username": user.username}

    sys.modules["sso_servers"] = sys.modules["__main__"]  # OAUTH2_VALIDATOR_CLASS names this module

    def idp_login(request: HttpRequest) -> HttpResponse:
        user = get_user_model().objects.get(username=request.GET["u"])
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return HttpResponse("ok")

    def register(request: HttpRequest) -> HttpResponse:
        from oauth2_provider.models import Application

        Application.objects.update_or_create(
            client_id=request.GET["client_id"],
            defaults={
                "client_secret": CLIENT_SECRET,
                "name": request.GET["client_id"],
                "redirect_uris": request.GET["redirect_uri"],
                "client_type": "confidential",
                "authorization_grant_type": "authorization-code",
                "algorithm": "RS256",
            },
        )
        return HttpResponse("ok")

    URLS.urlpatterns = [  # type: ignore[attr-defined]
        path("idp/login/", idp_login),
        path("idp/register/", register),
        path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    ]
else:
    sys.modules["sso_servers"] = sys.modules["__main__"]  # SOCIALACCOUNT_ADAPTER names this module
    if ROLE == "allauth":
        from allauth.socialaccount.adapter import DefaultSocialAccountAdapter

        class ServiceAdapter(DefaultSocialAccountAdapter):  # type: ignore[misc]
            """Signup is open to example.com identities only (allauth's documented way: the adapter)."""

            def is_open_for_signup(self, request: HttpRequest, sociallogin: Any) -> bool:
                return str(sociallogin.user.email).endswith("@example.com")

    def private(request: HttpRequest) -> HttpResponse:
        return HttpResponse(f"hello {request.user.pk}" if request.user.is_authenticated else "anonymous")

    def failed(request: HttpRequest) -> HttpResponse:
        return HttpResponse("failed")

    stack_urls = {
        "mozilla": lambda: path("oidc/", include("mozilla_django_oidc.urls")),
        "social": lambda: path("", include("social_django.urls", namespace="social")),
        "allauth": lambda: path("accounts/", include("allauth.urls")),
    }
    URLS.urlpatterns = [path("private/", private), path("failed/", failed), stack_urls[ROLE]()]  # type: ignore[attr-defined]

call_command("migrate", verbosity=0)
users = get_user_model().objects
if ROLE == "idp":
    for name, email in [
        ("alice", "alice@example.com"),
        ("carol", "carol@example.com"),
        ("ina", "ina@example.com"),
        ("mallory", "mallory@evil.test"),
    ]:
        users.create_user(name, email, "pw")
else:
    if ROLE != "social":  # social-auth logs in only the accounts it associated itself (creating them)
        users.create_user("alice", "alice@example.com")
        users.create_user("ina", "ina@example.com", is_active=False)

server = create_server(WSGIHandler(), host="127.0.0.1", port=0, threads=4)
print(f"PORT {server.effective_port}", flush=True)  # type: ignore[union-attr]
server.run()
