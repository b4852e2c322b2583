"""Trace ids for log correlation, read from whatever tracer the application already runs.

ddtrace is used only if the application has imported it (``"ddtrace" in sys.modules``); this module never
imports it, which would cost ~0.3 s at start-up and start its background machinery. OpenTelemetry is read
through its API only when the application has imported ``opentelemetry.trace``: no import means no span.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["trace_fields"]


def trace_fields() -> tuple[str, dict[str, str]] | None:
    """Return ``("dd", {...})`` or ``("otel", {...})`` for the active span, or ``None`` without one.

    ``dd`` ids are exactly ``tracer.get_log_correlation_context()``'s strings; OpenTelemetry ids are 32 and 16
    lowercase hex characters.
    """
    modules = sys.modules
    ddtrace_trace = modules.get("ddtrace.trace")
    if ddtrace_trace is not None:
        found = _ddtrace_ids(ddtrace_trace)
        if found is not None:
            return "dd", found
    otel = modules.get("opentelemetry.trace")
    if otel is not None:
        return _otel_ids(otel)
    return None


def _ddtrace_ids(ddtrace_trace: Any) -> dict[str, str] | None:
    tracer = getattr(ddtrace_trace, "tracer", None)
    if tracer is None:
        return None
    ctx = tracer.get_log_correlation_context()
    if ctx["dd.trace_id"] == "0":  # no active span or context
        return None
    return {"trace_id": ctx["dd.trace_id"], "span_id": ctx["dd.span_id"]}


def _otel_ids(otel: Any) -> tuple[str, dict[str, str]] | None:
    span_context = otel.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return "otel", {"trace_id": f"{span_context.trace_id:032x}", "span_id": f"{span_context.span_id:016x}"}
