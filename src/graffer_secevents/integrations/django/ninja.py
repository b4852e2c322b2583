"""django-ninja's auth classes and django-ninja-jwt's token endpoints: what no Django seam sees.

Installed by the app `graffer_secevents.integrations.django` when django-ninja (`ninja`) can be imported
(a NinjaAPI is mounted in the URLconf, not in `INSTALLED_APPS`); nothing to call. Hooked on django-ninja's
own base classes, so every subclass an application writes is covered:

* `APIKeyHeader`, `APIKeyQuery`, `APIKeyCookie` (any `APIKeyBase`) and `HttpBearer`, whatever header
  they read: a key or token presented and refused (`authenticate()` returned nothing) is one
  `authn_login_fail` with `evt.reason: invalid_token` — the 401 rule alone only knows `Authorization`
  and would call an `X-API-Key` refusal a request with no credential. `SessionAuth` (`django_auth`, the
  session cookie) is not a credential check: an anonymous session is not a bad key.
* `HttpBasicAuth` accepting a password: an `authn_login_success` per request with the account (as DRF's
  `BasicAuthentication`); a wrong one is Django's `user_login_failed` when the class calls
  `authenticate()`, else the 401 rule's Basic failure with the typed name.
* django-ninja-jwt's `TokenInputSchemaMixin.authenticate` (its pair and sliding obtain routers, and every
  schema built on them), when `ninja_jwt` is in `INSTALLED_APPS` (its module reads settings at import):
  a token issued is an `authn_login_success` with the account (the view calls `authenticate()` but never
  `login()`, so no signal says it; without the app, the middleware's rule for a JSON answer after
  `authenticate()` records it); an account `authenticate()` returned but the schema refuses (inactive)
  is `authn_login_fail` `account_disabled` with its pk.

A credential's value is never read into a record.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from graffer_secevents.integrations._auth import record_auth, record_bad_credential, stable_id
from graffer_secevents.integrations._common import never_raise

from ._wrap import wrap_method

__all__ = ["install"]


def install() -> None:
    """Hook django-ninja's key, bearer and Basic classes (and django-ninja-jwt's obtain
    schemas when `ninja_jwt` is in `INSTALLED_APPS`). Idempotent; called by the app."""
    from ninja.security.apikey import APIKeyBase
    from ninja.security.http import HttpBasicAuth, HttpBearer

    wrap_method(APIKeyBase, "__call__", _key_check)
    wrap_method(HttpBearer, "__call__", _key_check)
    wrap_method(HttpBasicAuth, "__call__", _basic_check)
    from django.apps import apps

    if apps.is_installed("ninja_jwt"):  # its settings are read at import: only where the project set it up
        from ninja_jwt.schema import TokenInputSchemaMixin

        wrap_method(TokenInputSchemaMixin, "authenticate", _jwt_obtain)


def _after(result: Any, check: Callable[[Any], None]) -> Any:
    """Run `check` on what an auth class answered, awaiting it first when its `authenticate` is async."""
    if inspect.isawaitable(result):

        async def awaited() -> Any:
            value = await result
            check(value)
            return value

        return awaited()
    check(result)
    return result


def _presented(auth: Any, request: Any) -> bool:
    """Whether the request carries the credential `auth` reads (never its value)."""
    from ninja.security.apikey import APIKeyBase
    from ninja.security.session import SessionAuth, SessionAuthSuperUser

    if isinstance(auth, SessionAuth | SessionAuthSuperUser):
        return False  # the session cookie: an anonymous session is no refused credential
    if isinstance(auth, APIKeyBase):
        return bool(auth._get_key(request))
    value = request.headers.get(getattr(auth, "header", "Authorization")) or ""
    scheme = str(getattr(auth, "openapi_scheme", "bearer"))
    return value.split(" ", 1)[0].lower() == scheme.lower() and bool(value.partition(" ")[2].strip())


def _key_check(original: Callable[..., Any]) -> Callable[..., Any]:
    def __call__(self: Any, request: Any) -> Any:  # noqa: N807 - replaces the class's __call__
        def check(answer: Any) -> None:
            if answer:
                return
            where = f"django-ninja's {type(self).__name__}"
            with never_raise(where):
                if _presented(self, request):
                    record_bad_credential(where)

        return _after(original(self, request), check)

    return __call__


def _basic_check(original: Callable[..., Any]) -> Callable[..., Any]:
    def __call__(self: Any, request: Any) -> Any:  # noqa: N807 - replaces the class's __call__
        def check(answer: Any) -> None:
            if not answer:  # Django's user_login_failed or the 401 rule's Basic failure says it
                return
            where = f"django-ninja's {type(self).__name__}"
            with never_raise(where):
                login: str | None = None
                try:
                    login, _ = self.decode_authorization(request.headers.get(self.header) or "")
                except Exception:  # noqa: BLE001 - a header the class accepted anyway: no typed name
                    login = None
                user = answer if stable_id(answer) is not None else None
                record_auth("authn_login_success", where=where, user=user, outcome="success", login=login)

        return _after(original(self, request), check)

    return __call__


def _jwt_obtain(original: Callable[..., Any]) -> Callable[..., Any]:
    def authenticate(self: Any, request: Any, credentials: Any) -> Any:
        where = "django-ninja-jwt's token obtain"
        try:
            result = original(self, request, credentials)
        except Exception:
            user = getattr(self, "_user", None)
            if user is not None:  # authenticate() returned it; the schema refuses it (inactive)
                record_auth(
                    "authn_login_fail",
                    where=where,
                    user=user,
                    outcome="failure",
                    exists=True,
                    params={"reason": "account_disabled"},
                )
            raise
        record_auth("authn_login_success", where=where, user=getattr(self, "_user", None), outcome="success")
        return result

    return authenticate
