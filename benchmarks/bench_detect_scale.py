"""Archive scale: `secevents detect` against DuckDB on the same two rules and the same file, side by side.

Generates N login records with attacks once to a temporary JSON-lines file (real records written by the
library, copied with other users, IPs and times, in time order as a log is), then runs, each in a fresh
child process so that peak RSS is its own:

- (s) ``secevents detect``'s path: `read_logs` + `replay_stream` (streaming, bounded state);
- (c) ``secevents detect``'s columnar path (`--engine columnar`, DuckDB underneath, the same signals as (s)
  by construction);
- (q) DuckDB: ``read_json`` of the same file and window-function SQL for the same two rules
  (brute force: failures per account over 900 s >= 10; credential stuffing: distinct failing accounts per
  IP over 1800 s >= 10), counting the groups that fire.

Reported: records/s, seconds, peak RSS (MiB), and whether both found the same groups per rule.

    .venv/bin/python benchmarks/bench_detect_scale.py --records 1000000 [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

START = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
RULES = ("brute_force", "credential_stuffing")


def generate(path: Path, count: int, seed: int = 13) -> None:
    """`count` login records in time order: normal traffic plus stuffing and brute-force bursts."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_detect import templates

    import graffer_secevents as secevents

    secevents.configure(hash_key="bench-only-key-" + "x" * 20)
    shapes = {k: v for k, v in templates().items() if k in ("success", "failure", "unknown")}
    rng = random.Random(seed)
    moment = START
    written = 0
    with path.open("wb") as out:
        while written < count:
            moment += rng.expovariate(1 / 0.6)  # ~140,000 logins a day
            if rng.random() < 0.002:  # a burst of 30 from one IP: stuffing or brute force
                ip = f"203.0.113.{rng.randrange(256)}"
                stuffing = rng.random() < 0.5
                for n in range(30):
                    user = f"{rng.randrange(10**6)}" if stuffing else "4242"
                    out.write(_line(shapes["unknown" if stuffing else "failure"], moment + 2 * n, user, ip))
                written += 30
                continue
            user = str(rng.randrange(50_000))
            ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{int(user) % 256}"
            kind = "success" if rng.random() < 0.85 else "failure"
            out.write(_line(shapes[kind], moment, user, ip))
            written += 1


