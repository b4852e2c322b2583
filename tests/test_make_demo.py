"""`make demo` prints nothing but the demo's output (make echoes no command), so `make demo DEMO_ARGS=--json |
jq` reads JSON lines only; on its first run it says, on stderr, that it is creating the environment."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def recipe(target: str) -> list[str]:
    text = (ROOT / "Makefile").read_text()
    block = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", text, re.M)
    assert block is not None, target
    return [line[1:] for line in block.group(1).splitlines()]


def test_the_environment_recipe_is_silent_and_says_what_it_does_on_stderr() -> None:
    lines = recipe("$(STAMP)")
    assert all(line.startswith("@") for line in lines), lines
    assert "creating the environment" in lines[0] and lines[0].endswith(">&2")
    assert all(line.endswith(">&2") for line in lines if "pip install" in line or "-m venv" in line)


def test_the_demo_recipe_echoes_nothing() -> None:
    """Run for real by tests/tools/test_demo_wheel.py, whose `make demo DEMO_ARGS=--json` must be JSON only."""
    assert all(line.startswith("@") for line in recipe("demo"))
