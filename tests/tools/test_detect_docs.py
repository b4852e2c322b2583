"""docs/detect.md tells the truth: its ``<!-- docs-test: run -->`` examples run, and the failure message it
shows is the one the fixture gives."""

from __future__ import annotations

import re
from pathlib import Path

import graffer_secevents as secevents
from graffer_secevents import User
from graffer_secevents.testing import capture_events

PAGE = Path(__file__).resolve().parents[2] / "docs" / "detect.md"
_RUN = re.compile(r"<!-- docs-test: run -->\n```python\n(.*?)^```$", re.M | re.S)


def test_the_pages_examples_run() -> None:
    blocks = _RUN.findall(PAGE.read_text(encoding="utf-8"))
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), {})  # our own documentation


def test_the_failure_message_shown_is_the_real_one() -> None:
    with capture_events() as events:
        for n in range(3):
            secevents.log_login(User(id=100 + n), "failure", "203.0.113.7", exists=True)
        for _ in range(10):
            secevents.log_login(User(id=7), "failure", "198.51.100.66", exists=True)
        try:
            events.assert_detected("credential_stuffing", network__client__ip="203.0.113.7")
        except AssertionError as exc:
            message = str(exc)
    assert f"```text\nAssertionError: {message}\n```" in PAGE.read_text(encoding="utf-8")
