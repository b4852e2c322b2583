"""Celery: a task enqueued in a request keeps the request's origin; its events say which task they come from.

```python
from graffer_secevents.integrations import celery as secevents_celery

app = Celery("shop")
secevents_celery.install(app)  # in the module both the web process and the worker import
```

* `before_task_publish`: the origin (`_origin.capture_origin`: request id, `usr.id` and client IP as
  written, session pseudonym, trace ids, actor, enqueue time) goes in the message headers under
  `graffer_secevents_origin`. Under task protocol 2 Celery hands message headers to the worker as
  `task.request.<name>`; under protocol 1 (and from producers that nest custom headers) they arrive in
  `task.request.headers`: the worker reads both.
* `task_prerun` binds the job (`celery`, the task's name and id) and its validated origin for the run;
  `task_postrun` unbinds it, so nothing leaks into the next task a worker process runs.

Celery's signals are process-wide; `install` connects them once (later calls do nothing).
"""

from __future__ import annotations

from typing import Any

from graffer_secevents._errors import MissingDependencyError

try:
    from celery import signals
except ImportError:
    raise MissingDependencyError("celery", "celery") from None

from graffer_secevents._origin import ORIGIN_KEY, as_dict, bind_job, capture_origin, job_scope, unbind_job

from ._common import never_raise

__all__ = ["ORIGIN_HEADER", "install"]

ORIGIN_HEADER = ORIGIN_KEY
"""The message header the origin travels in."""

_BINDING = "_graffer_secevents_job"
_installed: list[bool] = []


def install(app: Any = None) -> None:
    """Carry the origin of every task published by this process, and bind it in the worker that runs it.

    Args:
        app: the Celery application (Celery's signals are process-wide: accepted for symmetry with the
            other integrations, and so the call sits next to the app it serves).

    Example:
        ```python
        app = Celery("shop", broker="redis://localhost:6379/0")
        secevents_celery.install(app)
        ```
    """
    del app
    if _installed:
        return
    celery_signals: Any = signals  # untyped
    celery_signals.before_task_publish.connect(_publish, weak=False, dispatch_uid="graffer_secevents.publish")
    celery_signals.task_prerun.connect(_prerun, weak=False, dispatch_uid="graffer_secevents.prerun")
    celery_signals.task_postrun.connect(_postrun, weak=False, dispatch_uid="graffer_secevents.postrun")
    _installed.append(True)


def _publish(sender: Any = None, headers: Any = None, **_: Any) -> None:
    with never_raise("the Celery task origin"):
        message_headers = as_dict(headers)
        if message_headers is not None and ORIGIN_KEY not in message_headers:
            message_headers[ORIGIN_KEY] = capture_origin()


def _origin_of(request: Any) -> object:
    origin: object = getattr(request, ORIGIN_KEY, None)  # protocol 2: message headers are request attributes
    if origin is None:
        nested = as_dict(getattr(request, "headers", None))  # protocol 1, and nested custom headers
        if nested is not None:
            origin = nested.get(ORIGIN_KEY)
    return origin


def _prerun(sender: Any = None, task_id: Any = None, task: Any = None, **_: Any) -> None:
    with never_raise("binding the Celery task's origin"):
        request = task.request
        scope = job_scope("celery", getattr(task, "name", None), task_id, _origin_of(request))
        setattr(request, _BINDING, bind_job(scope))


def _postrun(sender: Any = None, task: Any = None, **_: Any) -> None:
    with never_raise("unbinding the Celery task's origin"):
        binding = getattr(task.request, _BINDING, None)
        if binding is not None:
            delattr(task.request, _BINDING)
            unbind_job(binding)
