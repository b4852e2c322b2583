"""What the actor and the job origin cost: per event, per enqueue, per job run.

Interleaved in one process (each round times every method back to back, so drift of this shared, noisy
machine hits all alike). Reported: median µs per call over rounds, and the median per-round ratio to (a).

    .venv/bin/python benchmarks/bench_origin.py [--rounds 30] [--batch 2000]

(a) an event with no actor or job bound: what every event outside a job pays is one context-variable read
    (the pipeline's `_scope` check), timed alone as (z);
(b) the same event inside `secevents.actor("cron", user=...)`;
(c) the same event inside a job with a full origin (`usr.id`, IP, request id, trace ids);
(d) `capture_origin()` in a request: what an enqueue pays (signed, with a hash key);
(e) validating and binding a job's signed origin, then unbinding it: what a job run pays once.
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import sys
import time
from collections.abc import Callable

import orjson

import graffer_secevents as secevents
from graffer_secevents._context import RequestContext, _scope, request_context
from graffer_secevents._origin import _signature, bind_job, capture_origin, job_scope, unbind_job


def _check_the_work(
    sink: io.StringIO, in_actor: Callable[[int], None], in_job: Callable[[int], None]
) -> None:
    """Before timing: the actor and job variants really write what they claim (a silent no-op fails)."""
    in_actor(1)
    in_job(1)
    actor_record, job_record = (orjson.loads(line) for line in sink.getvalue().splitlines())
    assert actor_record["usr"] == {"id": "svc-1"}
    assert actor_record["actor"] == {"name": "cron:bench"}
    assert job_record["usr"] == {"id": "42"}
    assert job_record["job"]["origin"]["request_id"] == "req-1"
    assert job_record["trace_id"] == "0" * 31 + "1"
    sink.seek(0)
    sink.truncate()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()

    sink = io.StringIO()
    secevents.configure(output=sink, delivery="sync", hash_key="bench-only-key-0123456789", metrics="none")
    request = RequestContext(client_ip="203.0.113.7", request_id="req-1", user=secevents.User(id=42))
    with request_context(request):
        origin = capture_origin()
    origin.update(trace_kind="otel", trace_id="0" * 31 + "1", span_id="0" * 15 + "1")
    del origin["sig"]
    signed = {**origin, "sig": _signature(secevents.get_config(), origin)}  # as a traced request signs it

    def event() -> None:
        secevents.log_data_export(None, "orders", record_count=3)

    def plain(n: int) -> None:
        for _ in range(n):
            event()

    def in_actor(n: int) -> None:
        with secevents.actor("cron:bench", user=secevents.User(id="svc-1")):
            for _ in range(n):
                event()

    def in_job(n: int) -> None:
        binding = bind_job(job_scope("celery", "bench.task", "t-1", signed))
        try:
            for _ in range(n):
                event()
        finally:
            unbind_job(binding)

    def scope_read(n: int) -> None:
        get = _scope.get
        for _ in range(n):
            if get() is not None:
                raise AssertionError

    def enqueue(n: int) -> None:
        with request_context(request):
            for _ in range(n):
                capture_origin()

    def job_run(n: int) -> None:
        for _ in range(n):
            unbind_job(bind_job(job_scope("celery", "bench.task", "t-1", signed)))

    _check_the_work(sink, in_actor, in_job)
    methods: dict[str, Callable[[int], None]] = {
        "(a) event, nothing bound": plain,
        "(b) event inside actor()": in_actor,
        "(c) event inside a job": in_job,
        "(z) the scope check alone": scope_read,
        "(d) capture_origin() per enqueue": enqueue,
        "(e) validate + bind + unbind per job": job_run,
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.rounds):
        for name, method in methods.items():
            start = time.perf_counter()
            method(args.batch)
            times[name].append((time.perf_counter() - start) / args.batch * 1e6)
            sink.seek(0)
            sink.truncate()
    base = times["(a) event, nothing bound"]
    print(f"python {platform.python_version()} on {platform.machine()}, {args.rounds} rounds x {args.batch}")
    print("(the machine is shared: read the ratios)")
    for name, samples in times.items():
        ratio = statistics.median(s / b for s, b in zip(samples, base, strict=True))
        print(f"{name:40s} {statistics.median(samples):8.3f} µs   {ratio:6.3f}x (a)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
