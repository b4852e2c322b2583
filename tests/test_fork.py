"""A fork the interpreter did not see (`fork(2)` from C: uWSGI's workers without `--lazy-apps`).

`os.register_at_fork` hooks do not run there; `_fork.check` runs them at the child's first event, flush or
request id. `ctypes.PyDLL(None).fork` is such a fork, made from Python (PyDLL keeps the GIL across the call,
so the child has it, as uWSGI's workers do).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="fork(2) through ctypes: Linux")

SCRIPT = """
    import ctypes, json, os, sys
    import graffer_secevents as secevents
    from graffer_secevents import _delivery
    from graffer_secevents._request_id import new_request_id

    secevents.configure(service="fork-test", metrics="none", hash_key="k" * 16, output=sys.argv[1])
    secevents.log_login("parent-before", "failure")  # the parent's writer thread is running at the fork
    assert secevents.flush(5)
    pid = ctypes.PyDLL(None).fork()  # no os.register_at_fork hook runs in the child
    if pid == 0:
        ids = [new_request_id()]
        secevents.log_login("child-1", "failure")
        secevents.log_login("child-2", "failure", password="hunter2")
        with open(sys.argv[2], "w") as report:
            json.dump({"ids": ids, "flushed": secevents.flush(5), "dropped": _delivery.dropped()}, report)
        os._exit(0)  # skips atexit: the child's drain and end record still come first
    _, status = os.waitpid(pid, 0)
    ids = [new_request_id()]
    secevents.log_login("parent-after", "failure")
    with open(sys.argv[3], "w") as report:
        json.dump({"ids": ids, "status": status}, report)
"""


def test_a_child_forked_in_c_is_a_writer_of_its_own_and_drains_at_its_exit(tmp_path: Path) -> None:
    out, child, parent = tmp_path / "events.log", tmp_path / "child.json", tmp_path / "parent.json"
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(out), str(child), str(parent)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    child_report, parent_report = json.loads(child.read_text()), json.loads(parent.read_text())
    assert parent_report["status"] == 0
    assert child_report["flushed"] is True and child_report["dropped"] == {}
    assert child_report["ids"] != parent_report["ids"]  # the child's generator was seeded again

    text = out.read_text()
    assert "hunter2" not in text
    records = [json.loads(line) for line in text.splitlines()]
    by_writer: dict[str, list[dict[str, object]]] = {}
    for record in records:
        by_writer.setdefault(record["secevents"]["writer"], []).append(record)
    users = {w: [r["usr"]["id"] for r in rs if "usr" in r] for w, rs in by_writer.items()}
    assert sorted(users.values()) == [["child-1", "child-2"], ["parent-before", "parent-after"]]
    for written in by_writer.values():
        assert [r["secevents"]["seq"] for r in written] == [1, 2, 3]  # numbered per writer, from 1
        assert written[-1]["secevents"].get("end") is True  # each ended cleanly: its last is an end record

    verify = subprocess.run(
        [sys.executable, "-m", "graffer_secevents._tools.cli", "verify", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
