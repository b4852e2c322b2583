"""structlog: a processor that puts the security context on the application's own structlog logs.

Add `add_security_context` to the application's processor chain, before the renderer, and every log line
written inside a request carries the same request id, client IP, user and trace ids as the security events
of that request, under the same attribute names, so one Datadog query joins them:

Example:
    ```python
    import structlog
    from graffer_secevents.integrations.structlog import add_security_context

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_security_context,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ]
    )
    ```

Nothing here imports structlog: a processor is a plain callable, so this module costs nothing to import and
needs no extra. See `docs/integrations/structlog.md`.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Final

from graffer_secevents._config import get_config_for_event
from graffer_secevents._context import current_request
from graffer_secevents._trace import trace_fields
from graffer_secevents._users import _user_parts, _usr

__all__ = ["SECURITY_CONTEXT_KEYS", "add_security_context"]

REQUEST_ID: Final = "http.request_id"
CLIENT_IP: Final = "network.client.ip"
USER_ID: Final = "usr.id"
SECURITY_CONTEXT_KEYS: Final = (
    REQUEST_ID,
    CLIENT_IP,
    USER_ID,
    "dd.trace_id",
    "dd.span_id",
    "trace_id",
    "span_id",
)
"""Every key `add_security_context` may add: the dotted paths of our records (`docs/record.md`), flat, as
ddtrace's own structlog injection writes `dd.trace_id`. OpenTelemetry ids are `trace_id`/`span_id`."""


def add_security_context(
    logger: object, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Add the current request's security context to a structlog event dict.

    Inside a request bound by one of our integrations it adds `http.request_id`, `network.client.ip` and
    `usr.id`, processed by the configured privacy settings exactly as in our records (hashed, kept or
    dropped), and the active span's ids (`dd.trace_id`/`dd.span_id` under ddtrace, `trace_id`/
    `span_id` under OpenTelemetry). A key the application already set is left as it is. Outside a request
    it adds nothing.

    Args:
        logger: the wrapped logger (unused; part of structlog's processor signature).
        method_name: the log method's name (unused).
        event_dict: the event being logged; changed in place.

    Returns:
        The same `event_dict`.

    Raises:
        Nothing: a failure while reading the context leaves the keys it could not read out, so a log line
            is never lost to this processor (`BaseException` still propagates).
    """
    try:
        request = current_request()
        if request is None:
            return event_dict
        _add_request_fields(request, event_dict)
        trace = trace_fields()
        if trace is not None:
            prefix = "dd." if trace[0] == "dd" else ""
            for name, value in trace[1].items():
                event_dict.setdefault(prefix + name, value)
    except Exception:  # noqa: BLE001, S110 - the application's log line matters more than our fields
        pass
    return event_dict


def _add_request_fields(request: Any, event_dict: MutableMapping[str, Any]) -> None:
    request_id = request.request_id
    if type(request_id) is str and request_id and REQUEST_ID not in event_dict:
        event_dict[REQUEST_ID] = request_id
    privacy = get_config_for_event().privacy
    if CLIENT_IP not in event_dict:
        client_ip = request.client_ip
        if type(client_ip) is str and (shown := privacy.apply_ip(client_ip)) is not None:
            event_dict[CLIENT_IP] = shown
    if request.user is not None and USER_ID not in event_dict:
        # The same parsing and privacy as a record's usr.id; coercion notes have nowhere to go here.
        usr = _usr(privacy, False, _user_parts("usr", request.user, []), [])
        if "id" in usr:
            event_dict[USER_ID] = usr["id"]
