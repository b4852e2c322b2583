"""Per-event cost of ``log_login`` against a hand-rolled structlog + orjson log and the orjson + write floor.

Interleaved in one process: each round times a batch of every method back to back, so drift of this
shared, noisy machine hits all of them alike. Reported: the median µs per event over rounds, and the median
over rounds of each method's ratio to (a) and to (b) in the same round.

    .venv/bin/python benchmarks/bench_core.py [--rounds 40] [--batch 2000]

Every method writes *and flushes* each event to a real file (one write(2) per event, as structlog's loggers
do), and the file is truncated between batches, outside the timing.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import orjson
import structlog

import graffer_secevents as secevents
from graffer_secevents import User
from graffer_secevents._context import RequestContext, bind_request

USER = User(id=42, login="ada@example.com")


def the_record() -> dict[str, Any]:
    """The record log_login writes for this event (minus the timestamp), so every method writes the same."""
    return {
        "timestamp": "2026-11-26T12:00:00.000000Z",
        "status": "warning",
        "message": "authn_login_fail: login failed",
        "service": "auth-api",
        "env": "prod",
        "version": "1.0.0",
        "logger": {"name": "graffer_secevents"},
        "evt": {
            "type": "authn_login_fail",
            "name": "authentication",
            "category": "authentication",
            "outcome": "failure",
            "reason": "invalid_credentials",
        },
        "usr": {"id": "42", "login": "anon_00112233445566778899aabbccddeeff", "exists": True},
        "network": {"client": {"ip": "203.0.113.7"}},
        "http": {
            "method": "POST",
            "url_details": {"path": "/login"},
            "route": "/login",
            "request_id": "req-1",
        },
        "secevents": {"schema": 1},
    }


def make_ours(path: str, metrics: str, delivery: str = "sync") -> Callable[[], None]:
    handle = open(path, "ab")  # noqa: SIM115 - lives for the whole run
    # Written on the caller's thread by default, like the other methods here; bench_delivery.py measures the
    # queue.
    secevents.configure(
        service="auth-api",
        env="prod",
        version="1.0.0",
        output=handle,
        metrics=metrics,
        hash_key="bench-key-of-16-bytes",
        delivery=delivery,
    )
    bind_request(RequestContext(method="POST", path="/login", route="/login", request_id="req-1"))

    def call() -> None:
        secevents.log_login(USER, "failure", "203.0.113.7", exists=True, reason="invalid_credentials")

    return call


def _structlog_logger(path: str) -> Any:
    handle = open(path, "ab")  # noqa: SIM115
    return structlog.wrap_logger(
        structlog.BytesLogger(handle),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        context_class=dict,
        cache_logger_on_first_use=True,
    ).bind()


def make_structlog_by_hand(path: str) -> Callable[[], None]:
    """(a): what a team writes without the library to get the same record: build it from the same inputs on
    every call (the login hashed with HMAC-SHA256, the request's fields read from the same context)."""
    log = _structlog_logger(path)
    key = b"bench-key-of-16-bytes"
    request = RequestContext(method="POST", path="/login", route="/login", request_id="req-1")

    def call() -> None:
        user, outcome, ip, reason, exists = USER, "failure", "203.0.113.7", "invalid_credentials", True
        login = user.login or ""
        log.warning(
            "authn_login_fail: login failed",
            service="auth-api",
            env="prod",
            version="1.0.0",
            logger={"name": "graffer_secevents"},
            evt={
                "type": "authn_login_fail",
                "name": "authentication",
                "category": "authentication",
                "outcome": outcome,
                "reason": reason,
            },
            usr={
                "id": str(user.id),
                "login": "anon_" + hmac.new(key, login.encode(), hashlib.sha256).hexdigest()[:32],
                "exists": exists,
            },
            network={"client": {"ip": ip}},
            http={
                "method": request.method,
                "url_details": {"path": request.path},
                "route": request.route,
                "request_id": request.request_id,
            },
            secevents={"schema": 1},
        )

    return call


def make_structlog_prebuilt(path: str) -> Callable[[], None]:
    """(a0): structlog + orjson handed the finished nested record: no per-call work at all but logging."""
    log = _structlog_logger(path)
    fields = the_record()
    for key in ("timestamp", "status", "message"):
        del fields[key]

    def call() -> None:
        log.warning("authn_login_fail: login failed", **fields)

    return call


def make_floor(path: str) -> Callable[[], None]:
    handle = open(path, "ab")  # noqa: SIM115
    record = the_record()

    def call() -> None:
        handle.write(orjson.dumps(record) + b"\n")
        handle.flush()

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="secevents-bench-")
    paths = {name: os.path.join(folder, f"{name}.log") for name in ("ours", "ours_dsd", "a", "a0", "b")}
    methods: dict[str, Callable[[], None]] = {
        "b": make_floor(paths["b"]),
        "a0": make_structlog_prebuilt(paths["a0"]),
        "a": make_structlog_by_hand(paths["a"]),
        "ours": make_ours(paths["ours"], "none"),
    }
    ours_none = secevents.get_config()
    methods_with_config = {"ours": ours_none}
    methods["ours_dsd"] = make_ours(paths["ours_dsd"], "dogstatsd")
    methods_with_config["ours_dsd"] = secevents.get_config()
    logging.getLogger("datadog.dogstatsd").setLevel(logging.ERROR)

    from graffer_secevents._config import set_config

    samples: dict[str, list[float]] = {name: [] for name in methods}
    ratios_a: dict[str, list[float]] = {name: [] for name in methods}
    ratios_b: dict[str, list[float]] = {name: [] for name in methods}
    for round_no in range(args.rounds + 1):
        this_round: dict[str, float] = {}
        for name, call in methods.items():
            if name in methods_with_config:
                set_config(methods_with_config[name])
            os.truncate(paths[name], 0)
            start = time.perf_counter()
            for _ in range(args.batch):
                call()
            this_round[name] = (time.perf_counter() - start) / args.batch * 1e6
        if round_no == 0:
            continue  # calibration round: warms caches, not counted
        for name, value in this_round.items():
            samples[name].append(value)
            ratios_a[name].append(value / this_round["a"])
            ratios_b[name].append(value / this_round["b"])

    labels = {
        "b": "(b) floor: orjson.dumps(record) + write + flush",
        "a0": "(a0) structlog + orjson handed the pre-built record",
        "a": "(a) structlog + orjson by hand: same record built per call",
        "ours": "log_login, full path (metrics='none')",
        "ours_dsd": "log_login, full path + DogStatsD metrics (no agent)",
    }
    print(
        f"# {platform.python_implementation()} {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs; {args.rounds} rounds x {args.batch} events; "
        f"structlog {structlog.__version__}, orjson {orjson.__version__}"
    )
    print("| method | median µs/event | min | max | ratio to (a) | ratio to (b) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("b", "a0", "a", "ours", "ours_dsd"):
        values = samples[name]
        print(
            f"| {labels[name]} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} | "
            f"{statistics.median(ratios_a[name]):.2f}x | {statistics.median(ratios_b[name]):.2f}x |"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
