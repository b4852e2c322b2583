"""The caller's cost of ``log_login`` with the delivery queue, and the whole process's CPU per event.

Interleaved in one process, like bench_core.py: each round runs a batch of every method back to back and
the ratios are medians over rounds of *method / (a) in the same round*. Every method writes the same record
to the same kind of stream (its own file on the same disk, each write flushed), from scratch each round.

- (a) structlog + orjson by hand, written synchronously (the login hashed with ``hmac``): bench_core's (a).
- ``log_login``, ``delivery="sync"``: the caller renders and writes.
- ``log_login``, ``delivery="queue"``: the caller renders and enqueues; the writer thread writes in batches.
- (f) the floor of the queued path: the same record built in straight-line code for this one event, with
  only the checks the library cannot skip (the IP through ``inet_pton``, the request's strings against the
  length limit, the login through the library's pre-keyed HMAC), rendered with orjson and handed to the
  same queue and writer. No general pipeline can cost its caller less than this.

Per event: *caller wall* is the wall time of the batch of calls (for the queue: without waiting for the
writer, which runs meanwhile and competes for the GIL); *caller CPU* is ``time.thread_time()`` of the calling
thread over the same calls (what the request thread spends; unlike wall time, not inflated by other processes
on a loaded machine); *process CPU* is ``time.process_time()`` (all threads, the writer's included) from the
start of the batch until ``secevents.flush()`` returns. The goals are judged on the CPU ratios.

    .venv/bin/python benchmarks/bench_delivery.py [--rounds 30] [--batch 2000]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from socket import AF_INET, inet_pton

import orjson
import structlog
from bench_core import USER, make_ours, make_structlog_by_hand

import graffer_secevents as secevents
from graffer_secevents import _delivery
from graffer_secevents._config import Config, set_config
from graffer_secevents._context import RequestContext
from graffer_secevents._pipeline import _timestamp

LABELS = {
    "a": "(a) structlog + orjson by hand, synchronous write",
    "sync": '`log_login`, `delivery="sync"`',
    "queue": '**`log_login`, `delivery="queue"`**',
    "floor": "(f) floor: the same record built by hand for this event, queued",
}


def make_floor(cfg: Config) -> Callable[[], None]:
    """(f): the record of bench_core's (a), built in straight-line code and queued like ``log_login``'s."""
    privacy, static, deliver = cfg.privacy, cfg.static, _delivery.deliver
    request = RequestContext(method="POST", path="/login", route="/login", request_id="req-1")
    limit = 1024

    def call() -> None:
        user, ip, reason = USER, "203.0.113.7", "invalid_credentials"
        evt = {"type": "authn_login_fail", "name": "authentication", "category": "authentication"}
        evt["outcome"] = "failure"
        if type(reason) is str and len(reason) <= limit:
            evt["reason"] = reason
        record = {
            "timestamp": _timestamp(),
            "status": "warning",
            "message": "authn_login_fail: login failed",
            **static,
            "logger": {"name": "graffer_secevents"},
            "evt": evt,
            "usr": {"id": str(user.id), "login": privacy.hash(user.login or ""), "exists": True},
        }
        try:
            inet_pton(AF_INET, ip)
            record["network"] = {"client": {"ip": ip}}
        except OSError:
            pass
        http: dict[str, object] = {}
        if type(method := request.method) is str and len(method) <= limit:
            http["method"] = method
        if type(path := request.path) is str and len(path) <= limit:
            http["url_details"] = {"path": path}
        if type(route := request.route) is str and len(route) <= limit:
            http["route"] = route
        if type(agent := request.user_agent) is str and len(agent) <= limit:
            http["useragent"] = agent
        if type(request_id := request.request_id) is str and len(request_id) <= limit:
            http["request_id"] = request_id
        record["http"] = http
        record["secevents"] = {"schema": 1}
        deliver(cfg, "warning", orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="secevents-bench-")
    paths = {name: os.path.join(folder, f"{name}.log") for name in LABELS}
    methods: dict[str, Callable[[], None]] = {"a": make_structlog_by_hand(paths["a"])}
    configs: dict[str, Config] = {}
    for name in ("sync", "queue"):
        methods[name] = make_ours(paths[name], "none", delivery=name)
        configs[name] = secevents.get_config()
    make_ours(paths["floor"], "none", delivery="queue")  # the floor's own configuration and file
    configs["floor"] = secevents.get_config()
    methods["floor"] = make_floor(configs["floor"])

    kinds = ("wall", "thread", "process")
    values = {(kind, name): [] for kind in kinds for name in methods}  # type: dict[tuple[str, str], list[float]]
    ratios = {(kind, name): [] for kind in kinds for name in methods}  # type: dict[tuple[str, str], list[float]]
    for round_no in range(args.rounds + 1):
        this_round: dict[tuple[str, str], float] = {}
        for name, call in methods.items():
            if name in configs:
                set_config(configs[name])
            os.truncate(paths[name], 0)
            process_start, thread_start = time.process_time(), time.thread_time()
            start = time.perf_counter()
            for _ in range(args.batch):
                call()
            wall, thread = time.perf_counter() - start, time.thread_time() - thread_start
            if not secevents.flush(timeout=60):
                sys.exit(f"{name}: records were dropped ({_delivery.dropped()}); use a smaller --batch")
            process = time.process_time() - process_start
            for kind, seconds in zip(kinds, (wall, thread, process), strict=True):
                this_round[kind, name] = seconds / args.batch * 1e6
        if round_no == 0:
            continue  # calibration round: warms caches, starts the writer thread; not counted
        for (kind, name), value in this_round.items():
            values[kind, name].append(value)
            ratios[kind, name].append(value / this_round[kind, "a"])

    lines = {name: len(open(paths[name], "rb").read().splitlines()) for name in methods}  # noqa: SIM115
    assert set(lines.values()) == {args.batch}, lines  # every method wrote every record of its last batch
    written = {}
    for name in methods:
        with open(paths[name], "rb") as handle:
            last = orjson.loads(handle.read().splitlines()[-1])
        del last["timestamp"]
        for stamp in ("writer", "seq", "chain"):  # the writer's stamp (docs/delivery.md): not the record
            last.get("secevents", {}).pop(stamp, None)
        if "level" in last:  # structlog's add_log_level names the status "level"
            last["status"] = last.pop("level")
        written[name] = last  # every method wrote the same record
    assert len({orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in written.values()}) == 1, written
    print(
        f"# {platform.python_implementation()} {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs; {args.rounds} rounds x {args.batch} events; "
        f"structlog {structlog.__version__}, orjson {orjson.__version__}"
    )
    print(
        "| method | caller wall µs | ratio | **caller CPU µs** | **ratio** "
        "| process CPU µs (+ writer) | **ratio** |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, label in LABELS.items():
        cells = [
            f"{statistics.median(values[kind, name]):.2f} | {statistics.median(ratios[kind, name]):.2f}x"
            for kind in kinds
        ]
        print(f"| {label} | {' | '.join(cells)} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
