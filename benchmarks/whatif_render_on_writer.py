"""What-if: how much of ``log_login``'s queued caller cost would leave the caller if the writer rendered.

An experiment, not a shipped option: SPEC §7 has records rendered on the caller's thread. To see what the
other design would save the caller, it patches the pipeline in this process and measures, interleaved in one
run like bench_delivery.py, the caller CPU (``time.thread_time()``) of:

- (a) structlog + orjson by hand, synchronous write (bench_core's (a));
- ``log_login`` queued, as shipped;
- the same with ``orjson.dumps`` replaced by a constant line: what the caller would no longer pay if the
  writer thread serialised the record;
- the same with the login's HMAC skipped too: the writer would also hash.

The patched rows write meaningless lines; they measure the caller only. The ratios are medians of
per-round ratios to (a).

    .venv/bin/python benchmarks/whatif_render_on_writer.py [--rounds 25] [--batch 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import orjson
from bench_core import make_ours, make_structlog_by_hand

import graffer_secevents as secevents
from graffer_secevents import _pipeline

ROWS = {
    "a": "(a) structlog + orjson by hand, synchronous write",
    "real": "`log_login`, queued (as shipped)",
    "no_render": "... without `orjson.dumps` on the caller",
    "no_render_no_hash": "... and without the login's HMAC",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="secevents-whatif-"))
    by_hand = make_structlog_by_hand(str(folder / "a.log"))
    ours = make_ours(str(folder / "ours.log"), "none", delivery="queue")
    privacy = secevents.get_config().privacy
    real_login = privacy.apply_login
    constant = b'{"patched":true}\n'
    no_orjson = types.SimpleNamespace(
        dumps=lambda *_args, **_kwargs: constant,
        JSONEncodeError=orjson.JSONEncodeError,
        OPT_APPEND_NEWLINE=orjson.OPT_APPEND_NEWLINE,
    )

    def patched(render: bool, hash_login: bool) -> None:
        _pipeline.orjson = orjson if render else no_orjson  # type: ignore[assignment]
        privacy.apply_login = real_login if hash_login else (lambda _value: "anon_patched")

    def timed(call: Callable[[], None]) -> float:
        start = time.thread_time()
        for _ in range(args.batch):
            call()
        seconds = time.thread_time() - start
        secevents.flush(timeout=60)
        return seconds / args.batch * 1e6

    ratios: dict[str, list[float]] = {name: [] for name in ROWS}
    values: dict[str, list[float]] = {name: [] for name in ROWS}
    settings = {"real": (True, True), "no_render": (False, True), "no_render_no_hash": (False, False)}
    try:
        for round_no in range(args.rounds + 1):
            row = {"a": timed(by_hand)}
            for name, (render, hash_login) in settings.items():
                patched(render, hash_login)
                row[name] = timed(ours)
            patched(True, True)
            if round_no == 0:
                continue  # calibration round
            for name, value in row.items():
                values[name].append(value)
                ratios[name].append(value / row["a"])
    finally:
        patched(True, True)

    print(f"# {args.rounds} rounds x {args.batch} events; caller CPU (thread_time) per event")
    print("| method | caller CPU µs | ratio to (a) |")
    print("|---|---:|---:|")
    for name, label in ROWS.items():
        print(f"| {label} | {statistics.median(values[name]):.2f} | {statistics.median(ratios[name]):.2f}x |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
