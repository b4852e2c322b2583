"""Import time: ``import graffer_secevents`` against ``import structlog, pydantic`` (issue 11: goal 0.5x).

Each sample is one fresh interpreter that times only the ``import`` statement (``time.perf_counter`` around
it, so interpreter start-up is not counted). The variants alternate, in an order that flips every round, so
a slow stretch of this shared machine hits both; the ratio is the median of per-round ratios.

Then one ``-X importtime`` run per round attributes the package's import to the modules it pulls in (the
``cumulative`` column of each top-level package), which gives what the import would cost without
structlog — the estimate for once ``_output.py`` no longer writes through it.

Run: ``.venv/bin/python benchmarks/bench_import.py [--rounds 20]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from collections import defaultdict

VARIANTS = {
    "import graffer_secevents": "graffer_secevents",
    "import structlog, pydantic": "structlog, pydantic",
}
BASELINE = "import structlog, pydantic"
OURS = "import graffer_secevents"


def time_import(modules: str) -> float:
    """Milliseconds the import statement took in a fresh interpreter."""
    code = f"import time\nt = time.perf_counter()\nimport {modules}\nprint(time.perf_counter() - t)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return float(done.stdout) * 1000


def import_breakdown() -> dict[str, float]:
    """Milliseconds per top-level package while importing graffer_secevents (``-X importtime`` cumulative).

    Only a package's outermost entries count (those with no ancestor of the same package): the nested ones
    are already in their cumulative time. ``-X importtime`` lists a module after the modules it imported,
    two spaces deeper per level.
    """
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import graffer_secevents"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    entries: list[tuple[int, str, float]] = []  # (depth, top-level package, cumulative ms)
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, name = line.removeprefix("import time:").split("|")
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        entries.append((depth, name.strip().partition(".")[0], int(cumulative) / 1000))
    parent: dict[int, int] = {}
    waiting: list[int] = []
    for index, (depth, _package, _ms) in enumerate(entries):
        while waiting and entries[waiting[-1]][0] > depth:
            parent[waiting.pop()] = index
        waiting.append(index)
    totals: dict[str, float] = defaultdict(float)
    for index, (_depth, package, ms) in enumerate(entries):
        ancestor = parent.get(index)
        while ancestor is not None and entries[ancestor][1] != package:
            ancestor = parent.get(ancestor)
        if ancestor is None:
            totals[package] += ms
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    breakdowns: list[dict[str, float]] = []
    names = list(VARIANTS)
    for round_number in range(args.rounds):
        for name in names if round_number % 2 == 0 else reversed(names):
            samples[name].append(time_import(VARIANTS[name]))
        breakdowns.append(import_breakdown())

    ratios = [ours / base for ours, base in zip(samples[OURS], samples[BASELINE], strict=True)]
    print(f"{args.rounds} interleaved rounds, one fresh interpreter per sample (the import statement timed)")
    print(f"{'variant':32} {'median ms':>10} {'min':>7} {'max':>7}")
    for name in names:
        values = samples[name]
        print(f"{name:32} {statistics.median(values):10.2f} {min(values):7.2f} {max(values):7.2f}")
    print(
        f"ratio graffer_secevents / (structlog, pydantic), median of rounds: {statistics.median(ratios):.3f}x"
    )

    packages = sorted(
        {p for b in breakdowns for p in b},
        key=lambda p: -statistics.median(b.get(p, 0.0) for b in breakdowns),
    )
    print()
    print("-X importtime, importing graffer_secevents: median cumulative ms per top-level package")
    for package in packages[:12]:
        print(f"  {package:30} {statistics.median(b.get(package, 0.0) for b in breakdowns):8.2f}")
    structlog_share = [
        b.get("structlog", 0.0) / b["graffer_secevents"] for b in breakdowns if b.get("graffer_secevents")
    ]
    share = statistics.median(structlog_share) if structlog_share else 0.0
    without = [
        ours * (1 - s) / base
        for ours, base, s in zip(samples[OURS], samples[BASELINE], structlog_share, strict=False)
    ]
    print(f"structlog's share of the package's import (median): {share:.1%}")
    rich_seen = any("rich" in b for b in breakdowns)
    print(
        f"rich imported by `import graffer_secevents`: {'YES' if rich_seen else 'no'} (the CLI tables only)"
    )
    assert not rich_seen, "the runtime must not import rich (only _tools/terminal.py does)"
    estimate = statistics.median(without)
    print(f"estimated ratio without structlog in _output.py, median of rounds: {estimate:.3f}x")


if __name__ == "__main__":
    main()
