"""The request context: what the middleware knows about the current request, read when an event is emitted.

Integrations bind one `RequestContext` per request with `bind_request` and always reset it
in a `finally`. The object itself is mutable on purpose: FastAPI runs sync dependencies in a thread
pool with a *copy* of the context, so a `ContextVar.set` made there is lost, but a change to the shared
object (`set_user`) is seen by the request's own task.

Subclasses may compute fields lazily (properties), so costly work happens only when an event is emitted.

A framework that already keeps a per-request context of its own (Flask) need not bind ours on every request:
its integration registers a *provider* with `add_request_provider`, which is asked only when no context
is bound, that is, only when an event or `set_user` needs one.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "RequestContext",
    "add_request_provider",
    "bind_request",
    "current_request",
    "current_user",
    "provided_request",
    "request_context",
    "reset_request",
    "set_user",
]


class RequestContext:
    """What an integration knows about one request. Every field is optional."""

    client_ip: str | None
    method: str | None
    path: str | None
    route: str | None
    user_agent: str | None
    request_id: str | None
    status_code: int | None
    user: Any

    def __init__(
        self,
        *,
        client_ip: str | None = None,
        method: str | None = None,
        path: str | None = None,
        route: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
        status_code: int | None = None,
        user: Any = None,
    ) -> None:
        self.client_ip = client_ip
        self.method = method
        self.path = path
        self.route = route
        self.user_agent = user_agent
        self.request_id = request_id
        self.status_code = status_code
        self.user = user


_request: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "graffer_secevents_request", default=None
)
# A user bound outside any request (a worker, a CLI, a test), by set_user().
_user: contextvars.ContextVar[Any] = contextvars.ContextVar("graffer_secevents_user", default=None)

RequestProvider = Callable[[], "RequestContext | None"]
_providers: list[RequestProvider] = []


def add_request_provider(provider: RequestProvider) -> None:
    """Ask `provider` for the current request when none is bound (once per provider, in order added).

    A provider returns the context of the request its framework is handling, or `None`; it must be cheap
    when there is none, and it should return the same object for the whole request.
    """
    if provider not in _providers:
        _providers.append(provider)


def provided_request() -> RequestContext | None:
    """The first context a registered provider returns; a provider that raises counts as none."""
    for provider in _providers:
        try:
            ctx = provider()
        except Exception:  # noqa: BLE001, S112 - e.g. a framework torn down mid-request: no context
            continue
        if ctx is not None:
            return ctx
    return None


def current_request() -> RequestContext | None:
    """Return the request context of the running thread or task, if any."""
    ctx = _request.get()
    if ctx is None and _providers:
        return provided_request()
    return ctx


def bind_request(ctx: RequestContext) -> contextvars.Token[RequestContext | None]:
    """Bind `ctx` as the current request; pass the returned token to `reset_request`."""
    return _request.set(ctx)


def reset_request(token: contextvars.Token[RequestContext | None]) -> None:
    """Undo `bind_request`."""
    _request.reset(token)


@contextmanager
def request_context(ctx: RequestContext) -> Generator[RequestContext, None, None]:
    """Bind `ctx` for the duration of a `with` block, and always unbind it."""
    token = _request.set(ctx)
    try:
        yield ctx
    finally:
        _request.reset(token)


def set_user(user: Any) -> None:
    """Name the authenticated user of the current request (or of the current context outside a request).

    Events emitted afterwards without an explicit `user` carry this one. Accepts whatever the helpers
    accept as `user`: an id, a `graffer_secevents.User`, or a Django/Flask-Login user object.

    Example:
        ```python
        async def current_user(token: str = Depends(oauth2)) -> User:
            user = await load_user(token)
            secevents.set_user(user)
            return user
        ```
    """
    ctx = current_request()
    if ctx is not None:
        ctx.user = user
    else:
        _user.set(user)


def current_user() -> Any:
    """Return the user bound by `set_user` or by an integration, or `None`."""
    ctx = current_request()
    if ctx is not None and ctx.user is not None:
        return ctx.user
    return _user.get()
