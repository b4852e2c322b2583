"""Plain WSGI middleware: request context, the real client IP and denied-request events for any WSGI app.

Example:
    ```python
    from graffer_secevents.integrations.wsgi import SecurityEventsMiddleware

    application = SecurityEventsMiddleware(application)
    ```

Flask users take `graffer_secevents.integrations.flask.SecurityEvents` instead, which adds the route
template, the Flask-Login user and Flask-Login's signals. The context is bound while the application is
called; a body the server iterates *after* that (a streamed generator) is produced without it, so emit
before streaming, or pass `ip=` explicitly there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Final

from graffer_secevents import _server_check
from graffer_secevents._context import _request as _current  # bind_request(), inlined: once per request
from graffer_secevents._request_id import accept_request_id

from ._common import (
    DEFAULT_STATUS_EVENTS,
    OPTIONAL_STATUS_EVENTS,
    REQUEST_ID_HEADER,
    LazyRequestContext,
    StatusRule,
    emit_for_status,
    http_rules,
    never_raise,
)
from ._sso import record_refused_sso

__all__ = [
    "CONTEXT_KEY",
    "DEFAULT_STATUS_EVENTS",
    "OPTIONAL_STATUS_EVENTS",
    "RESPONSE_KEY",
    "SecurityEventsMiddleware",
    "WsgiRequestContext",
]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

_REQUEST_ID_LOWER = REQUEST_ID_HEADER.lower()


CONTEXT_KEY: Final = "graffer_secevents.context"
"""The environ key holding a request's context once it is built."""
RESPONSE_KEY: Final = "graffer_secevents.response"
"""The environ key holding `(status line, request id)` when the response started before any context."""


class WsgiRequestContext(LazyRequestContext):
    """The request context of one WSGI request, read from its environ."""

    def __init__(self, environ: Environ) -> None:
        self.environ = environ

    @classmethod
    def of(cls, environ: Environ) -> WsgiRequestContext:
        """The context of the request `environ` describes: built at the first need, then kept in it."""
        ctx: WsgiRequestContext | None = environ.get(CONTEXT_KEY)
        if ctx is None:
            ctx = environ[CONTEXT_KEY] = cls(environ)
            started = environ.get(RESPONSE_KEY)
            if started is not None:  # the status and the request id already echoed
                ctx._status_line, ctx._request_id = started
        return ctx

    def _raw_method(self) -> str | None:
        return self.environ.get("REQUEST_METHOD")

    def _raw_path(self) -> str | None:
        environ = self.environ
        path: str = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if not path.isascii():  # PEP 3333 carries the raw bytes as latin-1 text
            path = path.encode("latin-1", "replace").decode("utf-8", "replace")
        return path

    def _raw_peer_and_forwarding(self) -> tuple[str | None, str | None, str | None]:
        environ = self.environ
        return (
            environ.get("REMOTE_ADDR"),
            environ.get("HTTP_X_FORWARDED_FOR"),
            environ.get("HTTP_FORWARDED"),
        )

    def _raw_user_agent(self) -> str | None:
        return self.environ.get("HTTP_USER_AGENT")

    def _raw_request_id(self) -> str | None:
        return self.environ.get("HTTP_X_REQUEST_ID")

    def _raw_header(self, name: str) -> str | None:
        return self.environ.get("HTTP_" + name.upper().replace("-", "_"))

    def _raw_query_string(self) -> str | None:
        return self.environ.get("QUERY_STRING")

    _status_line: str | None = None

    @property
    def status_code(self) -> int | None:
        line = self._status_line
        if line is None:
            return None
        try:
            return int(line[:3])
        except (TypeError, ValueError):
            return None

    @status_code.setter
    def status_code(self, value: int | None) -> None:  # pyright: ignore[reportIncompatibleVariableOverride]
        self._status_line = None if value is None else f"{value} "

    # No user here: REMOTE_USER says nothing verified on its own (a server may copy it from a proxy's header,
    # e.g. gunicorn's forwarder_headers); applications bind their user with set_user().


