"""Worst-case CPU per event from hostile input, as a ratio to a normal event measured in the same round.

Each case is one call a caller (or, for the request fields, a client) can make: caller metadata built to
escape the bounds (shared sub-lists, deep nesting, a million keys, endless and malformed mappings, huge
strings of control characters) and request fields built to cost the most in the secret-shape scan (a new
value every call, so the scan's cache never helps). Reported per case: the median µs per event over rounds,
the median ratio to the normal event of the same round, and the longest line written (bytes).

    .venv/bin/python benchmarks/bench_hostile.py [--rounds 15] [--batch 200]

Written synchronously to a real file; the file is truncated between batches, outside the timing.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import graffer_secevents as secevents
from graffer_secevents._context import RequestContext, bind_request, reset_request

AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)


def shared(levels: int, width: int = 64) -> list[Any]:
    node: Any = ["leaf", 1]
    for _ in range(levels):
        node = [node] * width
    return node  # type: ignore[no-any-return]


def deep(depth: int) -> list[Any]:
    node: Any = []
    for _ in range(depth):
        node = [node]
    return node  # type: ignore[no-any-return]


class Endless(Mapping[str, int]):
    """A mapping whose items() never ends."""

    def items(self) -> Any:  # type: ignore[override]
        return ((f"k{n}", n) for n in itertools.count())

    def __getitem__(self, key: str) -> int:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


class Malformed(Mapping[str, int]):
    """A mapping whose items() yields a million things that are not (key, value) pairs."""

    def items(self) -> Any:  # type: ignore[override]
        return itertools.repeat(("a", "b", "c"), 1_000_000)

    def __getitem__(self, key: str) -> int:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


Wide = dataclasses.make_dataclass(
    "Wide", [(f"f{n}", list, dataclasses.field(default_factory=list)) for n in range(300)]
)

MILLION = {str(n): n for n in range(1_000_000)}
CASES: dict[str, dict[str, Any]] = {
    "normal": {"ticket": "SEC-42"},
    "shared lists, 21 levels x 64": {"meta": shared(21)},
    "shared lists, 3 levels x 64": {"meta": shared(3)},
    "deep lists, 1,000 levels": {"meta": deep(1000)},
    "a million keys": {"meta": MILLION},
    "an endless mapping": {"meta": Endless()},
    "a million malformed items() pairs": {"meta": Malformed()},
    "1 M control characters": {"meta": "\x01" * 1_000_000},
    "128 strings of 1,024 control chars": {f"k{n}": "\x01" * 1024 for n in range(128)},
    "a dataclass of 300 list fields x 64": {"meta": [Wide()] * 64},
}


def request_values(count: int) -> Iterator[tuple[str, str, str]]:
    """(path, user agent, request id), new every call: the scan's cache never hits."""
    for n in itertools.count():
        tail = f"{n:08d}"
        path = "/" + "/".join(f"aB3dE5gH7jK9{tail}{k:02d}" for k in range(60))[:1023]
        agent = (f"u{tail}@example.com " * 60)[:1024]
        request_id = ("eyJ" + "A1b2C3d4" * 4 + tail + ".x")[:128]
        yield path, agent, request_id
        if n >= count:
            return


def make_call(case: str, folder: str) -> tuple[Callable[[], None], str]:
    path = os.path.join(folder, f"{abs(hash(case))}.log")
    handle = open(path, "ab")  # noqa: SIM115 - lives for the whole run
    secevents.configure(output=handle, metrics="none", hash_key="bench-only-key-0123456789", delivery="sync")
    config = secevents.get_config()
    metadata = CASES.get(case, {"ticket": "SEC-42"})
    values = itertools.cycle(list(request_values(5000)))

    def call() -> None:
        from graffer_secevents._config import set_config

        set_config(config)
        if case == "hostile request fields (new each call)":
            path_, agent, request_id = next(values)
            token = bind_request(
                RequestContext(method="GET", path=path_, user_agent=agent, request_id=request_id)
            )
        else:
            token = bind_request(
                RequestContext(method="GET", path="/admin/users/7", user_agent=AGENT, request_id="req-1")
            )
        try:
            secevents.log_admin_action(
                7, "disable_user", "203.0.113.7", resource="/admin/users/7", **metadata
            )
        finally:
            reset_request(token)

    return call, path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="secevents-hostile-")
    names = [*CASES, "hostile request fields (new each call)"]
    calls = {name: make_call(name, folder) for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names}
    longest: dict[str, int] = dict.fromkeys(names, 0)
    for round_no in range(args.rounds + 1):
        this_round: dict[str, float] = {}
        for name, (call, path) in calls.items():
            os.truncate(path, 0)
            start = time.process_time()
            for _ in range(args.batch):
                call()
            this_round[name] = (time.process_time() - start) / args.batch * 1e6
            with open(path, "rb") as written:
                longest[name] = max(longest[name], *(len(line) for line in written))
        if round_no == 0:
            continue  # warm-up
        for name in names:
            samples[name].append(this_round[name])
            ratios[name].append(this_round[name] / this_round["normal"])
    print(
        f"Python {sys.version.split()[0]} on {platform.machine()}; {args.rounds} rounds x {args.batch} events"
    )
    print("(CPU time of the calling thread's process; a shared, noisy machine: read the ratios)")
    print(f"{'case':<42} {'µs/event':>10} {'x normal':>10} {'longest line':>14}")
    for name in names:
        print(
            f"{name:<42} {statistics.median(samples[name]):>10.1f} {statistics.median(ratios[name]):>10.1f}"
            f" {longest[name]:>12} B"
        )


if __name__ == "__main__":
    main()
