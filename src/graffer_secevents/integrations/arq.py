"""arq: a job enqueued in a request keeps the request's origin, and its events say which job they come from.

```python
from graffer_secevents.integrations import arq as secevents_arq

secevents_arq.install()  # in the web process (or wherever jobs are enqueued)


class WorkerSettings:
    functions = [export_orders]
    on_job_start = secevents_arq.on_job_start
    on_job_end = secevents_arq.on_job_end
```

arq has no metadata channel (its job context holds no arguments, and an extra keyword argument would
break every function that does not expect it), so the origin travels beside the job: `install()` wraps
`ArqRedis.enqueue_job` to store `{"function", "origin"}` under `graffer_secevents:arq:origin:<job id>` (with
a day's expiry, plus any deferral) *before* the job is queued; a job id is made for the call when the
caller gave none, as arq itself would. In the worker, `on_job_start` reads it, binds the job (`arq`, the
function, the job id) and its validated origin; arq runs the job in a task created after the hook, which
copies the binding. `on_job_end` unbinds it. An application with hooks of its own awaits ours from them.
"""

from __future__ import annotations

import datetime
import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson

from graffer_secevents._errors import MissingDependencyError

try:
    from arq.connections import ArqRedis
except ImportError:
    raise MissingDependencyError("arq", "arq") from None

from graffer_secevents._origin import (
    MAX_ORIGIN_BYTES,
    as_dict,
    bind_job,
    capture_origin,
    job_scope,
    unbind_job,
)

from ._common import never_raise

__all__ = ["ORIGIN_KEY_PREFIX", "install", "on_job_end", "on_job_start"]

ORIGIN_KEY_PREFIX: Final = "graffer_secevents:arq:origin:"
"""The Redis key of a job's origin is this prefix and the job id."""

_TTL_S: Final = 86_400
_BINDING: Final = "_graffer_secevents_job"
_PATCHED: Final = "_graffer_secevents"


def install() -> None:
    """Store the origin of every job this process enqueues through `ArqRedis.enqueue_job`. Idempotent.

    Example:
        ```python
        secevents_arq.install()
        redis = await create_pool(RedisSettings())
        await redis.enqueue_job("export_orders", account_id)
        ```
    """
    if not getattr(ArqRedis.enqueue_job, _PATCHED, False):
        ArqRedis.enqueue_job = _wrap_enqueue_job(ArqRedis.enqueue_job)  # type: ignore[method-assign,assignment]


def _ttl(defer_by: object, defer_until: object) -> int:
    extra = 0.0
    if isinstance(defer_by, datetime.timedelta):
        extra = defer_by.total_seconds()
    elif isinstance(defer_by, int | float):
        extra = float(defer_by)
    elif isinstance(defer_until, datetime.datetime):
        now = datetime.datetime.now(defer_until.tzinfo)
        extra = (defer_until - now).total_seconds()
    return _TTL_S + max(0, int(extra))


def _wrap_enqueue_job(enqueue_job: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(enqueue_job)
    async def wrapped(self: Any, function: str, *args: Any, _job_id: str | None = None, **kwargs: Any) -> Any:
        job_id = _job_id or uuid.uuid4().hex
        with never_raise("the arq job origin"):
            payload = orjson.dumps({"function": function, "origin": capture_origin()})
            ttl = _ttl(kwargs.get("_defer_by"), kwargs.get("_defer_until"))
            # A caller's own job id may name a job already queued: its origin is not replaced.
            await self.set(ORIGIN_KEY_PREFIX + job_id, payload, ex=ttl, nx=_job_id is not None)
        return await enqueue_job(self, function, *args, _job_id=job_id, **kwargs)

    setattr(wrapped, _PATCHED, True)
    return wrapped


async def on_job_start(ctx: dict[str, Any]) -> None:
    """arq's `on_job_start` hook: bind the job and its origin for the job's run."""
    with never_raise("binding the arq job's origin"):
        job_id = ctx.get("job_id")
        stored: Any = None
        if isinstance(job_id, str):
            stored = await ctx["redis"].get(ORIGIN_KEY_PREFIX + job_id)
            if isinstance(stored, str):  # a pool made with decode_responses=True
                stored = stored.encode()
        function: object = None
        origin: object = None
        if isinstance(stored, bytes) and len(stored) <= 2 * MAX_ORIGIN_BYTES:
            try:
                saved = as_dict(orjson.loads(stored))
            except orjson.JSONDecodeError:
                saved = None
            if saved is not None:
                function, origin = saved.get("function"), saved.get("origin")
            else:
                origin = ["unreadable"]  # noted as malformed by read_origin
        elif stored is not None:
            origin = ["unreadable"]
        ctx[_BINDING] = bind_job(job_scope("arq", function, job_id, origin))


async def on_job_end(ctx: dict[str, Any]) -> None:
    """arq's `on_job_end` hook: unbind what `on_job_start` bound."""
    with never_raise("unbinding the arq job's origin"):
        binding = ctx.pop(_BINDING, None)
        if binding is not None:
            unbind_job(binding)
