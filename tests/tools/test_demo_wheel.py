"""`secevents demo` from a pip install of the built wheel runs the scenario `make demo` runs, with the same
signals every time; `make demo DEMO_ARGS=--json` writes nothing but JSON lines.

The wheel is built from this checkout (`pip wheel --no-build-isolation`, hatchling from the dev group) and
installed with pip into a fresh virtual environment outside the checkout, with `--no-deps`: the packages it
depends on come from this environment's site-packages, added to the new one's path by a `.pth` file, so the
test needs no index and no network. The installed package, not the checkout, is what runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]


def signals(summary: str) -> list[tuple[str, ...]]:
    """(rule, severity, group, events) of each row of the demo's signal table: no timestamps."""
    table = summary.split("signals the detection rules raise", 1)[1].splitlines()[2:]
    rows = []
    for line in table:
        cells = line.lstrip("#").split()
        if len(cells) >= 4:
            rows.append((cells[0], cells[1], cells[2], cells[-1]))
    return sorted(rows)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `bin` directory of a fresh venv holding the wheel, installed by pip."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp.glob("graffer_secevents-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The dependencies, from this environment: a plain path, so its editable install of the checkout (a
    # .pth file there) is not processed, and the new venv's own site-packages comes first.
    Path(site, "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = subprocess.run(
        [str(python), "-c", "import graffer_secevents; print(graffer_secevents.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp,
    ).stdout
    assert where.startswith(site), where  # the wheel, not the checkout
    return venv / "bin"


def start(secevents: Path, cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECEVENTS_", "DD_", "PYTEST"))}
    return subprocess.Popen(
        [str(secevents), "demo", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return out, err


def test_the_installed_demo_raises_the_signals_of_make_demo(installed: Path, tmp_path: Path) -> None:
    """Run side by side (each demo serves on its own ephemeral ports): the checkout's demo, as `make demo`
    runs it, and the installed one twice, once with --json and once as a person reads it."""
    # `make demo` itself (its recipe echoes nothing, so its stdout is the records alone: pipeable)
    checkout = subprocess.Popen(
        ["make", "--no-print-directory", "demo", "DEMO_ARGS=--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            k: v for k, v in os.environ.items() if not k.startswith(("SECEVENTS_", "DD_", "PYTEST", "MAKE"))
        },
    )
    wheel_json = start(installed / "secevents", tmp_path, "--json")
    wheel_readable = start(installed / "secevents", tmp_path)

    out, err = finish(checkout)
    expected = signals(err)
    assert {row[0] for row in expected} >= {"brute_force", "brute_force_success", "credential_stuffing"}
    records = [orjson.loads(line) for line in out.splitlines()]  # every line a record: nothing echoed

    out, err = finish(wheel_json)
    assert signals(err) == expected, err
    assert len(out.splitlines()) == len(records)  # every record, delivered before the summary
    assert "serving on http://127.0.0.1:" in err and "calling the API directly" not in err
    assert "token API part skipped" not in err  # the Django example travels in the wheel too
    assert "site-packages" not in err + out and str(tmp_path) not in err

    out, err = finish(wheel_readable)
    assert signals(err) == expected, err
    lines = out.splitlines()
    assert len(lines) == len(records) and not any(line.startswith("{") for line in lines)
    assert any(re.match(r"\d\d:\d\d:\d\d WARN +authn_login_fail +failure usr=1001 ", line) for line in lines)