class SecurityEventsMiddleware:
    """Bind the request context around a WSGI application.

    Inside a request, events carry the resolved client IP, user agent, request id, method, path and, once
    the response has started, the status code; the user is whatever `graffer_secevents.set_user`
    bound. The response carries the request id as `X-Request-ID`. A 401 or 403 emits the event of the
    HTTP semantics (`graffer_secevents.integrations._common`, docs/integrations/auth-stacks.md): a 401
    with a credential is `authn_login_fail`, without one `authz_fail` (`unauthenticated`), a 403 is
    `authz_fail`.

    Args:
        app: the WSGI application to wrap.
        status_events: per-status overrides merged over `DEFAULT_STATUS_EVENTS`: an event type
            turns a status on, `None` turns it off.
        record_unauthenticated: a 401 without a credential is `authz_fail` (`unauthenticated`).
        record_invalid_credentials: a 401 with a credential is `authn_login_fail`.
        credential_headers: the headers that carry a credential (default `("Authorization",)`), and
            `"cookie:<name>"` / `"query:<name>"` for a token kept in a cookie or a query parameter.
        credential_statuses: the statuses split by credential (default `(401,)`).

    Raises:
        ConfigurationError: `status_events` names a status or an event type that does not exist.

    Example:
        ```python
        application = SecurityEventsMiddleware(application, status_events={401: "authz_fail"})
        ```
    """

    __slots__ = ("_rules", "_status_prefixes", "app")
    context_class: ClassVar[type[WsgiRequestContext]] = WsgiRequestContext
    binds_context: ClassVar[bool] = True
    """Bind the context around the application. Flask's extension does not: Flask's own request context
    leads events to it (a provider, see `graffer_secevents.integrations.flask`)."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        status_events: Mapping[int, str | None] | None = None,
        record_unauthenticated: bool = True,
        record_invalid_credentials: bool = True,
        credential_headers: Iterable[str] | None = None,
        credential_statuses: Iterable[int] | None = None,
    ) -> None:
        self.app = app
        self._rules: dict[int, StatusRule] = http_rules(
            status_events,
            record_unauthenticated=record_unauthenticated,
            record_invalid_credentials=record_invalid_credentials,
            credential_headers=credential_headers,
            credential_statuses=credential_statuses,
        )
        self._status_prefixes = frozenset(str(code) for code in self._rules)
        from graffer_secevents._findings import report_startup_findings

        report_startup_findings()  # once per process, as the ASGI middleware and the Flask extension do

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if not _server_check._checked:
            _server_check.check_server_once()
        status_prefixes = self._status_prefixes

        # Runs once per request, so it does the least it can: the status line is kept as text (parsed only
        # if an event reads it), the rules are matched on its first three characters, and when no event has
        # built the context yet, the status and the request id are left in the environ for the one that may.
        def start_response_with_context(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            denied = False
            try:
                ctx = environ.get(CONTEXT_KEY)
                for name, value in headers:
                    if len(name) == 12 and name.lower() == _REQUEST_ID_LOWER:
                        # The application's own (an inner request-id middleware's) is kept, and is this
                        # request's id if no event has used one yet.
                        if ctx is None or ctx._request_id is None:
                            request_id = accept_request_id(value)
                            if ctx is not None:
                                ctx._request_id = request_id
                        else:
                            request_id = None
                        break
                else:
                    if ctx is not None:
                        request_id = ctx.request_id
                    else:
                        request_id = accept_request_id(environ.get("HTTP_X_REQUEST_ID"))
                    headers = [*headers, (REQUEST_ID_HEADER, request_id)]
                if ctx is not None:
                    ctx._status_line = status
                else:
                    environ[RESPONSE_KEY] = (status, request_id)
                # A refused SSO login answers its callback with any status (`_sso.py`): `state=` in the query.
                denied = status[:3] in status_prefixes or "state=" in environ.get("QUERY_STRING", "")
            except Exception:  # noqa: BLE001, S110 - an odd status line or header list is passed on unchanged
                pass
            if denied:
                self._record_denial(environ)
            return start_response(status, headers, exc_info)

        if not self.binds_context:
            return self.app(environ, start_response_with_context)
        try:
            ctx = environ[CONTEXT_KEY] = self.context_class(environ)
        except Exception:  # noqa: BLE001 - an odd environ: serve the request without a context
            return self.app(environ, start_response)
        token = _current.set(ctx)
        try:
            return self.app(environ, start_response_with_context)
        finally:
            _current.reset(token)

    def _record_denial(self, environ: Environ) -> None:
        with never_raise("the response-status event"):
            ctx = self.context_class.of(environ)
            record_refused_sso(ctx, environ.get("QUERY_STRING"))
            emit_for_status(ctx, self._rules)
