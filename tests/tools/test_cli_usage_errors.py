"""The usage errors a newcomer hits first, run as the console script: a misspelt option names the command,
shows that command's usage (not the top level's) and suggests the closest option; status 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SECEVENTS = Path(sys.executable).parent / "secevents"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("detect", "--fial-on", "high", "app.log"),
            "unrecognized arguments: --fial-on (did you mean --fail-on?)",
        ),
        (("validate", "app.log", "--strcit"), "unrecognized arguments: --strcit (did you mean --strict?)"),
        (
            ("rules", "--servce=auth-api"),
            "unrecognized arguments: --servce=auth-api (did you mean --service?)",
        ),
        (("schema", "--format", "json"), "unrecognized arguments: --format json"),  # nothing close: no guess
    ],
)
def test_a_misspelt_option_is_named_with_the_closest_one(args: tuple[str, ...], expected: str) -> None:
    result = subprocess.run([str(SECEVENTS), *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"usage: secevents {args[0]} "), result.stderr
    assert f"secevents {args[0]}: error: {expected}\n" in result.stderr, result.stderr
