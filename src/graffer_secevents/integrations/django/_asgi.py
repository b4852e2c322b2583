"""Django's ASGI handler answers the ASGI lifespan protocol, so the queue is drained when the server stops.

uvicorn (`--workers N`) and hypercorn import the application after installing their own SIGTERM handler,
and uvicorn re-raises SIGTERM after its graceful stop: the process dies of the signal, `atexit` never runs,
and the library's own SIGTERM handler was never installed (it only replaces the default action). Lifespan
shutdown is the last moment such a server gives the application — but Django's `ASGIHandler` refuses every
scope that is not HTTP, so nothing was drained: what was still queued was lost uncounted and no writer
wrote its end record (`secevents verify` reported an unclean end).

`ASGIHandler.__call__` is wrapped once, by the app (`apps.py`), for every Django ASGI deployment
(`get_asgi_application()`, any subclass): a `lifespan` scope goes through `run_lifespan` (the one drain the
pure-ASGI middleware uses), which answers startup and, at shutdown, drains, writes the end records and
flushes the metrics before telling the server the shutdown is complete. Every other scope reaches Django
unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from graffer_secevents.integrations._lifespan import run_lifespan

from ._wrap import wrap_method

__all__ = ["install"]


def install() -> None:
    """Wrap `django.core.handlers.asgi.ASGIHandler.__call__`. Idempotent; called by the app."""
    from django.core.handlers.asgi import ASGIHandler

    wrap_method(ASGIHandler, "__call__", _lifespan_aware)


def _lifespan_aware(original: Callable[..., Any]) -> Callable[..., Any]:
    async def __call__(self: Any, scope: Any, receive: Any, send: Any) -> Any:  # noqa: N807 - the class's __call__
        if isinstance(scope, dict) and scope.get("type") == "lifespan":
            await run_lifespan(functools.partial(original, self), scope, receive, send)
            return None
        return await original(self, scope, receive, send)

    return __call__
