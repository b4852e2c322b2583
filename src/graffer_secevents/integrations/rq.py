"""RQ: a job enqueued in a request keeps the request's origin, and its events say which job they come from.

```python
from graffer_secevents.integrations import rq as secevents_rq

secevents_rq.install()  # in the web process (or wherever jobs are enqueued)
```

and start workers with the worker class, which installs the same hooks in the worker:

```console
rq worker -w graffer_secevents.integrations.rq.SecurityEventsWorker
```

* Enqueue side: `Queue.create_job` (every path: `enqueue`, `enqueue_call`, `enqueue_at`/`enqueue_in`,
  `enqueue_many`, dependents) puts the origin (`_origin.capture_origin`) in `job.meta` under
  `graffer_secevents_origin`, unless the caller put one there.
* Worker side: `perform_job` (in the work horse, or in-process for `SimpleWorker`) binds the job (`rq`,
  the function's name, the job id) and its validated origin for the run, and unbinds it after.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from graffer_secevents._errors import MissingDependencyError

try:
    import rq
except ImportError:
    raise MissingDependencyError("rq", "rq") from None

from graffer_secevents._origin import (
    ORIGIN_KEY,
    JobBinding,
    as_dict,
    bind_job,
    capture_origin,
    job_scope,
    unbind_job,
)

from ._common import never_raise

__all__ = ["ORIGIN_META_KEY", "SecurityEventsWorker", "install"]

ORIGIN_META_KEY = ORIGIN_KEY
"""The `job.meta` key the origin travels under."""

_META_POSITION = 10  # `meta` in Queue.create_job(func, args, kwargs, timeout, ..., job_id, meta, ...)
_PATCHED = "_graffer_secevents"


def install() -> None:
    """Carry the origin of every job this process enqueues, and bind it in every job this process performs.

    Idempotent. Workers started from the command line need it before they take a job: use
    `rq worker -w graffer_secevents.integrations.rq.SecurityEventsWorker` (or call `install()` in the
    module that builds your own worker class).

    Example:
        ```python
        secevents_rq.install()
        Queue("exports", connection=redis).enqueue(export_orders, account_id)
        ```
    """
    queue_cls: Any = rq.Queue
    worker_cls: Any = rq.worker.BaseWorker
    if not getattr(queue_cls.create_job, _PATCHED, False):
        queue_cls.create_job = _wrap_create_job(queue_cls.create_job)
    if not getattr(worker_cls.perform_job, _PATCHED, False):
        worker_cls.perform_job = _wrap_perform_job(worker_cls.perform_job)


def _wrap_create_job(create_job: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(create_job)
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        with never_raise("the RQ job origin"):
            if len(args) > _META_POSITION:
                args = (
                    *args[:_META_POSITION],
                    _with_origin(args[_META_POSITION]),
                    *args[_META_POSITION + 1 :],
                )
            else:
                kwargs["meta"] = _with_origin(kwargs.get("meta"))
        return create_job(self, *args, **kwargs)

    setattr(wrapped, _PATCHED, True)
    return wrapped


def _with_origin(meta: object) -> object:
    if meta is None:
        return {ORIGIN_KEY: capture_origin()}
    given = as_dict(meta)
    if given is not None and ORIGIN_KEY not in given:
        return {**given, ORIGIN_KEY: capture_origin()}
    return meta


def _bind(job: Any) -> JobBinding | None:
    with never_raise("binding the RQ job's origin"):
        meta = as_dict(getattr(job, "meta", None))
        origin = meta.get(ORIGIN_KEY) if meta is not None else None
        return bind_job(job_scope("rq", getattr(job, "func_name", None), job.id, origin))
    return None


def _wrap_perform_job(perform_job: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(perform_job)
    def wrapped(self: Any, job: Any, *args: Any, **kwargs: Any) -> Any:
        binding = _bind(job)
        try:
            return perform_job(self, job, *args, **kwargs)
        finally:
            if binding is not None:
                unbind_job(binding)

    setattr(wrapped, _PATCHED, True)
    return wrapped


class SecurityEventsWorker(rq.Worker):
    """RQ's default (forking) `Worker`, with `install()` done before it takes a job.

    `rq worker -w graffer_secevents.integrations.rq.SecurityEventsWorker`. Any other worker class
    (`SimpleWorker`, your own) gets the same by calling `install()` before it starts.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        install()
        super().__init__(*args, **kwargs)  # pyright: ignore[reportUnknownMemberType] - rq's own signature
