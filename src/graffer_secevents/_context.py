"""The request context: what the middleware knows about the current request, read when an event is emitted.

Integrations bind one `RequestContext` per request with `bind_request` and always reset it
in a `finally`. The object itself is mutable on purpose: FastAPI runs sync dependencies in a thread
pool with a *copy* of the context, so a `ContextVar.set` made there is lost, but a change to the shared
object (`set_user`) is seen by the request's own task.

Subclasses may compute fields lazily (properties), so costly work happens only when an event is emitted.

A framework that already keeps a per-request context of its own (Flask) need not bind ours on every request:
its integration registers a *provider* with `add_request_provider`, which is asked only when no context
is bound, that is, only when an event or `set_user` needs one.

Outside a request, who acts is a *scope*: `actor(...)` for system work (cron, migrations, scripts) and a
background job's origin (`_origin.py`, bound by the task-queue integrations). Scopes nest; the innermost is
bound in one context variable that the pipeline reads once per event, and it only fills what the event does
not already say (`_origin.enrich_from_scope`).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Final, TypeVar

from ._limits import _SAFE_CHARS, _coerce_str, _exact

__all__ = [
    "RequestContext",
    "Scope",
    "actor",
    "add_request_provider",
    "bind_request",
    "bound_for_each_call",
    "current_actor",
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


# --- who acts outside a request: scopes ------------------------------------------------------------------

MAX_ACTOR_NAME: Final = 128
_F = TypeVar("_F", bound=Callable[..., Any])


class Scope:
    """Who acts while no request does: an `actor(...)` block or a background job (`_origin.JobScope`).

    `user` is a caller's user (privacy applies when an event is written); `usr` is a `usr` object already
    written by the privacy rules elsewhere (a job's origin), copied as it is. `fields` are the top-level
    record keys the scope adds (`actor`, `job`), `notes` what had to be changed to build it (written in
    `secevents.errors` of every event it covers). `parent` is the scope it was opened in.
    """

    __slots__ = ("client_ip", "fields", "name", "notes", "parent", "trace", "user", "usr", "written")

    def __init__(
        self,
        *,
        parent: Scope | None = None,
        name: str | None = None,
        user: Any = None,
        usr: dict[str, Any] | None = None,
        client_ip: str | None = None,
        trace: tuple[str, dict[str, str]] | None = None,
        fields: dict[str, Any] | None = None,
        notes: tuple[str, ...] = (),
    ) -> None:
        self.parent = parent
        self.name = name
        self.user = user
        self.usr = usr
        self.client_ip = client_ip
        self.trace = trace
        self.fields = fields or {}
        self.notes = notes
        # `user` as written under one configuration: (config, usr, notes), so the events of a loop inside
        # `actor(user=...)` read the user object once, not once each (benchmarks/bench_origin.py).
        self.written: tuple[object, dict[str, Any], tuple[str, ...]] | None = None


_scope: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("graffer_secevents_scope", default=None)


def current_actor() -> Scope | None:
    """The innermost scope bound by `actor(...)` or a job integration, or `None`.

    For integrations that need the acting party when no request runs (a management command changing an
    account): `scope.name` is the process's name, `scope.user` the account it acts as, if any.
    """
    return _scope.get()


def _actor_name(name: object, notes: list[str]) -> str | None:
    if name is None:
        return None
    exact = _exact(name)
    if type(exact) is str:
        text: str = exact
    else:
        notes.append(f"actor.name: expected a string, got {type(name).__name__}; written as text")
        text = _coerce_str(name)
    if len(text) > MAX_ACTOR_NAME:
        notes.append(f"actor.name: {len(text)} characters, truncated to {MAX_ACTOR_NAME}")
        text = text[:MAX_ACTOR_NAME]
    if not text.isprintable():
        notes.append("actor.name: control characters replaced")
        text = "".join(c if c.isprintable() else "?" for c in text)
    return text or None


def _actor_reason(reason: object, notes: list[str]) -> str | None:
    if reason is None:
        return None
    text = _exact(reason)
    if (
        type(text) is not str
        or not 0 < len(text) <= 64
        or not all(c in _SAFE_CHARS or c == ":" for c in text)
    ):
        notes.append("actor.reason: expected up to 64 characters of [A-Za-z0-9_.:-]; dropped")
        return None
    return text


class actor:  # noqa: N801 - used like a function: `with secevents.actor(...)`, `@secevents.actor(...)`
    """Say who or what acts in system-initiated work (cron, migrations, scripts, a job acting on its own).

    Events emitted inside, that name no user of their own, carry `usr` of `user` (privacy rules apply)
    and `actor.name` / `actor.reason`; events with no actor at all say nobody acted. Nested blocks: the
    innermost wins. Inside a background job the actor bound here wins over the job's origin (which is
    still written under `job.origin`). Works as a context manager and as a decorator (sync or async).

    Args:
        name: what acts, e.g. `"cron:cleanup"`, `"manage.py migrate"`, a service account's name; at most
            128 printable characters (longer is cut, noted in `secevents.errors`).
        user: the account it acts as, if any: anything `log_*` accepts as a user.
        reason: a short machine-readable why (`[A-Za-z0-9_.:-]{1,64}`), e.g. `"scheduled"`.

    Example:
        ```python
        with secevents.actor("cron:purge-inactive", user=service_account):
            for account in inactive_accounts():
                secevents.log_user_deleted(user=service_account, target_user=account)

        @secevents.actor("nightly-export", reason="scheduled")
        def export() -> None: ...
        ```
    """

    __slots__ = ("_reason", "_tokens", "_user", "name")

    def __init__(self, name: str | None = None, *, user: Any = None, reason: str | None = None) -> None:
        self.name = name
        self._user = user
        self._reason = reason
        self._tokens: list[contextvars.Token[Scope | None]] = []

    def _build(self) -> Scope:
        parent = _scope.get()
        notes: list[str] = []
        name = _actor_name(self.name, notes)
        reason = _actor_reason(self._reason, notes)
        if name is None and self._user is None:
            notes.append("actor: neither a name nor a user given")
        block: dict[str, Any] = {}
        if name is not None:
            block["name"] = name
        if reason is not None:
            block["reason"] = reason
        fields = dict(parent.fields) if parent is not None else {}
        fields.pop("actor", None)
        if block:
            fields["actor"] = block
        trace = parent.trace if parent is not None else None
        return Scope(
            parent=parent, name=name, user=self._user, trace=trace, fields=fields, notes=tuple(notes)
        )

    def __enter__(self) -> actor:
        self._tokens.append(_scope.set(self._build()))
        return self

    def __exit__(self, *exc: object) -> None:
        _scope.reset(self._tokens.pop())

    def __call__(self, func: _F) -> _F:
        """Decorate `func` (sync or async): the actor is bound for each call."""
        name, user, reason = self.name, self._user, self._reason
        return bound_for_each_call(func, lambda: actor(name, user=user, reason=reason))


def bound_for_each_call(func: _F, block: Callable[[], AbstractContextManager[object]]) -> _F:
    """`func` (sync or async) run inside a new `block()` at each call: what `actor(...)` and `job(...)`
    do as decorators."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            with block():
                return await func(*args, **kwargs)

        return run_async  # type: ignore[return-value]

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        with block():
            return func(*args, **kwargs)

    return run  # type: ignore[return-value]
