"""Every exit path drains or counts; every line is one atomic write; a torn write never glues two records.

Real processes, real pipes and files: each scenario runs in a child interpreter (see `_script`), because what
is tested is what happens when a process ends.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import graffer_secevents as api
from graffer_secevents import _delivery
from graffer_secevents._context import RequestContext, request_context
from graffer_secevents._delivery import MAX_LINE_BYTES
from graffer_secevents._tools.schema import check_record
from graffer_secevents._tools.verify import verify_lines

# The largest record one request can make: every request field the library reads at its 1,024-character
# limit, made of the characters JSON escaping inflates most (6 bytes each), and caller metadata too.
HOSTILE = "\x01\x02\x1f\x7f\u2028" * 204


@pytest.fixture(autouse=True)
def _fresh_counters() -> Iterator[None]:
    """Each in-process test counts drops as a fresh process would."""
    api.flush(timeout=10)
    _delivery._reset_for_tests()
    yield
    api.flush(timeout=10)
    _delivery._reset_for_tests()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECEVENTS_")}
    env.update(SECEVENTS_METRICS="none", SECEVENTS_HASH_KEY="test-key-0123456789", **extra)
    return env


def _script(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def _summary(stderr: bytes) -> dict[str, int]:
    """The drops a process reported on stderr when it exited (summed over its processes)."""
    counts: dict[str, int] = {}
    last: dict[bytes, bytes] = {}  # a process may say it twice (lifespan, then SIGTERM): its last word
    for match in re.finditer(
        rb"graffer_secevents\[(\d+)\]: .*dropped in this process, by reason: ([a-z_: ,0-9]+)", stderr
    ):
        last[match.group(1)] = match.group(2)
    for said in last.values():
        for part in said.decode().split(", "):
            reason, _, n = part.partition(": ")
            counts[reason] = counts.get(reason, 0) + int(n)
    return counts


def _records(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in data.splitlines()]


def _events(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if "evt" in r]


# --- atomic lines ---------------------------------------------------------------------------------------------


def _largest(n: int) -> None:
    ctx = RequestContext(
        client_ip="203.0.113.9",
        method=HOSTILE,
        path=HOSTILE,
        route=HOSTILE,
        user_agent=HOSTILE,
        request_id=HOSTILE,
        status_code=403,
    )
    with request_context(ctx):
        api.log_login(
            f"user-{n}-{HOSTILE[:1000]}",
            "failure",
            login=HOSTILE,
            reason="invalid_credentials",
            context={f"k{i}-{HOSTILE[:40]}": [HOSTILE, {"deep": HOSTILE}] for i in range(60)},
            note=HOSTILE,
        )


@pytest.mark.parametrize("strict", [False, True])
def test_the_largest_record_a_request_makes_fits_one_atomic_write(strict: bool) -> None:
    stream = io.BytesIO()
    api.configure(output=stream, metrics="none", strict=strict, delivery="sync", integrity_key="k" * 16)
    try:
        if strict:
            # Caller metadata over its budget is the application's mistake: strict mode says so (the request
            # fields a client controls never raise; the non-strict case shows the whole record fitted).
            with pytest.raises(api.EventValidationError, match="caller metadata"):
                _largest(1)
            api.log_login("plain", "failure", "198.51.100.4", reason="invalid_credentials")
            [plain] = stream.getvalue().splitlines(keepends=True)
            assert "errors" not in orjson.loads(plain)["secevents"]
            return
        _largest(1)
        api.log_login("plain", "failure", "198.51.100.4", reason="invalid_credentials")
    finally:
        api.configure(reset=True)
    big, plain = stream.getvalue().splitlines(keepends=True)
    assert len(big) <= MAX_LINE_BYTES and len(plain) <= MAX_LINE_BYTES
    record = orjson.loads(big)
    assert check_record(record) == []
    # The event, the user and the client IP are kept; what was shrunk is noted.
    assert record["evt"]["type"] == "authn_login_fail" and record["evt"]["outcome"] == "failure"
    assert record["usr"]["id"].startswith("user-1-")
    assert record["network"]["client"]["ip"] == "203.0.113.9"
    notes = record["secevents"]["errors"]
    assert any("bytes" in n and "4096-byte write" in n for n in notes), notes
    assert "context" not in record or len(orjson.dumps(record["context"])) < 4096
    # An ordinary record is untouched.
    assert "errors" not in orjson.loads(plain)["secevents"]


def test_four_processes_writing_the_largest_records_into_one_pipe_write_no_invalid_line() -> None:
    code = f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import graffer_secevents as api
        from test_delivery_exit import _largest
        api.configure(metrics="none")
        for n in range(150):
            _largest(n)
    """
    read_end, write_end = os.pipe()
    procs = [
        subprocess.Popen(_script(code), stdout=write_end, stderr=subprocess.PIPE, env=_env())
        for _ in range(4)
    ]
    os.close(write_end)
    data = bytearray()
    while chunk := os.read(read_end, 1 << 16):
        data += chunk
    os.close(read_end)
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    lines = bytes(data).splitlines()
    invalid = [line for line in lines if not _parses(line)]
    assert invalid == []
    records = _events(_records(bytes(data)))
    assert len(records) == 600 and all(check_record(r) == [] for r in records)
    report = verify_lines(lines)
    assert len(report.writers) == 4 and report.ok(), report.text()


