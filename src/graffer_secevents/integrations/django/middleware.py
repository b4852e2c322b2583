"""Django's `SecurityEventsMiddleware`: request context, the real client IP and denied-request events.

Put it first in `MIDDLEWARE` so everything after it (sessions, CSRF, authentication, views) runs with the
context bound::

    MIDDLEWARE = [
        "graffer_secevents.integrations.django.SecurityEventsMiddleware",
        "django.middleware.security.SecurityMiddleware",
        ...
    ]

It runs natively under WSGI and ASGI (sync and async capable). `request.user` is read when an event is
emitted, not when the request starts, so a user that Django REST framework authenticates inside the view is
the one recorded, and a request that emits nothing never touches the session. Setting
`SECEVENTS["status_events"]` (a dict, merged over the default `{401: "authz_fail", 403: "authz_fail"}`;
`None` switches a status off) chooses which responses are events; a 401 is split by credential (the HTTP
semantics of `docs/integrations/auth-stacks.md`: `record_unauthenticated`, `record_invalid_credentials`,
`credential_headers`, `credential_statuses` in `SECEVENTS`). The answer to an SSO callback that nothing
recorded is a refused login (`integrations/_sso.py`), with the inactive account a backend accepted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any

from graffer_secevents._errors import MissingDependencyError

try:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction
    from django.http import FileResponse, HttpRequest, HttpResponseBase
    from django.utils.functional import SimpleLazyObject, empty
except ImportError:
    raise MissingDependencyError("django", "django") from None

from graffer_secevents._context import _request as _current  # bind_request(), inlined: once per request
from graffer_secevents._context import bind_request, current_request, request_context, reset_request
from graffer_secevents._request_id import accept_request_id
from graffer_secevents.integrations._auth import record_auth
from graffer_secevents.integrations._common import (
    DEFAULT_STATUS_EVENTS,
    OPTIONAL_STATUS_EVENTS,
    REQUEST_ID_HEADER,
    LazyRequestContext,
    StatusRule,
    emit_for_status,
    http_rules,
    never_raise,
)
from graffer_secevents.integrations._sso import record_refused_sso
from graffer_secevents.integrations.django._settings import http_options_setting, status_events_setting

_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower()
_ACCEPTED = "_secevents_backend_accepted"  # _backends.ACCEPTED_ATTR (not imported: _backends imports us)

__all__ = [
    "DEFAULT_STATUS_EVENTS",
    "OPTIONAL_STATUS_EVENTS",
    "DjangoRequestContext",
    "SecurityEventsMiddleware",
    "posted_form",
    "request_bound",
]


class DjangoRequestContext(LazyRequestContext):
    """The request context of one Django `HttpRequest`."""

    def __init__(self, request: HttpRequest) -> None:
        self.request = request

    def _raw_method(self) -> str | None:
        return self.request.method  # type: ignore[no-any-return]

    def _raw_path(self) -> str | None:
        return self.request.path  # type: ignore[no-any-return]

    def _raw_peer_and_forwarding(self) -> tuple[str | None, str | None, str | None]:
        meta = self.request.META
        return meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"), meta.get("HTTP_FORWARDED")

    def _raw_user_agent(self) -> str | None:
        return self.request.META.get("HTTP_USER_AGENT")  # type: ignore[no-any-return]

    def _raw_request_id(self) -> str | None:
        return self.request.META.get("HTTP_X_REQUEST_ID")  # type: ignore[no-any-return]

    def _raw_header(self, name: str) -> str | None:
        return self.request.META.get("HTTP_" + name.upper().replace("-", "_"))  # type: ignore[no-any-return]

    def _raw_query_string(self) -> str | None:
        return self.request.META.get("QUERY_STRING")  # type: ignore[no-any-return]

    def _find_route(self) -> str | None:
        route = getattr(getattr(self.request, "resolver_match", None), "route", None)
        if not route or not isinstance(route, str):
            return None
        return route if route.startswith(("/", "^")) else "/" + route

    @property
    def session_id(self) -> str | None:
        """The session's key when the request has one (never a new session): a job's origin carries its
        pseudonym (`_origin.capture_origin`), never the key itself."""
        session = self.request.__dict__.get("session")
        key = getattr(session, "session_key", None) if session is not None else None
        return key if isinstance(key, str) and key else None

    def _find_user(self) -> Any:
        attributes = self.request.__dict__
        user = attributes.get("user")  # AuthenticationMiddleware's lazy user, or one set by login() or DRF
        if user is None:
            return attributes.get("_acached_user")
        if isinstance(user, SimpleLazyObject) and user._wrapped is empty:
            cached = attributes.get("_acached_user")  # an async view awaited request.auser()
            if cached is not None:
                return cached
            # Evaluate here, where a failure (the database reached from an event loop) just means no user.
            if user.is_authenticated is None:
                return None
        return user


class SecurityEventsMiddleware:
    """Bind the request context around each request; a 403 (by default) emits `authz_fail`.

    Events emitted during the request carry the resolved client IP, user agent, request id, method, path,
    route template, user and, once the view has returned, the status code; the response carries the
    request id as `X-Request-ID`.

    Raises:
        ConfigurationError: at start-up, when `SECEVENTS["status_events"]` names a status or an event
            type that does not exist.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self._is_async = iscoroutinefunction(get_response)  # pyright: ignore[reportDeprecated]
        if self._is_async:
            markcoroutinefunction(self)
        self._rules: dict[int, StatusRule] = http_rules(status_events_setting(), **http_options_setting())

    def __call__(self, request: HttpRequest) -> Any:
        if self._is_async:
            return self.__acall__(request)
        ctx = DjangoRequestContext(request)  # only stores the request
        token = _current.set(ctx)
        try:
            response = self.get_response(request)
            _finish(ctx, response, self._rules)
            return response
        finally:
            _current.reset(token)

    async def __acall__(self, request: HttpRequest) -> Any:
        ctx = DjangoRequestContext(request)  # only stores the request
        token = _current.set(ctx)
        try:
            response = await self.get_response(request)
            _finish(ctx, response, self._rules)
            return response
        finally:
            _current.reset(token)


