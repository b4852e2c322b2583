"""Django: `SecurityEventsMiddleware` and an app that turns Django's auth signals into events.

Settings::

    INSTALLED_APPS = [..., "graffer_secevents.integrations.django"]
    MIDDLEWARE = ["graffer_secevents.integrations.django.SecurityEventsMiddleware", ...]

    SECEVENTS = {                                   # optional: configure() options, and the middleware's
        "service": "shop",                          # per-status events
        "trusted_proxies": ["10.0.0.0/8"],
        "status_events": {401: "authz_fail", 429: "excess_rate_limit_exceeded"},
    }

See `docs/integrations/django.md`.
"""

from __future__ import annotations

from .middleware import DEFAULT_STATUS_EVENTS, OPTIONAL_STATUS_EVENTS, SecurityEventsMiddleware

__all__ = ["DEFAULT_STATUS_EVENTS", "OPTIONAL_STATUS_EVENTS", "SecurityEventsMiddleware"]
