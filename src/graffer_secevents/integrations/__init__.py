"""Framework integrations. Each one imports its framework only when it is imported itself.

* `graffer_secevents.integrations.django`: `SecurityEventsMiddleware` and an app for
  `INSTALLED_APPS` that connects Django's auth signals.
* `graffer_secevents.integrations.fastapi` over `graffer_secevents.integrations.asgi`: a pure ASGI
  `SecurityEventsMiddleware`.
* `graffer_secevents.integrations.flask`: the `SecurityEvents` extension and Flask-Login's signals.
* `graffer_secevents.integrations.wsgi`: a `SecurityEventsMiddleware` for any other WSGI app.
* `graffer_secevents.integrations.structlog`: `add_security_context`, a processor that puts the request's
  security context on the application's own structlog lines.

All of them share one request context (`integrations/_common.py`): the client IP resolved behind the
configured trusted proxies, the request id, user agent, method, path, route, status and user.
"""

from __future__ import annotations

from ._common import DEFAULT_STATUS_EVENTS, OPTIONAL_STATUS_EVENTS

__all__ = ["DEFAULT_STATUS_EVENTS", "OPTIONAL_STATUS_EVENTS"]