def _finish(ctx: DjangoRequestContext, response: HttpResponseBase, rules: dict[int, StatusRule]) -> None:
    try:
        status = ctx.status_code = response.status_code
        request_id = ctx._request_id  # the lazy property, inlined: this runs on every request
        if request_id is None:
            request_id = ctx._request_id = accept_request_id(ctx.request.META.get("HTTP_X_REQUEST_ID"))
        store = getattr(response.headers, "_store", None)
        if type(store) is dict:
            # ResponseHeaders' own dict: headers.setdefault() re-validates and re-encodes both strings
            # (~1 µs); a request id is already plain ASCII. The application's own X-Request-ID wins.
            store.setdefault(_REQUEST_ID_KEY, (REQUEST_ID_HEADER, request_id))
        else:
            response.headers.setdefault(REQUEST_ID_HEADER, request_id)
        if response.streaming and not isinstance(response, FileResponse):  # pyright: ignore[reportAttributeAccessIssue]
            # The body is produced after this middleware returns: re-bind the context around it.
            content = response.streaming_content  # pyright: ignore[reportAttributeAccessIssue]
            response.streaming_content = _abound(ctx, content) if response.is_async else _bound(ctx, content)  # pyright: ignore[reportAttributeAccessIssue]
    except Exception:  # noqa: BLE001 - an odd response is passed on unchanged
        return
    if _ACCEPTED in ctx.__dict__:  # a backend's authenticate() accepted an account during this request
        with never_raise("Django's middleware"):
            record_api_login(response, where="a JSON answer after Django's authenticate()")
    request = ctx.request
    query = request.META.get("QUERY_STRING")
    if query and "state=" in query:  # a refused SSO login: the provider's answer at the redirect URI
        record_refused_sso(ctx, query, account=ctx.__dict__.get(_ACCEPTED))
    # The answer posted (form_post)? Django's stubs-less HttpRequest says `method = None` at class level.
    elif request.method == "POST" and "_post" in request.__dict__:  # pyright: ignore[reportUnnecessaryComparison]
        form = posted_form(request)
        if form is not None and "state" in form:
            record_refused_sso(ctx, None, account=ctx.__dict__.get(_ACCEPTED), form=form)
    if status in rules:
        emit_for_status(ctx, rules)


def posted_form(request: Any) -> Any:
    """The form fields of a cross-origin POST the view already parsed (`request.POST`), else `None`; never
    parses. A provider's `response_mode=form_post` is posted by its own page (the browser's `Origin` is the
    provider's, or `null`); a form of the site itself with a `state` field (an address) is same-origin."""
    if getattr(request, "method", None) != "POST":
        return None
    form = request.__dict__.get("_post")
    if form is None:
        return None
    origin = request.META.get("HTTP_ORIGIN")
    if not origin:
        return None
    if origin != "null":
        try:
            host = request.get_host()  # Django's own reading (HTTP_HOST, else SERVER_NAME:SERVER_PORT)
        except Exception:  # noqa: BLE001 - a host Django refuses: no callback to read
            return None
        if origin.partition("://")[2].rstrip("/") == host:
            return None
    return form


def record_api_login(response: Any, *, where: str) -> None:
    """A JSON answer (2xx) to a request in which a backend's `authenticate()` accepted an account and
    nothing recorded a login: that account's `authn_login_success`, once for the request.

    Token-issuing login endpoints call `authenticate()` and never `login()` (dj-rest-auth without
    `SESSION_LOGIN`, django-ninja-jwt, a DRF or plain view of your own returning a token), so no signal
    says it. Only a JSON answer counts: a page that authenticates a first factor and renders the next step
    (django-two-factor-auth's wizard) is HTML, and its login is recorded when `login()` runs.
    """
    ctx = current_request()
    user = getattr(ctx, _ACCEPTED, None) if ctx is not None else None
    if user is None:
        return
    status = getattr(response, "status_code", None)
    kind = str(response.get("Content-Type", "")).split(";", 1)[0].strip().lower()
    if (
        isinstance(status, int)
        and 200 <= status < 300
        and (kind == "application/json" or kind.endswith("+json"))
    ):
        record_auth("authn_login_success", where=where, user=user, outcome="success")


def _bound(ctx: LazyRequestContext, content: Any) -> Iterator[Any]:
    iterator = iter(content)
    while True:
        token = bind_request(ctx)
        try:
            chunk = next(iterator)
        except StopIteration:
            return
        finally:
            reset_request(token)
        yield chunk


async def _abound(ctx: LazyRequestContext, content: Any) -> AsyncIterator[Any]:
    iterator = aiter(content)
    while True:
        token = bind_request(ctx)
        try:
            chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        finally:
            reset_request(token)
        yield chunk


@contextmanager
def request_bound(request: object) -> Generator[None, None, None]:
    """Bind a context for `request` unless one is bound already (a signal sent without the middleware)."""
    if current_request() is not None or not isinstance(request, HttpRequest):
        yield
        return
    try:
        ctx = DjangoRequestContext(request)
    except Exception:  # noqa: BLE001
        yield
        return
    with request_context(ctx):
        yield
