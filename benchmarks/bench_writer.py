"""Can the writer thread keep up with callers at full speed? Emitted, written and dropped per second.

Callers on 1, 4 and 16 threads call ``log_login`` in a tight loop for ``--seconds`` each, with the default
queue (10,000 records, ``overflow="drop"``) and stdout a pipe read by another process (as a container's
log driver reads it), then ``flush()``. Per run: events emitted per second (every call), written per second
(records that reached the pipe, counted by the reading process), dropped per second (``queue_full``), and
the share dropped. Each configuration runs in a fresh interpreter; ``--overflow block`` shows what the
callers pay instead of the loss (they wait for the writer).

    .venv/bin/python benchmarks/bench_writer.py [--seconds 2] [--threads 1 4 16] [--overflow drop|block]
        [--output pipe|file] [--key]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
from typing import Any

CHILD = """
import json, os, sys, threading, time
import graffer_secevents as secevents
from graffer_secevents import _delivery

threads, seconds, overflow, key = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
secevents.configure(
    service="bench", metrics="none", hash_key="k", overflow=overflow, block_timeout=5.0,
    integrity_key="audit-key-0123456789" if key else None,
)
counts = [0] * threads
stop = threading.Event()

def caller(k):
    log_login = secevents.log_login
    n = 0
    while not stop.is_set():
        for _ in range(100):
            log_login(n, "failure", "203.0.113.7", login="ada@example.com", reason="invalid_credentials")
            n += 1
    counts[k] = n

workers = [threading.Thread(target=caller, args=(k,)) for k in range(threads)]
cpu0, t0 = time.process_time(), time.perf_counter()
for w in workers: w.start()
time.sleep(seconds)
stop.set()
for w in workers: w.join()
elapsed = time.perf_counter() - t0
secevents.flush(60)
dropped = _delivery.dropped().get("queue_full", 0)
os.write(2, (json.dumps({"emitted": sum(counts), "dropped": dropped, "elapsed": elapsed,
    "cpu": time.process_time() - cpu0}) + "\\n").encode())
"""


def run(threads: int, seconds: float, overflow: str, output: str, key: bool) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECEVENTS_")}
    argv = [sys.executable, "-c", CHILD, str(threads), str(seconds), overflow, "1" if key else "0"]
    if output == "file":
        with tempfile.TemporaryFile() as out:
            proc = subprocess.run(argv, stdout=out, stderr=subprocess.PIPE, env=env, check=True)
            out.seek(0)
            written = sum(1 for line in out if b'"evt"' in line)
        stats = json.loads([x for x in proc.stderr.splitlines() if x.startswith(b"{")][-1])
    else:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert proc.stdout is not None
        assert proc.stderr is not None
        lines = [0]

        def count() -> None:  # the log driver: reads as fast as it can, in another thread of this process
            assert proc.stdout is not None
            tail = b""
            while chunk := proc.stdout.read1(1 << 16):
                data = tail + chunk
                lines[0] += data.count(b'"evt"')
                tail = b""

        reader = threading.Thread(target=count)
        reader.start()
        err = proc.stderr.read()
        proc.wait()
        reader.join()
        stats = json.loads([x for x in err.splitlines() if x.startswith(b"{")][-1])
        written = lines[0]
    elapsed = stats["elapsed"]
    return {
        "threads": threads,
        "emitted/s": stats["emitted"] / elapsed,
        "written/s": written / elapsed,
        "dropped/s": stats["dropped"] / elapsed,
        "dropped %": 100 * stats["dropped"] / max(1, stats["emitted"]),
        "check": stats["emitted"] - stats["dropped"] - written,  # 0: every record written or counted
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--overflow", choices=("drop", "block"), default="drop")
    parser.add_argument("--output", choices=("pipe", "file"), default="pipe")
    parser.add_argument("--key", action="store_true", help="with an integrity key (the chain)")
    parser.add_argument("--rounds", type=int, default=1, help="runs per thread count (the median is shown)")
    args = parser.parse_args()
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs; output {args.output}, "
        f"overflow={args.overflow}, chain {'on' if args.key else 'off'}, {args.seconds}s per run"
    )
    print("| caller threads | emitted/s | written/s | dropped/s | dropped | written + dropped = emitted |")
    print("|---|---|---|---|---|---|")
    for threads in args.threads:
        runs = sorted(
            (run(threads, args.seconds, args.overflow, args.output, args.key) for _ in range(args.rounds)),
            key=lambda r: r["written/s"],
        )
        r = runs[len(runs) // 2]
        check = "yes" if r["check"] == 0 else f"NO ({r['check']})"
        print(
            f"| {threads} | {r['emitted/s']:,.0f} | {r['written/s']:,.0f} | {r['dropped/s']:,.0f} | "
            f"{r['dropped %']:.0f} % | {check} |"
        )


if __name__ == "__main__":
    main()