def _line(shape: dict[str, Any], moment: float, user: str, ip: str) -> bytes:
    record = dict(shape)
    record["timestamp"] = (
        datetime.fromtimestamp(moment, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )
    record["usr"] = {**record.get("usr", {}), "id": user}
    network = dict(record.get("network", {}))
    network["client"] = {**network.get("client", {}), "ip": ip}
    record["network"] = network
    return orjson.dumps(record) + b"\n"


def run_secevents(path: str) -> dict[str, Any]:
    from graffer_secevents._tools.detect.engine import Engine, replay_stream
    from graffer_secevents._tools.detect.loading import LineCounts, read_logs
    from graffer_secevents.detect import default_rules

    counts = LineCounts()
    engine = Engine(default_rules(only=list(RULES)))
    result = replay_stream(engine, read_logs([path], counts, []))
    groups: dict[str, list[str]] = {rule: [] for rule in RULES}
    for signal in result.signals:
        groups[signal.rule_id].append(next(iter(signal.group.values())))
    return {"records": counts.records, "groups": {k: sorted(set(v)) for k, v in groups.items()}}


def run_columnar(path: str) -> dict[str, Any]:
    from graffer_secevents._tools.detect.columnar import columnar_replay
    from graffer_secevents._tools.detect.loading import LineCounts
    from graffer_secevents.detect import default_rules

    counts = LineCounts()
    names: list[str] = []
    result = columnar_replay(
        default_rules(only=list(RULES)),
        [path],
        counts,
        names,
        describe=lambda ref: f"{names[ref[0]]}:{ref[1]}",
    )
    assert hasattr(result, "signals"), result
    groups: dict[str, list[str]] = {rule: [] for rule in RULES}
    for signal in result.signals:
        groups[signal.rule_id].append(next(iter(signal.group.values())))
    return {"records": counts.records, "groups": {k: sorted(set(v)) for k, v in groups.items()}}


def run_duckdb(path: str, *, every_case: bool = False) -> dict[str, Any]:
    """The two rules in SQL. `every_case`: credential stuffing with both of its cases, as the rule has them
    (`failed_users >= 25 && successes >= 1`, else `failed_users >= 10`), so its window also runs over every
    success from the IP, as `secevents detect` does; otherwise only the attempt case, over failures."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute(
        f"""CREATE TEMP TABLE logins AS
        SELECT epoch(CAST("timestamp" AS TIMESTAMPTZ)) AS t, evt.name AS name, evt.outcome AS outcome,
               usr.id AS usr_id, network.client.ip AS ip
        FROM read_json('{path}', format = 'newline_delimited',
            columns = {{"timestamp": 'VARCHAR', evt: 'STRUCT(name VARCHAR, outcome VARCHAR)',
                        usr: 'STRUCT(id VARCHAR)', network: 'STRUCT(client STRUCT(ip VARCHAR))'}})"""
    )
    records = con.execute("SELECT count(*) FROM logins").fetchone()
    brute = con.execute(
        """SELECT DISTINCT usr_id FROM (
             SELECT usr_id, count(*) OVER (PARTITION BY usr_id ORDER BY t
                 RANGE BETWEEN 899.999999 PRECEDING AND CURRENT ROW) AS n
             FROM logins WHERE name = 'authentication' AND outcome = 'failure' AND usr_id IS NOT NULL)
           WHERE n >= 10"""
    ).fetchall()
    stuffing_every_case = """SELECT DISTINCT ip FROM (
             SELECT ip,
                 count(DISTINCT usr_id) FILTER (WHERE outcome = 'failure') OVER w AS failed_users,
                 count(*) FILTER (WHERE outcome = 'success') OVER w AS successes
             FROM logins WHERE name = 'authentication' AND ip IS NOT NULL
               AND ((outcome = 'failure' AND usr_id IS NOT NULL) OR outcome = 'success')
             WINDOW w AS (PARTITION BY ip ORDER BY t RANGE BETWEEN 1799.999999 PRECEDING AND CURRENT ROW))
           WHERE (failed_users >= 25 AND successes >= 1) OR failed_users >= 10"""
    stuffing = con.execute(
        stuffing_every_case
        if every_case
        else """SELECT DISTINCT ip FROM (
             SELECT ip, count(DISTINCT usr_id) OVER (PARTITION BY ip ORDER BY t
                 RANGE BETWEEN 1799.999999 PRECEDING AND CURRENT ROW) AS n
             FROM logins WHERE name = 'authentication' AND outcome = 'failure'
               AND ip IS NOT NULL AND usr_id IS NOT NULL)
           WHERE n >= 10"""
    ).fetchall()
    return {
        "records": records[0] if records else 0,
        "groups": {
            "brute_force": sorted(r[0] for r in brute),
            "credential_stuffing": sorted(r[0] for r in stuffing),
        },
    }


def child(method: str, path: str) -> None:
    start = time.perf_counter()
    found = {
        "s": run_secevents,
        "c": run_columnar,
        "q": run_duckdb,
        "Q": lambda p: run_duckdb(p, every_case=True),
    }[method](path)
    found["seconds"] = time.perf_counter() - start
    found["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sys.stdout.write(json.dumps(found) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--file", default=None, help="reuse this generated file (kept)")
    parser.add_argument(
        "--methods",
        default="qQcs",
        help="q DuckDB, Q DuckDB with both stuffing cases, c columnar, s streaming (default qQcs)",
    )
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.file) if args.file else Path(tmp) / "logins.jsonl"
        if not path.exists():
            began = time.perf_counter()
            generate(path, args.records)
            print(
                f"# generated {args.records:,} records ({path.stat().st_size / 2**20:,.0f} MiB) in "
                f"{time.perf_counter() - began:.1f} s"
            )
        methods = [m for m in "qQcs" if m in args.methods or m == "q"]
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
        for _ in range(args.rounds):
            for method in methods:
                done = subprocess.run(
                    [sys.executable, __file__, "--child", method, str(path)],
                    capture_output=True,
                    check=True,
                    text=True,
                )
                runs[method].append(json.loads(done.stdout.splitlines()[-1]))
    labels = {
        "s": "secevents detect (streaming engine)",
        "c": "secevents detect --engine columnar",
        "q": "DuckDB read_json + window SQL (2 threads)",
        "Q": "DuckDB, the stuffing rule with both its cases",
    }
    print(f"# {os.cpu_count()} CPUs, shared machine; {args.rounds} round(s); median of rounds")
    print(
        "| method | records | median s | records/s | peak RSS MiB | ratio to DuckDB "
        "| ratio to DuckDB, every case |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    duck = statistics.median(r["seconds"] for r in runs["q"])
    full = statistics.median(r["seconds"] for r in runs["Q"]) if "Q" in runs else None
    for method in [m for m in "scQq" if m in runs]:
        seconds = statistics.median(r["seconds"] for r in runs[method])
        rss = statistics.median(r["peak_rss_mib"] for r in runs[method])
        records = runs[method][0]["records"]
        versus_full = f"{seconds / full:.2f}x" if full else "-"
        print(
            f"| {labels[method]} | {records:,} | {seconds:.2f} | {records / seconds:,.0f} | {rss:,.0f} | "
            f"{seconds / duck:.2f}x | {versus_full} |"
        )
    theirs = runs["q"][0]["groups"]
    for method in [m for m in "scQ" if m in runs]:
        _compare(labels[method], runs[method][0]["groups"], theirs)
    if "s" in runs and "c" in runs:
        print(
            "# columnar and streaming signal groups identical: "
            f"{runs['s'][0]['groups'] == runs['c'][0]['groups']}"
        )


def _compare(label: str, ours: dict[str, list[str]], theirs: dict[str, list[str]]) -> None:
    for rule in RULES:
        same = (
            "same groups"
            if ours[rule] == theirs[rule]
            else (
                f"DIFFERENT: only secevents {sorted(set(ours[rule]) - set(theirs[rule]))[:5]}, "
                f"only DuckDB {sorted(set(theirs[rule]) - set(ours[rule]))[:5]}"
            )
        )
        print(f"# {label}, {rule}: {len(ours[rule])} groups, DuckDB {len(theirs[rule])} groups: {same}")


if __name__ == "__main__":
    main()
