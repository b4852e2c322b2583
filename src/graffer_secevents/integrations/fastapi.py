"""FastAPI (and Starlette): the pure ASGI `SecurityEventsMiddleware` and `set_user`.

FastAPI has no authentication signals, so logins, failures and logouts are recorded with the helpers
(`secevents.log_login(...)`) where the application checks credentials; everything else comes from the
request context the middleware binds. Bind the authenticated user from the dependency that resolves it
(async or sync: a sync dependency runs in a thread pool and `set_user` still reaches the request)::

    from fastapi import Depends, FastAPI
    import graffer_secevents as secevents
    from graffer_secevents.integrations.fastapi import SecurityEventsMiddleware

    app = FastAPI()
    app.add_middleware(SecurityEventsMiddleware)

    def current_user(token: str = Depends(oauth2_scheme)) -> User:
        user = users.from_token(token)
        secevents.set_user(user)
        return user
"""

from __future__ import annotations

from graffer_secevents._errors import MissingDependencyError

try:
    # Fail early, with the install hint, when the extra is missing.
    import fastapi  # noqa: F401  # pyright: ignore[reportUnusedImport]
except ImportError:
    raise MissingDependencyError("fastapi", "fastapi") from None

from graffer_secevents._context import current_request, set_user

from .asgi import DEFAULT_STATUS_EVENTS, OPTIONAL_STATUS_EVENTS, SecurityEventsMiddleware

__all__ = [
    "DEFAULT_STATUS_EVENTS",
    "OPTIONAL_STATUS_EVENTS",
    "SecurityEventsMiddleware",
    "current_request",
    "set_user",
]