def _parses(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def test_a_disk_that_fills_mid_record_and_recovers_leaves_no_record_glued(tmp_path: Path) -> None:
    # RLIMIT_FSIZE stands in for a full disk (unprivileged, and the same as root): a write past the limit is
    # cut short, the next fails with EFBIG; raising the limit again is the disk recovering.
    path = tmp_path / "events.log"
    code = """
        import resource, signal, sys
        import graffer_secevents as api
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process at the limit
        api.configure(metrics="none")
        for n in range(5):
            api.log_logout(f"before-{n}")
        api.flush(5)
        size = sys.stdout.buffer.seek(0, 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 150, resource.RLIM_INFINITY))  # mid-record
        for n in range(5):
            api.log_logout(f"full-{n}")
        api.flush(5)
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        for n in range(5):
            api.log_logout(f"after-{n}")
        api.flush(5)
    """
    with open(path, "wb") as out:
        result = subprocess.run(
            _script(code), check=False, stdout=out, stderr=subprocess.PIPE, env=_env(), timeout=60
        )
    assert result.returncode == 0, result.stderr
    lines = path.read_bytes().splitlines()
    torn = [n for n, line in enumerate(lines) if not _parses(line)]
    assert len(torn) == 1  # the record cut by the full disk, alone on its line
    after = [orjson.loads(line) for line in lines[torn[0] + 1 :]]
    assert [r["usr"]["id"] for r in after if "usr" in r] == [f"after-{n}" for n in range(5)]
    assert after[0]["secevents"]["dropped_before"] == 5  # the five written while the disk was full
    assert _summary(result.stderr) == {"write_error": 5}
    report = verify_lines(lines)
    (writer,) = report.writers.values()
    assert writer.missing == [] and writer.counted_drops == 5 and writer.clean_end
    assert report.unparseable == [torn[0] + 1]


def test_a_partial_write_to_a_raw_file_is_resumed_not_lost(tmp_path: Path) -> None:
    class Trickle(io.RawIOBase):
        """A raw stream that takes 100 bytes per write."""

        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:
            taken = bytes(b[:100])
            self.data += taken
            return len(taken)

    stream = Trickle()
    api.configure(output=stream, metrics="none", delivery="queue")
    try:
        for n in range(50):
            api.log_logout(n)
        assert api.flush(10)
    finally:
        api.configure(reset=True)
    assert [r["usr"]["id"] for r in _records(bytes(stream.data))] == [str(n) for n in range(50)]


# --- exit paths -------------------------------------------------------------------------------------------------

_STALLED = """
    import os, signal, sys, time
    signal.signal(signal.SIGHUP, signal.SIG_DFL)  # as in a terminal, whatever the test runner inherited
    import graffer_secevents as api
    api.configure(metrics="none", queue_size={queue})
    for n in range({emitted}):
        api.log_logout(n)
    os.write(2, b"READY\\n")
    time.sleep(60)
"""


def _run_until_ready(code: str, stdout: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(_script(code), stdout=stdout, stderr=subprocess.PIPE, env=_env())
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert line == b"READY\n", line + proc.stderr.read()
    return proc


def test_sigterm_with_a_stalled_reader_writes_or_counts_every_record() -> None:
    """SIGTERM's default action skips atexit: the library's handler drains (5 s), counts the queue and the
    batch the writer holds, then dies of the signal as before."""
    read_end, write_end = os.pipe()
    try:
        proc = _run_until_ready(_STALLED.format(queue=20_000, emitted=3000), write_end)
        os.close(write_end)
        write_end = -1
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGTERM  # it still dies of the signal
        data = bytearray()
        while chunk := os.read(read_end, 1 << 16):
            data += chunk
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    written = _events(_records(bytes(data)))
    counted = _summary(err)
    assert set(counted) == {"exit"} and counted["exit"] > 0
    assert len(written) + counted["exit"] == 3000
    ids = [int(r["usr"]["id"]) for r in written]
    assert ids == list(range(len(written)))  # the oldest were written, in order
    (writer,) = verify_lines(bytes(data).splitlines()).writers.values()
    assert not writer.clean_end and writer.missing == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_with_a_reader_drains_and_ends_cleanly(sig: signal.Signals) -> None:
    """SIGHUP (a closed terminal or SSH session, `kill -HUP`) ends a process without `atexit` as SIGTERM
    does: without a handler, 193 records of 3,000 reached the pipe and nothing said so."""
    read_end, write_end = os.pipe()
    data = bytearray()

    def read() -> None:
        while chunk := os.read(read_end, 1 << 16):
            data.extend(chunk)

    reader = threading.Thread(target=read)
    try:
        proc = subprocess.Popen(
            _script(_STALLED.format(queue=20_000, emitted=3000)),
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=_env(),
        )
        os.close(write_end)
        write_end = -1
        reader.start()
        assert proc.stderr is not None
        assert proc.stderr.readline() == b"READY\n"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        reader.join(30)
        assert proc.returncode == -sig, err
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    records = _records(bytes(data))
    assert len(_events(records)) == 3000 and records[-1]["secevents"]["end"] is True
    assert verify_lines(bytes(data).splitlines()).ok()


def test_a_handler_of_the_application_is_never_replaced() -> None:
    code = """
        import signal
        def mine(*_): pass
        signal.signal(signal.SIGTERM, mine)
        import graffer_secevents as api
        api.log_logout(1)
        api.flush(5)
        print(signal.getsignal(signal.SIGTERM) is mine)
    """
    result = subprocess.run(_script(code), check=False, capture_output=True, env=_env(), timeout=60)
    assert result.stdout.splitlines()[-2] == b"True"  # then the end record


_POOL = """
    import multiprocessing, os, sys
    import graffer_secevents as api

    def work(k):
        for n in range(200):
            api.log_logout(f"{{k}}-{{n}}")
        return os.getpid()

    if __name__ == "__main__":
        api.configure(metrics="none")
        api.log_logout("parent")
        ctx = multiprocessing.get_context({method!r})
        with ctx.Pool(2) as pool:
            pids = pool.map(work, range(4))
            pool.close()
            pool.join()
        proc = ctx.Process(target=work, args=(9,))
        proc.start()
        proc.join()
        assert proc.exitcode == 0
"""


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_multiprocessing_children_write_everything_they_emit(method: str, tmp_path: Path) -> None:
    script = tmp_path / "pool_script.py"
    script.write_text(textwrap.dedent(_POOL.format(method=method)))
    result = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, str(script)], capture_output=True, env=_env(), timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    records = _records(result.stdout)
    ids = sorted(r["usr"]["id"] for r in _events(records))
    expected = sorted(["parent"] + [f"{k}-{n}" for k in [0, 1, 2, 3, 9] for n in range(200)])
    assert ids == expected
    report = verify_lines(result.stdout.splitlines())
    assert report.ok(), report.text()  # every writer (the parent, each worker) ended cleanly
    assert len(report.writers) >= 3
    assert b"could not write" not in result.stderr


def test_configure_keeps_the_pending_loss_marker() -> None:
    class Failing(io.StringIO):
        fail = True

        def write(self, text: str) -> int:
            if self.fail:
                raise OSError(5, "Input/output error")
            return super().write(text)

    stream = Failing()
    api.configure(output=stream, metrics="none", delivery="sync")
    try:
        api.log_logout("lost")
        stream.fail = False
        api.configure(service="reconfigured")  # a new configuration, the same output
        api.log_logout("kept")
    finally:
        api.configure(reset=True)
    (record,) = _records(stream.getvalue().encode())
    assert record["usr"]["id"] == "kept" and record["secevents"]["dropped_before"] == 1
    assert _delivery.dropped() == {"write_error": 1}
    _delivery._reset_for_tests()


def test_a_forked_child_with_a_buffered_file_writes_its_own_records(tmp_path: Path) -> None:
    """Forks taken while the parent's writer is inside the buffered file's write (its io lock held, its
    buffer half full): each child's records still reach the file, once, and its flush() is true."""
    path = tmp_path / "events.log"
    code = f"""
        import os
        import graffer_secevents as api
        out = open({str(path)!r}, "ab")  # buffered
        api.configure(output=out, metrics="none")
        statuses = []
        for k in range(8):
            for n in range(500):
                api.log_logout(f"parent-{{k}}-{{n}}")
            pid = os.fork()  # the writer is busy with the records just queued
            if pid == 0:
                for n in range(20):
                    api.log_logout(f"child-{{k}}-{{n}}")
                os._exit(0 if api.flush(10) else 3)
            statuses.append(os.waitpid(pid, 0)[1])
        assert api.flush(10)
        print(statuses)
    """
    result = subprocess.run(_script(code), check=False, capture_output=True, env=_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == b"[0, 0, 0, 0, 0, 0, 0, 0]"
    records = _events(_records(path.read_bytes()))
    ids = sorted(r["usr"]["id"] for r in records)
    parents = [f"parent-{k}-{n}" for k in range(8) for n in range(500)]
    assert ids == sorted(parents + [f"child-{k}-{n}" for k in range(8) for n in range(20)])


@pytest.mark.parametrize("output", ["slow", "stuck"])
def test_a_forked_child_ending_with_os_exit_drains_or_counts_and_ends_cleanly(
    output: str, tmp_path: Path
) -> None:
    """RQ's work horse (and any pre-forking server) ends each forked child with `os._exit`, which skips
    `atexit`: what the child queued is still written, with its end record, or counted as `exit` on stderr."""
    path = tmp_path / "events.log"
    code = f"""
        import os, time
        import graffer_secevents as api
        PARENT = os.getpid()

        class Slow:
            mode = "ab"
            def write(self, data):
                if os.getpid() != PARENT:
                    time.sleep(0.3 if {output!r} == "slow" else 60)
                with open({str(path)!r}, "ab") as f:
                    f.write(data)

        api.configure(output=Slow(), metrics="none")
        api.log_logout("parent")
        assert api.flush(10)
        pid = os.fork()
        if pid == 0:
            for n in range(200):
                api.log_logout(f"child-{{n}}")
            os._exit(7)  # at once: the writer has not written the first batch yet
        print(os.waitpid(pid, 0)[1] >> 8)
    """
    started = time.monotonic()
    result = subprocess.run(_script(code), check=False, capture_output=True, env=_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b"7"]  # the child's own status is kept
    records = _records(path.read_bytes())
    child = [r for r in _events(records) if r["usr"]["id"].startswith("child-")]
    if output == "slow":
        assert sorted(r["usr"]["id"] for r in child) == sorted(f"child-{n}" for n in range(200))
        writer = child[0]["secevents"]["writer"]
        ends = [r for r in records if r["secevents"].get("end") and r["secevents"]["writer"] == writer]
        assert len(ends) == 1
        assert verify_lines(path.read_bytes().splitlines()).ok()
    else:  # the drain waits its 5 s, then counts what it could not write
        assert child == []
        assert _summary(result.stderr) == {"exit": 200}
        assert time.monotonic() - started < 30


@pytest.mark.parametrize("delivery", ["sync", "queue"])
def test_an_event_emitted_by_a_signal_handler_mid_event_is_written_after_it(delivery: str) -> None:
    """A signal handler runs on the main thread between two bytecodes, wherever it was: here inside the
    write of a synchronous record (the output's lock held) or the first queued one (the writer starting).
    An event it emits waits for the interrupted one instead of waiting forever for its lock."""
    code = f"""
        import io, os, signal, sys
        import graffer_secevents as api
        n = [0]

        def handler(signum, frame):
            n[0] += 1
            api.log_logout(f"handler-{{n[0]}}")

        class Out(io.RawIOBase):
            def writable(self):
                return True
            def write(self, data):
                if b'"main-' in bytes(data):
                    signal.raise_signal(signal.SIGUSR1)  # the handler runs here, the output's lock held
                view = memoryview(data)
                while view:  # a signal may cut a write to the pipe short
                    view = view[os.write(1, view) :]
                return len(data)

        signal.signal(signal.SIGUSR1, handler)
        api.configure(output=Out(), delivery={delivery!r}, metrics="none")
        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)  # and a timer that lands anywhere
        for i in range(3000):
            api.log_logout(f"main-{{i}}")
        signal.setitimer(signal.ITIMER_REAL, 0)
        assert api.flush(10)
        print(n[0], file=sys.stderr)
    """
    result = subprocess.run(_script(code), check=False, capture_output=True, env=_env(), timeout=30)
    assert result.returncode == 0, result.stderr[-2000:]
    handled = int(result.stderr.split()[-1])
    ids = [r["usr"]["id"] for r in _events(_records(result.stdout))]
    assert [i for i in ids if i.startswith("main-")] == [f"main-{i}" for i in range(3000)]
    assert sorted(i for i in ids if i.startswith("handler-")) == sorted(
        f"handler-{n}" for n in range(1, handled + 1)
    )
    assert handled >= (3000 if delivery == "sync" else 1)  # sync: one per record at least; queue: per batch
    assert b"internal error" not in result.stderr


def test_sigterm_while_the_main_thread_holds_a_metrics_lock_still_drains_and_dies() -> None:
    """SIGTERM lands wherever the main thread is, perhaps inside the DogStatsD counter's lock (held for a
    dict update per event): the drain runs beside it, bounded, and the process still dies of SIGTERM."""
    code = """
        import os, signal, socket, time
        import graffer_secevents as api
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        os.environ["DD_DOGSTATSD_URL"] = f"udp://127.0.0.1:{sink.getsockname()[1]}"
        api.configure(metrics="dogstatsd")
        for i in range(200):
            api.log_logout(f"main-{i}")
        backend = api.get_config().metrics
        with backend._counts_lock:  # as if SIGTERM came in the middle of count()
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        print("not reached")
    """
    started = time.monotonic()
    result = subprocess.run(_script(code), check=False, capture_output=True, env=_env(), timeout=60)
    assert result.returncode == -signal.SIGTERM, result.stderr[-2000:]
    assert time.monotonic() - started < 20
    records = _records(result.stdout)
    assert [r["usr"]["id"] for r in _events(records)] == [f"main-{i}" for i in range(200)]
    assert records[-1]["secevents"].get("end") is True


@pytest.mark.parametrize("delivery", ["queue", "sync"])
def test_events_emitted_after_the_exit_drain_are_written_and_end_cleanly(delivery: str) -> None:
    """After the library's exit drain: an `atexit` handler registered before the library was imported (it
    runs later), and a `__del__` at interpreter teardown. Their events are written, and an end record follows
    them, so `verify` sees a clean end."""
    code = f"""
        import atexit

        def early():
            s.log_logout("atexit-late")

        atexit.register(early)
        import weakref
        import graffer_secevents as s
        s.configure(delivery={delivery!r}, metrics="none")

        class Held:
            def __del__(self):
                s.log_logout("del-at-teardown")

        held = Held()
        class Anchor:
            pass

        anchor = Anchor()
        weakref.finalize(anchor, s.log_logout, "finalize")
        for n in range(50):
            s.log_logout(f"main-{{n}}")
    """
    result = subprocess.run(_script(code), check=False, capture_output=True, env=_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    records = _records(result.stdout)
    ids = [r["usr"]["id"] for r in _events(records)]
    assert ids[:50] == [f"main-{n}" for n in range(50)]
    assert sorted(ids[50:]) == ["atexit-late", "del-at-teardown", "finalize"]
    assert records[-1]["secevents"].get("end") is True
    report = verify_lines(result.stdout.splitlines())
    assert report.ok(), report.text()


@pytest.mark.parametrize("delivery", ["queue", "sync"])
def test_daemon_threads_emitting_through_the_exit_leave_a_clean_end(delivery: str) -> None:
    """A task queue's daemon worker threads (Huey's thread workers after SIGTERM) go on emitting while the
    interpreter exits, during the exit drain and after it: what they write is numbered without a gap and an
    end record still comes last."""
    code = f"""
        import threading, time
        import graffer_secevents as api
        api.configure(delivery={delivery!r}, metrics="none")

        def spin(k):
            n = 0
            while True:
                api.log_logout(f"t{{k}}-{{n}}")
                n += 1
                time.sleep(0.0005)

        for k in range(3):
            threading.Thread(target=spin, args=(k,), daemon=True).start()
        time.sleep(0.3)
    """
    result = subprocess.run(_script(code), check=False, capture_output=True, env=_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    records = _records(result.stdout)
    assert len(_events(records)) > 100
    assert records[-1]["secevents"].get("end") is True
    report = verify_lines(result.stdout.splitlines())
    assert report.ok(), report.text()


def test_a_fork_while_another_thread_configures_never_deadlocks_the_child() -> None:
    code = """
        import os, threading, time
        import graffer_secevents as api
        stop = False
        def churn():
            while not stop:
                api.configure(service="churn", metrics="none")
        threading.Thread(target=churn, daemon=True).start()
        for attempt in range(40):
            pid = os.fork()
            if pid == 0:
                api.configure(service="child", metrics="none", delivery="sync")
                api.log_logout("child")
                os._exit(0)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                time.sleep(0.01)
            else:
                os.kill(pid, 9)
                raise SystemExit(f"child {attempt} deadlocked")
            assert status == 0, status
        stop = True
        print("OK")
    """
    result = subprocess.run(_script(code), check=False, capture_output=True, env=_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert b"OK" in result.stdout


def test_the_queue_is_bounded_in_bytes() -> None:
    release = threading.Event()

    class Stuck(io.StringIO):
        def write(self, text: str) -> int:
            release.wait(30)
            return super().write(text)

    stream = Stuck()
    api.configure(output=stream, metrics="none", queue_bytes=64 * 1024, queue_size=100_000, delivery="queue")
    try:
        for n in range(2000):
            api.log_logout(n)
        counted = _delivery.dropped()["queue_full"]
        assert _delivery._state.queued_bytes <= 64 * 1024 + 4096  # the queue, besides the writer's batch
        # About 64 KiB of ~400-byte records queued, besides the batch the writer took before it got stuck.
        assert 1400 < counted < 2000
        release.set()
        assert api.flush(10)
    finally:
        release.set()
        api.configure(reset=True)
    written = _events(_records(stream.getvalue().encode()))
    assert len(written) + counted == 2000
    _delivery._reset_for_tests()


# --- what a reader can see -------------------------------------------------------------------------------------


def test_verify_finds_the_run_removed_from_the_output_of_a_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    code = """
        import os, time
        import graffer_secevents as api
        api.configure(metrics="none")
        n = 0
        while True:
            api.log_logout(n)
            n += 1
            if n == 1500:
                os.write(2, b"READY\\n")
            if n % 100 == 0:
                time.sleep(0.001)
    """
    with open(path, "wb") as out:
        proc = _run_until_ready(code, out.fileno())
        time.sleep(0.2)
        proc.kill()
        proc.communicate(timeout=30)
    lines = path.read_bytes().splitlines()
    if lines and not _parses(lines[-1]):
        lines = lines[:-1]  # a kill -9 in the middle of a write: not what this test is about
    assert len(lines) > 1000
    removed = lines[400:437]
    kept = lines[:400] + lines[437:]
    first_gone = orjson.loads(removed[0])["secevents"]["seq"]
    last_gone = orjson.loads(removed[-1])["secevents"]["seq"]
    last = orjson.loads(kept[-1])["secevents"]["seq"]

    result = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, "-m", "graffer_secevents._tools.cli", "verify", "-", "--format", "json"],
        input=b"\n".join(kept) + b"\n",
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    (writer,) = report["writers"]
    assert writer["missing"] == [[first_gone, last_gone]] and last_gone - first_gone + 1 == 37
    assert writer["clean_end"] is False and writer["last_seq"] == last
    text = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, "-m", "graffer_secevents._tools.cli", "verify", "-"],
        input=b"\n".join(kept) + b"\n",
        capture_output=True,
        timeout=60,
    ).stdout.decode()
    assert f"missing: seq {first_gone}..{last_gone} (37 records)" in text
    assert f"no clean end after seq {last}" in text


def _chained(n: int, key: str) -> list[bytes]:
    """What a real process writes on its stdout pipe with an integrity key: `n` records, then the end record
    its exit path writes (a process of its own, so no other test's state can take part)."""
    code = f"""
        import graffer_secevents as api
        api.configure(delivery="sync", integrity_key={key!r})
        for i in range({n}):
            api.log_logout(i)
    """
    done = subprocess.run(_script(code), capture_output=True, env=_env(), timeout=60, check=True)
    return done.stdout.splitlines()


def _tamper(lines: list[bytes], how: str) -> tuple[list[bytes], int]:
    """The lines tampered with, and the seq where the chain must break."""
    lines = list(lines)
    if how == "altered":
        lines[5] = lines[5].replace(b'"id":"5"', b'"id":"6"')
        return lines, 6
    if how == "deleted":
        del lines[5]
        return lines, 7
    if how == "reordered":
        lines[5], lines[6] = lines[6], lines[5]
        return lines, 7
    if how == "inserted":  # a record copied from elsewhere in the log, its number changed to fit
        forged = lines[2].replace(b'"seq":3,', b'"seq":6,')
        later = [
            line.replace(b'"seq":%d,' % n, b'"seq":%d,' % (n + 1)) for n, line in enumerate(lines[5:], 6)
        ]
        return [*lines[:5], forged, *later], 6
    if how == "end_truncated":
        return lines[:-1], 0
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["altered", "deleted", "reordered", "inserted"])
def test_verify_with_the_key_finds_every_tampered_record(how: str) -> None:
    lines = _chained(12, "audit-key-0123456789")
    assert verify_lines(lines, b"audit-key-0123456789").ok()
    tampered, breaks_at = _tamper(lines, how)
    report = verify_lines(tampered, b"audit-key-0123456789")
    (writer,) = report.writers.values()
    assert not report.ok()
    assert breaks_at in writer.chain_breaks, report.text()
    # The wrong key finds every record broken; no key finds what the numbers alone show.
    assert len(next(iter(verify_lines(lines, b"other").writers.values())).chain_breaks) == 13


def test_verify_without_a_key_sees_numbers_and_the_end() -> None:
    lines = _chained(12, "audit-key-0123456789")
    del lines[3:5]
    report = verify_lines(lines)
    (writer,) = report.writers.values()
    assert writer.missing == [(4, 5)] and writer.clean_end and not report.ok()
    truncated = verify_lines(lines[:-1])
    assert not next(iter(truncated.writers.values())).clean_end


def test_every_record_carries_its_writer_and_a_gap_free_number(tmp_path: Path) -> None:
    stream = io.BytesIO()
    api.configure(output=stream, metrics="none", delivery="queue")
    try:
        threads = [threading.Thread(target=lambda: [api.log_logout(i) for i in range(300)]) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert api.flush(10)
    finally:
        api.configure(reset=True)
    records = _records(stream.getvalue())
    assert [r["secevents"]["seq"] for r in records] == list(range(1, 1201))
    assert len({r["secevents"]["writer"] for r in records}) == 1
    assert all(check_record(r) == [] for r in records)


def test_a_ctrl_c_that_lands_in_the_writer_under_gevent_still_stops_the_main_greenlet() -> None:
    """Under gevent's monkey-patching the writer is a greenlet of the main thread, so Ctrl-C's
    KeyboardInterrupt lands in it when it runs at that moment (seen with `gevent.pywsgi.WSGIServer`): it
    must reach the main greenlet (where `serve_forever` waits), not be taken for a failed write and
    swallowed, which left the server running after Ctrl-C. The writer lives on and writes what follows."""
    pytest.importorskip("gevent")
    code = """
        from gevent import monkey; monkey.patch_all()
        import io, sys, gevent
        import graffer_secevents as secevents

        class Interrupted(io.StringIO):
            raised = False
            def write(self, text):
                if not Interrupted.raised:
                    Interrupted.raised = True
                    raise KeyboardInterrupt  # a SIGINT handled while the writer greenlet runs
                return sys.__stdout__.write(text)

        secevents.configure(delivery="queue", output=Interrupted())
        try:
            secevents.log_login("ada", "failure")
            gevent.sleep(5)  # serve_forever(), in the main greenlet
            print("NOT INTERRUPTED", flush=True)
        except KeyboardInterrupt:
            print("INTERRUPTED", flush=True)
        secevents.log_login("bob", "failure")
        print("FLUSHED", secevents.flush(5), flush=True)
    """
    result = subprocess.run(_script(code), env=_env(), capture_output=True, timeout=60, check=False)
    out = result.stdout.decode()
    assert "INTERRUPTED" in out and "NOT INTERRUPTED" not in out, (out, result.stderr)
    assert "FLUSHED True" in out
    assert [
        r["usr"]["id"]
        for r in _events(
            _records(b"\n".join(line for line in result.stdout.splitlines() if line.startswith(b"{")))
        )
    ] == ["bob"]


def test_sigterm_under_gevent_drains_and_ends_cleanly() -> None:
    """A gevent server of its own (`gevent.pywsgi.WSGIServer(...).serve_forever()`) leaves SIGTERM at its
    default, so the library's handler drains. It runs in gevent's hub there, where nothing may wait: the
    drain runs in a greenlet of its own, then the process dies of the signal as before."""
    pytest.importorskip("gevent")
    code = """
        from gevent import monkey; monkey.patch_all()
        import sys, gevent
        import graffer_secevents as secevents
        from gevent.pywsgi import WSGIServer

        secevents.configure(delivery="queue")
        for n in range(50):
            secevents.log_login(str(n), "failure")
        secevents.flush(5)
        print("READY", file=sys.stderr, flush=True)
        for n in range(50, 100):
            secevents.log_login(str(n), "failure")
        WSGIServer(("127.0.0.1", 0), lambda environ, start_response: [], log=None).serve_forever()
    """
    proc = _run_until_ready(code, subprocess.PIPE)
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()  # without the fix, SIGTERM did not end the process at all
        proc.wait()
    assert proc.returncode == -signal.SIGTERM, err
    records = _records(b"\n".join(line for line in out.splitlines() if line.startswith(b"{")))
    assert sorted(int(r["usr"]["id"]) for r in _events(records)) == list(range(100))
    assert records[-1]["secevents"].get("end") is True, err


def test_sigterm_under_twisted_drains_before_it_dies_of_the_signal() -> None:
    """`twist web --wsgi` / `twistd` stop the reactor on SIGTERM, then end the process with the signal
    (`_exitWithSignal`: the default handler and `os.kill`), which skips `atexit`: the drain runs on the
    reactor's "after shutdown" trigger instead."""
    pytest.importorskip("twisted")
    code = """
        import sys
        from twisted.application.app import _exitWithSignal
        from twisted.internet import reactor
        import graffer_secevents as secevents

        secevents.configure(delivery="queue")

        def serve():
            for n in range(100):
                secevents.log_login(str(n), "failure")
            print("READY", file=sys.stderr, flush=True)

        reactor.callWhenRunning(serve)
        reactor.run(installSignalHandlers=True)
        _exitWithSignal(reactor._exitSignal)  # what twist's runner does once the reactor stopped
    """
    proc = _run_until_ready(code, subprocess.PIPE)
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGTERM, err
    records = _records(b"\n".join(line for line in out.splitlines() if line.startswith(b"{")))
    assert sorted(int(r["usr"]["id"]) for r in _events(records)) == list(range(100))
    assert records[-1]["secevents"].get("end") is True, err
