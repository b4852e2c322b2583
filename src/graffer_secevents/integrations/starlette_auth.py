"""Starlette's `AuthenticationMiddleware`: a refused credential (`AuthenticationError`) as one event.

Starlette calls the middleware's `on_error` when the backend raises `AuthenticationError` and answers
with what it returns (by default a 400 with the error's text). `auth_error_handler` records one
`authn_login_fail` (`evt.reason: authentication_error`) for the request and then answers as before, so
the 400 or 401 writes no second event from the status rule::

    from starlette.middleware import Middleware
    from starlette.middleware.authentication import AuthenticationMiddleware
    from graffer_secevents.integrations.asgi import SecurityEventsMiddleware
    from graffer_secevents.integrations.starlette_auth import auth_error_handler

    app = Starlette(
        routes=[...],
        middleware=[
            Middleware(SecurityEventsMiddleware),          # outermost: binds the request context
            Middleware(AuthenticationMiddleware, backend=TokenBackend(), on_error=auth_error_handler()),
        ],
    )

The user of every event in the request is `scope["user"]` (`integrations/_common.user_from_scope`): an
object with an `id` or `pk` is used as it is; a `SimpleUser`'s username is `usr.id`, and an identity
that is an e-mail address is written under the e-mail privacy rule (hashed by default), never raw. A
request the backend authenticates is not a login and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from graffer_secevents._errors import MissingDependencyError

try:
    from starlette.authentication import AuthenticationError
    from starlette.middleware.authentication import AuthenticationMiddleware
    from starlette.requests import HTTPConnection
    from starlette.responses import Response
except ImportError:
    raise MissingDependencyError("starlette", "fastapi") from None

from ._auth import record_bad_credential

__all__ = ["auth_error_handler"]

_WHERE: Final = "Starlette's AuthenticationMiddleware"

ErrorHandler = Callable[[HTTPConnection, AuthenticationError], Response]


def auth_error_handler(on_error: ErrorHandler | None = None) -> ErrorHandler:
    """An `on_error` for `AuthenticationMiddleware` that records the refused credential, then answers.

    Args:
        on_error: the application's own handler, or `None` for Starlette's default answer (400 with the
            error's text).

    Returns:
        The handler to pass as `AuthenticationMiddleware(..., on_error=...)`.

    Example:
        ```python
        Middleware(AuthenticationMiddleware, backend=backend, on_error=auth_error_handler(my_401_handler))
        ```
    """
    answer: ErrorHandler = on_error if on_error is not None else AuthenticationMiddleware.default_on_error

    def handle(conn: HTTPConnection, exc: AuthenticationError) -> Response:
        # The error's text is the application's and may name the user: it is never written.
        record_bad_credential(_WHERE, reason="authentication_error")
        return answer(conn, exc)

    return handle
