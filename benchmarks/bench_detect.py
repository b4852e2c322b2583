"""Throughput of ``secevents detect``: the default rule set replayed over generated records, in records/s.

The records are real ones (each event type written once by the library, then copied with other users, IPs
and times): a day of normal logins by many users from many IPs, with credential-stuffing and brute-force
bursts, denied requests, password resets, signups and MFA challenges mixed in. Interleaved in one process,
each round times, back to back:

- (b) the floor: ``orjson.loads`` of every line (reading the log, nothing else);
- (e) the engine: ``evaluate(default_rules(), records)`` on the parsed records;
- (d) ``secevents detect`` without printing: read the JSON lines (skipping other lines) and evaluate.

Reported: the median records/s over rounds and the median ratio of each time to (b) in the same round.

    .venv/bin/python benchmarks/bench_detect.py [--rounds 5] [--batch 100000]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

import graffer_secevents as secevents
from graffer_secevents import User
from graffer_secevents._tools.detect.engine import evaluate
from graffer_secevents._tools.detect.loading import LineCounts, read_records
from graffer_secevents.detect import default_rules
from graffer_secevents.testing import capture_events

START = datetime(2026, 3, 2, tzinfo=UTC)


def templates() -> dict[str, dict[str, Any]]:
    """One real record per kind of event the generator copies."""
    calls: dict[str, Callable[[], None]] = {
        "success": lambda: secevents.log_login(User(id=1), "success", "198.51.100.1"),
        "failure": lambda: secevents.log_login(User(id=1), "failure", "198.51.100.1", exists=True),
        "unknown": lambda: secevents.log_login(None, "failure", "198.51.100.1", login="x", exists=False),
        "denied": lambda: secevents.log_access_denied(User(id=1), "/admin", "198.51.100.1"),
        "reset": lambda: secevents.log_password_reset(None, "198.51.100.1", login="x", exists=True),
        "signup": lambda: secevents.emit("user_signup", User(id=1), "success", ip="198.51.100.1"),
        "mfa_fail": lambda: secevents.log_mfa_challenge(User(id=1), "failure", "198.51.100.1", method="totp"),
    }
    out = {}
    for kind, call in calls.items():
        with capture_events() as events:
            call()
        out[kind] = events.records[-1]
    return out


def generate(count: int, seed: int = 13) -> list[bytes]:
    """``count`` JSON lines (about 1 in 50 is a non-security log line, as in a real pod's output)."""
    rng = random.Random(seed)
    shapes = templates()
    lines: list[bytes] = []
    span = 86400.0
    while len(lines) < count:
        moment = START + timedelta(seconds=rng.random() * span)
        roll = rng.random()
        if roll < 0.02:
            lines.append(b"INFO 127.0.0.1 - GET /health 200")
            continue
        if roll < 0.03:  # a burst: stuffing (many accounts) or brute force (one account) from one IP
            ip = f"203.0.113.{rng.randrange(256)}"
            stuffing = rng.random() < 0.5
            for n in range(30):
                kind = "unknown" if stuffing else "failure"
                user = f"{rng.randrange(10**6)}" if stuffing else "4242"
                lines.append(_line(shapes[kind], moment + timedelta(seconds=2 * n), user, ip))
            continue
        user = str(rng.randrange(20_000))
        ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{int(user) % 256}"
        kind = rng.choices(
            ("success", "failure", "denied", "reset", "signup", "mfa_fail"), weights=(70, 12, 8, 4, 3, 3)
        )[0]
        lines.append(_line(shapes[kind], moment, user, ip))
    return lines[:count]


def _line(shape: dict[str, Any], moment: datetime, user: str, ip: str) -> bytes:
    record = orjson.loads(orjson.dumps(shape))
    record["timestamp"] = moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
    record.setdefault("usr", {})["id"] = user
    record.setdefault("network", {}).setdefault("client", {})["ip"] = ip
    return orjson.dumps(record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=100_000, help="records per round")
    args = parser.parse_args()
    secevents.configure(hash_key="bench-only-key-" + "x" * 20)
    lines = generate(args.batch)
    blob = b"\n".join(lines) + b"\n"
    rules = default_rules()
    parsed = [orjson.loads(line) for line in lines if line.startswith(b"{")]
    signals: list[int] = []

    def read_floor() -> None:
        for line in blob.splitlines():
            if line.startswith(b"{"):
                orjson.loads(line)

    def engine() -> None:
        signals.append(len(evaluate(rules, parsed)))

    def detect() -> None:
        records = list(read_records(io.BytesIO(blob), LineCounts()))
        evaluate(rules, records)

    methods: dict[str, Callable[[], None]] = {"b": read_floor, "e": engine, "d": detect}
    rates: dict[str, list[float]] = {name: [] for name in methods}
    ratios: dict[str, list[float]] = {name: [] for name in methods}
    for round_no in range(args.rounds + 1):
        seconds: dict[str, float] = {}
        for name, call in methods.items():
            start = time.perf_counter()
            call()
            seconds[name] = time.perf_counter() - start
        if round_no == 0:
            continue  # calibration round: warms caches, not counted
        for name, value in seconds.items():
            rates[name].append(len(lines) / value)
            ratios[name].append(value / seconds["b"])
    labels = {
        "b": "(b) floor: orjson.loads of every line",
        "e": f"(e) engine: evaluate({len(rules)} default rules) on parsed records",
        "d": "(d) secevents detect: read the lines and evaluate",
    }
    print(
        f"# {platform.python_implementation()} {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs; {args.rounds} rounds x {len(lines)} lines ({len(parsed)} records); "
        f"{signals[-1] if signals else 0} signals per replay"
    )
    print("| method | median records/s | min | max | median s per round | ratio to (b) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("b", "e", "d"):
        values = rates[name]
        median = statistics.median(values)
        print(
            f"| {labels[name]} | {median:,.0f} | {min(values):,.0f} | {max(values):,.0f} | "
            f"{len(lines) / median:.3f} | {statistics.median(ratios[name]):.2f}x |"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
