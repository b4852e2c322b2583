"""Per-event cost of the trace bridges: the same emit with a bridge on and off, the tracer's span active.

    .venv/bin/python benchmarks/bench_bridges.py [--rounds 30] [--batch 1000]

Interleaved in one process: each round times a batch of every variant back to back (so drift on a shared,
noisy machine hits all alike) and reports the median µs per event over rounds, and the median over rounds of
each "on" variant's ratio to its "off" twin in the same round. Records go to ``os.devnull``; metrics are off.

Variants (each bridge on, then ``appsec_tracking=False`` / ``otel_span_events=False``):

- ``dd login``: ``log_login(success)`` inside a ddtrace span: ``track_login_success`` on the root span.
- ``dd login_fail``: ``log_login(failure, exists=False)``: ``track_login_failure``.
- ``dd authz_fail``: an event no AAP rule counts, no request user: the bridge only looks and returns.
- ``dd no span``: ddtrace imported, no span active: the cheapest path.
- ``otel login``: ``log_login(success)`` inside an OpenTelemetry SDK span: one ``add_event``.

The ddtrace tracer is real; finished traces are dropped by a trace filter before its writer, and the agent URL
points at a closed loopback port.
"""

from __future__ import annotations

import os

os.environ.setdefault("DD_TRACE_AGENT_URL", "http://127.0.0.1:9")
os.environ.setdefault("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false")
os.environ.setdefault("DD_REMOTE_CONFIGURATION_ENABLED", "false")
os.environ.setdefault("DD_TRACE_STARTUP_LOGS", "false")

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import ddtrace
from ddtrace.trace import TraceFilter, tracer
from opentelemetry.sdk.trace import TracerProvider

import graffer_secevents as secevents
from graffer_secevents import User


class DropAll(TraceFilter):
    def process_trace(self, trace: list[Any]) -> None:
        return None


tracer.configure(trace_processors=[DropAll()])
OTEL_TRACER = TracerProvider().get_tracer("bench")  # no exporter: add_event cost only
USER = User(id="42", login="ada@example.com")
SINK = open(os.devnull, "wb")  # noqa: SIM115 - open for the whole run


def login() -> None:
    secevents.log_login(USER, "success")


def login_fail() -> None:
    secevents.log_login(None, "failure", login="mallory", exists=False, reason="unknown_user")


def authz_fail() -> None:
    secevents.log_access_denied(USER, "/admin")


Span = Callable[[], AbstractContextManager[Any]]
VARIANTS: list[tuple[str, Callable[[], None], Span, str]] = [
    ("dd login", login, lambda: tracer.trace("web.request", service="bench"), "appsec_tracking"),
    ("dd login_fail", login_fail, lambda: tracer.trace("web.request", service="bench"), "appsec_tracking"),
    ("dd authz_fail", authz_fail, lambda: tracer.trace("web.request", service="bench"), "appsec_tracking"),
    ("dd no span", login, nullcontext, "appsec_tracking"),
    ("otel login", login, lambda: OTEL_TRACER.start_as_current_span("request"), "otel_span_events"),
]


def batch(emit: Callable[[], None], span: Span, switch: str, on: bool, n: int) -> float:
    """Seconds per event for ``n`` events; one span per 50 events, as requests with a few events would."""
    secevents.configure(output=SINK, metrics="none", **{switch: on})
    per_span = 50
    started = time.perf_counter()
    for _ in range(n // per_span):
        with span():
            for _ in range(per_span):
                emit()
    return (time.perf_counter() - started) / (n // per_span * per_span)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    os.environ.setdefault("SECEVENTS_HASH_KEY", "bench-key-of-16-bytes")

    for _name, emit, span, switch in VARIANTS:  # warm up every path (imports, caches)
        batch(emit, span, switch, True, 200)
        batch(emit, span, switch, False, 200)

    times: dict[str, list[float]] = {f"{n} {s}": [] for n, *_ in VARIANTS for s in ("on", "off")}
    ratios: dict[str, list[float]] = {n: [] for n, *_ in VARIANTS}
    deadline = time.monotonic() + 600  # bounded whatever the machine
    for _ in range(args.rounds):
        if time.monotonic() > deadline:
            break
        for name, emit, span, switch in VARIANTS:
            on = batch(emit, span, switch, True, args.batch)
            off = batch(emit, span, switch, False, args.batch)
            times[f"{name} on"].append(on)
            times[f"{name} off"].append(off)
            ratios[name].append(on / off)

    print(f"python {platform.python_version()}, ddtrace {ddtrace.__version__}, {platform.machine()}")
    print(f"{len(ratios[VARIANTS[0][0]])} rounds x {args.batch} events; median µs per event")
    print(f"{'variant':<16}{'bridge on':>12}{'bridge off':>12}{'added µs':>10}{'ratio':>8}")
    for name, *_ in VARIANTS:
        on = statistics.median(times[f"{name} on"]) * 1e6
        off = statistics.median(times[f"{name} off"]) * 1e6
        ratio = statistics.median(ratios[name])
        print(f"{name:<16}{on:>12.2f}{off:>12.2f}{on - off:>10.2f}{ratio:>8.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
