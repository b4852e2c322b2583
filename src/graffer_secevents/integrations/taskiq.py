"""taskiq: a task kicked in a request keeps the request's origin; its events say which task they come from.

```python
from taskiq_redis import ListQueueBroker

from graffer_secevents.integrations.taskiq import SecurityEventsMiddleware

broker = ListQueueBroker("redis://localhost:6379/0").with_middlewares(SecurityEventsMiddleware())
```

in the module both the web process (which kicks) and `taskiq worker` import.

* `pre_send` (the process that kicks): the origin (`secevents.job_origin()`) goes in the message's labels
  under `graffer_secevents_origin`, as JSON text (labels are strings on some brokers), unless a label of
  that name is there already: a task re-sent by taskiq's retry middleware keeps the origin of the first
  kick.
* `pre_execute` (the worker) binds the job (`taskiq`, the task name, the task id) and its validated origin
  in the task's own context; taskiq runs the task in that context (an async task in the same asyncio task,
  a sync one in its thread pool with a copy of it); `post_execute` unbinds it.
* `shutdown`, in a worker process only: drains the process's records and writes its end record once the
  broker has stopped, before taskiq's process manager ends the process.
"""

from __future__ import annotations

import contextvars
from typing import Any, Final

from graffer_secevents._errors import MissingDependencyError

try:
    from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult
except ImportError:
    raise MissingDependencyError("taskiq", "taskiq") from None

import orjson

from graffer_secevents._delivery import shutdown
from graffer_secevents._origin import ORIGIN_KEY, JobBinding, capture_origin, open_job, unbind_job

from ._common import never_raise

__all__ = ["ORIGIN_LABEL", "SecurityEventsMiddleware"]

ORIGIN_LABEL: Final = ORIGIN_KEY
"""The message label the origin travels in (JSON text)."""

_STR_LABEL: Final = 3  # taskiq.labels.LabelType.STR: the worker's `parse_labels` keeps it a string

# One asyncio task per message in the worker: what pre_execute bound, for post_execute of the same task.
_binding: contextvars.ContextVar[JobBinding | None] = contextvars.ContextVar(
    "graffer_secevents_taskiq_job", default=None
)


class SecurityEventsMiddleware(TaskiqMiddleware):
    """Carry the origin of every task kicked through the broker; bind it while a worker runs the task.

    Example:
        ```python
        broker = ListQueueBroker(url).with_middlewares(SecurityEventsMiddleware())
        ```
    """

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        with never_raise("the taskiq message origin"):
            if ORIGIN_LABEL not in message.labels:
                message.labels[ORIGIN_LABEL] = orjson.dumps(capture_origin()).decode()
                if message.labels_types is not None:
                    message.labels_types[ORIGIN_LABEL] = _STR_LABEL
        return message

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        with never_raise("binding the taskiq task's origin"):
            origin = message.labels.get(ORIGIN_LABEL)
            _binding.set(open_job(origin, "taskiq", message.task_name, message.task_id))
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        with never_raise("unbinding the taskiq task's origin"):
            binding = _binding.get()
            if binding is not None:
                _binding.set(None)
                unbind_job(binding)

    def shutdown(self) -> None:
        """In a worker process: drain the records its tasks emitted and write the end record now, once the
        broker has stopped (the process manager may end the process before its own exit drain runs).
        A client process (a web app calling `broker.shutdown()` in its lifespan) goes on writing."""
        with never_raise("draining the taskiq worker's records"):
            if getattr(self.broker, "is_worker_process", False):  # None until the broker adds it
                shutdown()
