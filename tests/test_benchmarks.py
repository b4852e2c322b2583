"""The benchmark scripts still run (a smoke test with tiny batches; the numbers are not looked at).

``bench_middleware.py`` also checks, before timing, that each ``*_secevents``, ``*_floor`` and peer variant
really echoes (or, for the peers that do not echo, sets) its request id, so a benchmark that silently stopped
doing the work fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

CASES = {
    "bench_core.py": ["--rounds", "1", "--batch", "5"],
    "bench_account_changes.py": ["--rounds", "1", "--batch", "3"],
    "bench_delivery.py": ["--rounds", "1", "--batch", "5"],
    "bench_metrics.py": ["--rounds", "1", "--batch", "0.001"],
    "bench_import.py": ["--rounds", "1"],
    "bench_bridges.py": ["--rounds", "1", "--batch", "200"],
    "bench_asgi_parts.py": ["--rounds", "1", "--batch", "5"],
    "bench_middleware.py": ["--processes", "2", "--rounds", "1", "--batch", "3"],
    "bench_detect.py": ["--rounds", "1", "--batch", "2000"],
    "bench_drf_seams.py": ["--rounds", "2", "--batch", "5"],
    "bench_origin.py": ["--rounds", "1", "--batch", "5"],
    "bench_hostile.py": ["--rounds", "1", "--batch", "2"],
    "bench_detect_scale.py": ["--records", "3000"],
    "whatif_render_on_writer.py": ["--rounds", "1", "--batch", "5"],
}


@pytest.mark.parametrize("script", sorted(CASES))
def test_benchmark_runs(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *CASES[script]],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    measured = [line for line in done.stdout.splitlines() if re.search(r"\d+\.\d+", line)]
    assert len(measured) >= 3, done.stdout[-3000:]  # a table of numbers was printed


def test_middleware_benchmark_covers_every_framework_and_the_floors() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_middleware.py"), "--processes", "1", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    rows = {line.split("|")[1].strip() for line in done.stdout.splitlines() if line.startswith("| ")}
    for framework in ("django", "fastapi", "flask"):
        for variant in ("none", "secevents", "contextvar", "floor"):
            assert f"{framework}_{variant}" in rows
    assert "fastapi_basehttp" in rows
    assert {"fastapiauth_none", "fastapiauth_secevents"} <= rows  # a dependency-authenticated request
    # The peers a team would otherwise install, each checked (before timing) to echo or set its request id.
    checked = {
        line.removeprefix("request id checked: ").split(":")[0]
        for line in done.stdout.splitlines()
        if line.startswith("request id checked: ")
    }
    peers = {
        "fastapi_asgi_correlation_id",
        "fastapi_starlette_context",
        "django_guid",
        "django_structlog",
        "flask_log_request_id",
    }
    assert peers <= rows
    assert (
        peers
        | {f"{f}_{v}" for f in ("django", "fastapi", "flask") for v in ("secevents", "floor")}
        | {"fastapiauth_secevents"}
        == checked
    )
