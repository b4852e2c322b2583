"""Plain WSGI middleware: request context, the real client IP and denied-request events for any WSGI app.

Example::

    from graffer_secevents.integrations.wsgi import SecurityEventsMiddleware

    application = SecurityEventsMiddleware(application)

Flask users take :class:`graffer_secevents.integrations.flask.SecurityEvents` instead, which adds the route
template, the Flask-Login user and Flask-Login's signals. The context is bound while the application is
called; a body the server iterates *after* that (a streamed generator) is produced without it, so emit
before streaming, or pass ``ip=`` explicitly there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from graffer_secevents._client_ip import accept_request_id
from graffer_secevents._context import _request as _current  # bind_request(), inlined: once per request

from ._common import (
    DEFAULT_STATUS_EVENTS,
    OPTIONAL_STATUS_EVENTS,
    REQUEST_ID_HEADER,
    LazyRequestContext,
    StatusRule,
    emit_for_status,
    status_rules,
)

__all__ = [
    "DEFAULT_STATUS_EVENTS",
    "OPTIONAL_STATUS_EVENTS",
    "SecurityEventsMiddleware",
    "WsgiRequestContext",
]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

_REQUEST_ID_LOWER = REQUEST_ID_HEADER.lower()


class WsgiRequestContext(LazyRequestContext):
    """The request context of one WSGI request, read from its environ."""

    def __init__(self, environ: Environ) -> None:
        self.environ = environ

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
    def status_code(self, value: int | None) -> None:
        self._status_line = None if value is None else f"{value} "

    # No user here: REMOTE_USER says nothing verified on its own (a server may copy it from a proxy's header,
    # e.g. gunicorn's forwarder_headers); applications bind their user with set_user().


class SecurityEventsMiddleware:
    """Bind the request context around a WSGI application.

    Inside a request, events carry the resolved client IP, user agent, request id, method, path and, once
    the response has started, the status code; the user is whatever :func:`graffer_secevents.set_user`
    bound. The response carries the request id as ``X-Request-ID``. A response whose status is in
    ``status_events`` emits that event (by default a 403 emits ``authz_fail``).

    Args:
        app: the WSGI application to wrap.
        status_events: per-status overrides merged over :data:`DEFAULT_STATUS_EVENTS`: an event type
            turns a status on, ``None`` turns it off.

    Raises:
        ConfigurationError: ``status_events`` names a status or an event type that does not exist.

    Example::

        application = SecurityEventsMiddleware(application, status_events={401: "authz_fail"})
    """

    __slots__ = ("_rules", "_status_prefixes", "app")
    context_class: ClassVar[type[WsgiRequestContext]] = WsgiRequestContext

    def __init__(self, app: WSGIApp, *, status_events: Mapping[int, str | None] | None = None) -> None:
        self.app = app
        self._rules: dict[int, StatusRule] = status_rules(status_events)
        self._status_prefixes = frozenset(str(code) for code in self._rules)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        try:
            ctx = self.context_class(environ)
        except Exception:  # noqa: BLE001 - an odd environ: serve the request without a context
            return self.app(environ, start_response)
        rules = self._rules
        status_prefixes = self._status_prefixes

        # Runs once per request, so it does the least it can: the status line is kept as text (parsed only
        # if an event reads it) and the rules are matched on its first three characters.
        def start_response_with_context(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            denied = False
            try:
                ctx._status_line = status
                for name, _value in headers:
                    if len(name) == 12 and name.lower() == _REQUEST_ID_LOWER:  # the application's own: kept
                        break
                else:
                    request_id = ctx._request_id  # the lazy property, inlined
                    if request_id is None:
                        request_id = ctx._request_id = accept_request_id(environ.get("HTTP_X_REQUEST_ID"))
                    headers = [*headers, (REQUEST_ID_HEADER, request_id)]
                denied = status[:3] in status_prefixes
            except Exception:  # noqa: BLE001, S110 - an odd status line or header list is passed on unchanged
                pass
            if denied:
                emit_for_status(ctx, rules)
            return start_response(status, headers, exc_info)

        token = _current.set(ctx)
        try:
            return self.app(environ, start_response_with_context)
        finally:
            _current.reset(token)
