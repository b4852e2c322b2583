"""Dramatiq: a message sent in a request keeps the request's origin, and its events say which actor ran.

```python
from graffer_secevents.integrations.dramatiq import SecurityEventsMiddleware

broker = RedisBroker(url=...)
broker.add_middleware(SecurityEventsMiddleware())  # in the module both the web process and workers import
dramatiq.set_broker(broker)
```

* `before_enqueue`: the origin (`_origin.capture_origin`) goes in the message's options under
  `graffer_secevents_origin`, unless it is there already: a retry keeps the origin of the first send.
* `before_process_message` binds the job (`dramatiq`, the actor's name, the message id) and its validated
  origin in the worker thread; `after_process_message` / `after_skip_message` unbind it.
* `after_worker_shutdown` drains the process's records and writes its end record before the `dramatiq`
  command closes the worker process's output.
"""

from __future__ import annotations

from typing import Any

from graffer_secevents._delivery import shutdown
from graffer_secevents._errors import MissingDependencyError

try:
    from dramatiq import Middleware
except ImportError:
    raise MissingDependencyError("dramatiq", "dramatiq") from None

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

__all__ = ["ORIGIN_OPTION", "SecurityEventsMiddleware"]

ORIGIN_OPTION = ORIGIN_KEY
"""The message option the origin travels in."""


class SecurityEventsMiddleware(Middleware):
    """Carry the origin of every message sent through the broker; bind it while a worker processes it.

    Example:
        ```python
        broker.add_middleware(SecurityEventsMiddleware())
        ```
    """

    def __init__(self) -> None:
        self._bindings: dict[str, JobBinding] = {}

    def before_enqueue(self, broker: Any, message: Any, delay: int) -> None:
        with never_raise("the Dramatiq message origin"):
            options = as_dict(message.options)
            if options is not None and ORIGIN_KEY not in options:
                options[ORIGIN_KEY] = capture_origin()

    def before_process_message(self, broker: Any, message: Any) -> None:
        with never_raise("binding the Dramatiq message's origin"):
            options = as_dict(message.options)
            origin = options.get(ORIGIN_KEY) if options is not None else None
            scope = job_scope("dramatiq", message.actor_name, message.message_id, origin)
            self._bindings[message.message_id] = bind_job(scope)

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        self._unbind(message)

    def after_skip_message(self, broker: Any, message: Any) -> None:
        self._unbind(message)

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        """Drain the records the worker's actors emitted and write the end record now: the `dramatiq`
        command closes the worker process's output (a pipe to the parent, which `sys.stdout` and
        `sys.stderr` are then) right after this, before the process's own exit drain could run."""
        with never_raise("draining the Dramatiq worker's records"):
            shutdown()

    def _unbind(self, message: Any) -> None:
        with never_raise("unbinding the Dramatiq message's origin"):
            binding = self._bindings.pop(message.message_id, None)
            if binding is not None:
                unbind_job(binding)
