"""Trace ids for log correlation, read from whatever tracer the application already runs.

ddtrace is used only if the application has imported it (`"ddtrace.trace" in sys.modules`); this module
never imports it, which would cost ~0.3 s at start-up and start its background machinery. OpenTelemetry is
read through its API only when the application has imported `opentelemetry.trace`: no import, no span.

ddtrace wins when both are present: its ids are the ones its own log injection writes in the same process,
and when ddtrace backs the OpenTelemetry API (`DD_TRACE_OTEL_ENABLED`) the OpenTelemetry span *is* a
ddtrace span. A ddtrace `Context` without a local span (distributed headers extracted, no span started yet)
still yields ids, exactly as `tracer.get_log_correlation_context()` reports them: the caller's trace id and
its parent span id, so the record lines up with the application's other logs of that request.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["trace_fields"]


def trace_fields() -> tuple[str, dict[str, str]] | None:
    """Return `("dd", {...})` or `("otel", {...})` for the active span, or `None` without one.

    `dd` ids are exactly `tracer.get_log_correlation_context()`'s strings (a 128-bit trace id as 32 hex
    characters, a 64-bit one and the span id in decimal); OpenTelemetry ids are 32 and 16 lowercase hex
    characters.
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
    if tracer is None or tracer.context_provider.active() is None:
        return None  # the common case, ~20x cheaper than building the correlation dict for nothing
    ctx = tracer.get_log_correlation_context()
    if ctx["dd.trace_id"] == "0":  # a disabled tracer reports no ids even with an active span
        return None
    return {"trace_id": ctx["dd.trace_id"], "span_id": ctx["dd.span_id"]}


def _otel_ids(otel: Any) -> tuple[str, dict[str, str]] | None:
    span_context = otel.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return "otel", {"trace_id": f"{span_context.trace_id:032x}", "span_id": f"{span_context.span_id:016x}"}
