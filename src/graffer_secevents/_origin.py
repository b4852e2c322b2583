"""A background job's origin: what travels from the code that enqueued it to the worker, and back into events.

When work is enqueued, `capture_origin()` builds a small, allowlisted block from what the enqueuing code's
events would say, *as already written* by the privacy rules: the request id, `usr.id` (never the login or
the e-mail), the client IP, a pseudonym of the session, the trace ids, the `actor(...)` name, the time. The
task-queue integrations (`integrations/celery.py`, `rq.py`, `dramatiq.py`, `arq.py`) carry it in the
message and, in the worker, bind it with the job's identity as a `Scope` (`job_scope`) for the time the job
runs. Nothing else of the logging or request context travels.

The worker never trusts the block: anyone who can publish to the broker can forge it. `read_origin` keeps
only known keys of the right type, shape and size and notes everything else in `secevents.errors`; with a
`hash_key` configured the block is signed (HMAC-SHA256 under that key, the same pseudonym function as
`usr.login`) and a block whose signature does not verify is dropped whole, noted.

Events emitted inside the job (`enrich_from_scope`, called by the pipeline) say so under `job.*`, carry the
origin under `job.origin.*`, and take the origin's `usr.id`, client IP and trace ids where the event names
none of its own and no newer actor was bound inside the job (`set_user`, `actor(...)`).

Nothing here imports a task queue.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Generator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any, Final, NamedTuple, TypeVar, cast

import orjson

from . import _config
from ._config import get_config_for_event
from ._context import Scope, _scope, _user, bound_for_each_call, current_request
from ._guard import guarded
from ._ip import normalize_ip, truncate_ip
from ._limits import MAX_STRING, _coerce_str, _exact
from ._trace import trace_fields
from ._users import _show, _user_parts, _usr

__all__ = [
    "ORIGIN_KEY",
    "JobBinding",
    "as_dict",
    "bind_job",
    "capture_origin",
    "enrich_from_scope",
    "job",
    "job_origin",
    "job_scope",
    "open_job",
    "read_origin",
    "unbind_job",
]

ORIGIN_KEY: Final = "graffer_secevents_origin"
"""The name the origin travels under: a Celery header, an RQ `job.meta` key, a Dramatiq message option, an
arq job keyword argument."""

ORIGIN_VERSION: Final = 1
MAX_ORIGIN_BYTES: Final = 4096
MAX_JOB_NAME: Final = 256
MAX_JOB_ID: Final = 128
_SIGNATURE_CONTEXT: Final = "graffer_secevents origin v1\n"

if TYPE_CHECKING:
    _Match = Callable[[str], object]

_F = TypeVar("_F", bound=Callable[..., Any])


class _Formats(NamedTuple):
    pseudonym: _Match
    timestamp: _Match
    request_id: _Match
    traces: dict[str, tuple[_Match, _Match]]


@cache
def _formats() -> _Formats:
    """The shapes origin fields must have, compiled on first use (enqueue or worker side, never at import:
    `import graffer_secevents` imports this module and pays for nothing here)."""
    import re

    from ._request_id import REQUEST_ID_PATTERN  # its random generator is seeded at import

    def full(pattern: str) -> _Match:
        return re.compile(pattern).fullmatch

    return _Formats(
        pseudonym=full(r"anon_[0-9a-f]{32}"),
        timestamp=full(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3,9}Z"),
        request_id=REQUEST_ID_PATTERN.fullmatch,
        traces={
            "dd": (full(r"[0-9]{1,20}|[0-9a-f]{32}"), full(r"[0-9]{1,20}")),
            "otel": (full(r"[0-9a-f]{32}"), full(r"[0-9a-f]{16}")),
        },
    )


def as_dict(value: object) -> dict[str, Any] | None:
    """`value` if it is a plain `dict` (a decoded message part), else `None`."""
    return cast("dict[str, Any]", value) if type(value) is dict else None


# --- the enqueuing side ------------------------------------------------------------------------------------


def _now() -> str:
    now = time.time_ns() // 1000
    second, micros = divmod(now, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)) + f"{micros:06d}Z"


def _signature(cfg: _config.Config, block: Mapping[str, Any]) -> str:
    canonical = orjson.dumps({k: v for k, v in block.items() if k != "sig"}, option=orjson.OPT_SORT_KEYS)
    return cfg.privacy.hash(_SIGNATURE_CONTEXT + canonical.decode())


def capture_origin() -> dict[str, Any]:
    """The origin block of work enqueued now: JSON-safe, allowlisted, as the privacy rules write it.

    In a request: its id, user, client IP, session and trace. Inside a job that enqueues more work: that
    job's origin, passed on (the request that started the chain stays the origin). Inside `actor(...)`: its
    name and user. Always the time it was enqueued. Signed when a `hash_key` is configured.

    Never raises: what cannot be read is left out (the integrations call it on the enqueuing path).
    """
    block: dict[str, Any] = {"v": ORIGIN_VERSION}
    try:
        cfg = _config._current or get_config_for_event()
        _capture_into(cfg, block)
        block["enqueued_at"] = _now()
        if cfg.privacy.keyed:
            block["sig"] = _signature(cfg, block)
    except Exception:  # noqa: BLE001 - the enqueuing code goes on: an origin is best-effort
        return {"v": ORIGIN_VERSION, "enqueued_at": _now()}
    return block


def _capture_into(cfg: _config.Config, block: dict[str, Any]) -> None:
    scope = _scope.get()
    job = _innermost_job(scope)
    if job is not None and job.origin:
        block.update({k: v for k, v in job.origin.items() if k not in ("v", "sig", "enqueued_at")})
        if scope is not job or _user.get() is not None:
            # A newer actor bound inside the job enqueues: it is the one acting now. The chain keeps the
            # request id and trace; the request's user, IP and session are not the newer actor's.
            for key in ("usr_id", "client_ip", "session_id", "actor"):
                block.pop(key, None)
    errors: list[str] = []  # what a user object would have noted on an event: not this block's concern
    request = current_request()
    user: Any = None
    if request is not None:
        if type(rid := request.request_id) is str and _formats().request_id(rid):
            block["request_id"] = rid
        user = request.user
        ip = request.client_ip
        if type(ip) is str and (shown := cfg.privacy.apply_ip(ip)) is not None:
            block["client_ip"] = shown
        session = getattr(request, "session_id", None)
        if session is not None and (text := _coerce_str(session)):
            block["session_id"] = cfg.privacy.hash(text)  # a session id is never written raw
    if user is None:
        user = _user.get()
    if user is None and scope is not None and scope.user is not None:
        user = scope.user
    if user is not None:
        usr_id = _usr(cfg.privacy, False, _user_parts("usr", user, errors), errors).get("id")
        if type(usr_id) is str:
            block["usr_id"] = usr_id
    if scope is not None and scope.name is not None:
        block["actor"] = scope.name
    trace = trace_fields()
    if trace is not None:
        kind, ids = trace
        block["trace_kind"] = kind
        block["trace_id"] = ids["trace_id"]
        block["span_id"] = ids["span_id"]


# --- the worker side ---------------------------------------------------------------------------------------


class JobScope(Scope):
    """A background job as a scope: its identity and its validated origin."""

    __slots__ = ("origin",)

    def __init__(self, *, origin: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.origin = origin


def _innermost_job(scope: Scope | None) -> JobScope | None:
    while scope is not None:
        if isinstance(scope, JobScope):
            return scope
        scope = scope.parent
    return None


def _printable(where: str, value: object, limit: int, notes: list[str]) -> str | None:
    text = _exact(value)
    if type(text) is not str:
        notes.append(f"{where}: expected a string, got {_show(value)}; dropped")
        return None
    if not 0 < len(text) <= limit or not text.isprintable():
        notes.append(f"{where}: not 1-{limit} printable characters ({_show(text)}); dropped")
        return None
    return text


def _check_ip(where: str, value: object, notes: list[str]) -> str | None:
    shaped = type(value) is str and len(value) <= 64
    if shaped and (_formats().pseudonym(value) or normalize_ip(value) == value):  # type: ignore[arg-type]
        return value  # type: ignore[return-value]
    notes.append(f"{where}: not an IP address as a record writes it ({_show(value)}); dropped")
    return None


def _check_pattern(where: str, value: object, match: Any, notes: list[str]) -> str | None:
    if type(value) is str and len(value) <= 64 and match(value):
        return value
    notes.append(f"{where}: malformed ({_show(value)}); dropped")
    return None


_KNOWN: Final = frozenset(
    {
        "v",
        "sig",
        "request_id",
        "usr_id",
        "client_ip",
        "session_id",
        "actor",
        "trace_kind",
        "trace_id",
        "span_id",
        "enqueued_at",
    }
)


def read_origin(raw: object, cfg: _config.Config | None = None) -> tuple[dict[str, Any], list[str]]:
    """Validate an origin block read from a message: the fields kept, and notes on what was not.

    Each field must have its type, shape and size (`request_id` as a request id, `usr_id` 1-1024 printable
    characters, `client_ip` an IP address or a pseudonym, `session_id` a pseudonym, trace ids in the
    tracer's format, `enqueued_at` a record timestamp); the whole block at most 4 KiB as JSON. With a
    `hash_key` configured the signature must verify, or nothing of the block is kept.
    """
    notes: list[str] = []
    if raw is None:
        return {}, notes
    block = as_dict(raw)
    if block is None:
        return {}, [f"job.origin: expected a mapping, got {_show(raw)}; dropped"]
    try:
        size = len(orjson.dumps(block))
    except (orjson.JSONEncodeError, TypeError):
        return {}, ["job.origin: not JSON-serialisable; dropped"]
    if size > MAX_ORIGIN_BYTES:
        return {}, [f"job.origin: {size} bytes, more than {MAX_ORIGIN_BYTES}; dropped"]
    version = block.get("v")
    if type(version) is not int or version != ORIGIN_VERSION:
        return {}, [f"job.origin: unknown version ({_show(version)}); dropped"]
    cfg = cfg or _config._current or get_config_for_event()
    if cfg.privacy.keyed:
        import hmac  # ~2.5 ms of import (OpenSSL) that `import graffer_secevents` must not pay

        sig = block.get("sig")
        expected = _signature(cfg, block)
        if type(sig) is not str or not hmac.compare_digest(sig.encode(), expected.encode()):
            why = "unsigned" if sig is None else "signature does not verify"
            return {}, [f"job.origin: {why} under this process's hash_key; dropped"]
    unknown = sorted(_show(k) for k in block if k not in _KNOWN)
    if unknown:
        notes.append(f"job.origin: unknown keys ignored: {', '.join(unknown[:8])}")
    kept: dict[str, Any] = {}
    formats = _formats()
    if (value := block.get("request_id")) is not None and (
        checked := _check_pattern("job.origin.request_id", value, formats.request_id, notes)
    ):
        kept["request_id"] = checked
    if (value := block.get("usr_id")) is not None and (
        checked := _printable("job.origin.usr_id", value, MAX_STRING, notes)
    ):
        kept["usr_id"] = checked
    if (value := block.get("client_ip")) is not None and (
        checked := _check_ip("job.origin.client_ip", value, notes)
    ):
        kept["client_ip"] = checked
    if (value := block.get("session_id")) is not None and (
        checked := _check_pattern("job.origin.session_id", value, formats.pseudonym, notes)
    ):
        kept["session_id"] = checked
    if (value := block.get("actor")) is not None and (
        checked := _printable("job.origin.actor", value, 128, notes)
    ):
        kept["actor"] = checked
    if (value := block.get("enqueued_at")) is not None and (
        checked := _check_pattern("job.enqueued_at", value, formats.timestamp, notes)
    ):
        kept["enqueued_at"] = checked
    kind = block.get("trace_kind")
    if kind is not None or "trace_id" in block or "span_id" in block:
        matchers = formats.traces.get(kind) if type(kind) is str else None
        if matchers is None:
            notes.append(f"job.origin.trace_kind: expected 'dd' or 'otel', got {_show(kind)}; trace dropped")
        else:
            trace_id = _check_pattern("job.origin.trace_id", block.get("trace_id"), matchers[0], notes)
            span_id = _check_pattern("job.origin.span_id", block.get("span_id"), matchers[1], notes)
            if trace_id and span_id:
                kept.update(trace_kind=kind, trace_id=trace_id, span_id=span_id)
    return kept, notes


def job_scope(
    system: str, name: object, job_id: object, raw_origin: object, *, cfg: _config.Config | None = None
) -> JobScope:
    """The scope of one job run: its identity (bounded, noted) and its origin (validated by `read_origin`,
    then held to this process's privacy modes)."""
    cfg = cfg or _config._current or get_config_for_event()
    origin, notes = read_origin(raw_origin, cfg)
    _apply_own_privacy(cfg, origin)
    job: dict[str, Any] = {"system": system}
    if name is not None and (text := _printable("job.name", name, MAX_JOB_NAME, notes)):
        job["name"] = text
    if job_id is not None:
        exact = _exact(job_id)
        if type(exact) is not str and type(exact) is not int:
            notes.append(f"job.id: expected a string, got {_show(job_id)}; dropped")
        elif checked := _printable("job.id", str(exact), MAX_JOB_ID, notes):
            job["id"] = checked
    if "enqueued_at" in origin:
        job["enqueued_at"] = origin["enqueued_at"]
    shown: dict[str, Any] = {
        k: origin[k] for k in ("request_id", "usr_id", "client_ip", "session_id", "actor") if k in origin
    }
    if "trace_id" in origin:
        shown["trace_id"] = origin["trace_id"]
        shown["span_id"] = origin["span_id"]
    if shown:
        job["origin"] = shown
    fields: dict[str, Any] = {"job": job}
    if "actor" in origin:
        fields["actor"] = {"name": origin["actor"]}
    trace = None
    if "trace_id" in origin:
        trace = (origin["trace_kind"], {"trace_id": origin["trace_id"], "span_id": origin["span_id"]})
    return JobScope(
        origin={**origin, "v": ORIGIN_VERSION},
        name=origin.get("actor"),
        usr={"id": origin["usr_id"]} if "usr_id" in origin else None,
        client_ip=origin.get("client_ip"),
        trace=trace,
        fields=fields,
        notes=tuple(notes),
    )


def _apply_own_privacy(cfg: _config.Config, origin: dict[str, Any]) -> None:
    """Hold the origin's user id and IP to the worker's own privacy modes, not only the enqueuer's.

    The same configuration on both sides (the usual case) changes nothing: a value already hashed,
    truncated or dropped stays so. A stricter worker wins: `drop` removes, `hash` pseudonymises a value not
    yet a pseudonym, `truncate` cuts an address.
    """
    privacy = cfg.privacy
    for key, field in (("usr_id", "usr.id"), ("client_ip", "network.client.ip")):
        value = origin.get(key)
        if value is None:
            continue
        mode = privacy.modes[field]
        if mode == "drop":
            del origin[key]
        elif mode == "hash" and not _formats().pseudonym(value):
            origin[key] = privacy.hash(value)
        elif mode == "truncate" and not _formats().pseudonym(value):
            origin[key] = truncate_ip(value)


class JobBinding:
    """What `bind_job` set, for `unbind_job` to reset."""

    __slots__ = ("scope", "scope_token", "user_token")

    def __init__(
        self,
        scope: JobScope,
        scope_token: contextvars.Token[Scope | None],
        user_token: contextvars.Token[Any],
    ) -> None:
        self.scope = scope
        self.scope_token = scope_token
        self.user_token = user_token


def bind_job(scope: JobScope) -> JobBinding:
    """Bind a job's scope for the current context; a user bound before (by an earlier job) is cleared."""
    return JobBinding(scope, _scope.set(scope), _user.set(None))


def unbind_job(binding: JobBinding) -> None:
    """Undo `bind_job` (in the same context it was bound in)."""
    _user.reset(binding.user_token)
    _scope.reset(binding.scope_token)


@contextmanager
def bound_job(
    system: str, name: object, job_id: object, raw_origin: object
) -> Generator[JobScope, None, None]:
    """`job_scope` bound for the duration of a `with` block (the integrations whose hook wraps the run)."""
    binding = bind_job(job_scope(system, name, job_id, raw_origin))
    try:
        yield binding.scope
    finally:
        unbind_job(binding)


# --- the public API: any other queue, any hand-off ------------------------------------------------------


def job_origin() -> dict[str, Any]:
    """The origin of work handed off now, for a queue or a hand-off the library has no integration for.

    A small JSON-safe dict (a few hundred bytes): what the current request's (or job's, or `actor(...)`'s)
    events write of the request id, `usr.id`, client IP, session pseudonym, trace ids and actor name,
    after the privacy rules, plus the time; signed with HMAC-SHA256 when a `hash_key` is configured. It
    is what the Celery, RQ, Dramatiq, arq and taskiq integrations put in a message. Carry it in the
    job's arguments, headers or metadata (as it is, or as JSON text) and open `job(...)` with it in
    the worker. Never the login, e-mail, raw session id, user agent or path. Never raises.

    Example:
        ```python
        export_orders.delay(account_id, origin=secevents.job_origin())
        ```
    """
    return capture_origin()


_SYSTEM_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


def _job_system(system: object, notes: list[str]) -> str:
    text = _exact(system)
    if type(text) is str and 0 < len(text) <= 32 and set(text) <= _SYSTEM_CHARS:
        return text
    notes.append(f"job.system: expected 1-32 characters of [a-z0-9_], got {_show(system)}; written as other")
    return "other"


def _decoded(origin: object, notes: list[str]) -> object:
    """An origin handed over as JSON text (a string header, a JSON-only transport) as the dict it encodes."""
    if type(origin) is str or type(origin) is bytes:
        if len(origin) > MAX_ORIGIN_BYTES:
            notes.append(f"job.origin: {len(origin)} characters of text, over {MAX_ORIGIN_BYTES}; dropped")
            return None
        try:
            return orjson.loads(origin)
        except orjson.JSONDecodeError:
            notes.append("job.origin: text that is not JSON; dropped")
            return None
    return origin


class job:  # noqa: N801 - used like a function: `with secevents.job(...)`, `@secevents.job(...)`
    """Run a job under the origin `job_origin()` captured where it was handed off: for any task queue,
    scheduler or thread the library has no integration for.

    The origin is validated exactly as the integrations validate theirs: only known fields of the right
    type, shape and size are kept (4 KiB at most), the signature must verify when this process has a
    `hash_key`, and the worker's own privacy modes apply. Whatever is dropped is noted in the
    `secevents.errors` of every event inside (an `EventValidationError` from each event in strict mode);
    the job runs either way. Events inside that name no user of their own carry the origin's `usr.id`
    and client IP, `job.system`/`name`/`id`/`enqueued_at`, the origin under `job.origin`, and its trace
    ids when they have none. An `actor(...)` or `set_user(...)` inside the job is newer and wins. Work
    handed off inside the job passes the first request's origin on.

    A context manager, and a decorator (sync or async) that binds the same origin for each call.

    Args:
        origin: what `job_origin()` returned where the job was handed off, as a dict or as JSON text;
            `None` (a job enqueued by code that sent none) binds the job with no origin.
        system: the queue or hand-off, `[a-z0-9_]{1,32}` (`"huey"`, `"taskiq"`, `"thread"`); anything
            else is written as `"other"`, noted.
        name: the task's name, at most 256 printable characters (the decorated function's dotted name
            when used as a decorator without one).
        job_id: the task's id in its queue, at most 128 printable characters.

    Example:
        ```python
        @huey.task(context=True)
        def export_orders(account_id, origin=None, task=None):
            with secevents.job(origin, system="huey", name=task.name, job_id=task.id):
                secevents.log_data_export(None, "orders", record_count=export(account_id))

        export_orders(42, origin=secevents.job_origin())  # in the request
        ```
    """

    __slots__ = ("_bindings", "job_id", "name", "origin", "system")

    def __init__(self, origin: object, *, system: str, name: object = None, job_id: object = None) -> None:
        self.origin = origin
        self.system = system
        self.name = name
        self.job_id = job_id
        self._bindings: list[JobBinding] = []

    def __enter__(self) -> job:
        self._bindings.append(open_job(self.origin, self.system, self.name, self.job_id))
        return self

    def __exit__(self, *exc: object) -> None:
        unbind_job(self._bindings.pop())

    def __call__(self, func: _F) -> _F:
        """Decorate `func` (sync or async): the job is bound, with the same origin, for each call."""
        name = self.name
        if name is None:
            name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', '?')}"
        origin, system, job_id = self.origin, self.system, self.job_id
        return bound_for_each_call(func, lambda: job(origin, system=system, name=name, job_id=job_id))


def open_job(origin: object, system: object, name: object, job_id: object) -> JobBinding:
    """Bind a job as `job(...)` does, for an integration whose hooks open and close it apart."""
    built: list[JobScope] = []
    _build_job(origin, system, name, job_id, built)  # in the guard: a bug of ours binds a bare job
    if not built:
        built.append(JobScope(origin={"v": ORIGIN_VERSION}, fields={"job": {"system": "other"}}))
    return bind_job(built[0])


def _build(origin: object, system: object, name: object, job_id: object, out: list[JobScope]) -> None:
    notes: list[str] = []
    scope = job_scope(_job_system(system, notes), name, job_id, _decoded(origin, notes))
    if notes:
        scope.notes = (*notes, *scope.notes)
    out.append(scope)


_build_job: Final = guarded(_build, "job")


# --- events inside a scope ---------------------------------------------------------------------------------


def enrich_from_scope(scope: Scope, cfg: _config.Config, record: dict[str, Any], errors: list[str]) -> None:
    """Fill what an event emitted outside a request leaves unsaid from the scope it runs in.

    The event's own user and IP win; then a user bound inside the scope (`set_user`); then the scope's
    actor (`actor(user=...)`) or the job origin's `usr.id` and client IP. The scope's `actor` / `job`
    blocks and its trace ids (when the event has none) are added; its notes join `secevents.errors`.
    """
    if scope.notes:
        errors.extend(scope.notes)
    if _user.get() is None:
        if "usr" not in record:
            if scope.user is not None:
                written = scope.written
                if written is None or written[0] is not cfg:
                    notes: list[str] = []
                    usr = _usr(cfg.privacy, False, _user_parts("usr", scope.user, notes), notes)
                    written = scope.written = (cfg, usr, tuple(notes))
                errors.extend(written[2])
                if written[1]:
                    record["usr"] = dict(written[1])
            elif scope.usr is not None:
                record["usr"] = dict(scope.usr)
        if scope.client_ip is not None and scope.user is None and "network" not in record:
            record["network"] = {"client": {"ip": scope.client_ip}}
    trace = scope.trace
    if trace is not None and "dd" not in record and "trace_id" not in record:
        kind, ids = trace
        if kind == "dd":
            record["dd"] = ids
        else:
            record.update(ids)
    for key, value in scope.fields.items():
        if key not in record:
            record[key] = value
