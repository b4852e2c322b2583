"""The delivery queue and its targets against real pipes, files, streams and loggers (see `_delivery`)."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import orjson
import pytest

import graffer_secevents as api
from graffer_secevents import _delivery
from graffer_secevents._errors import ConfigurationError
from graffer_secevents._tools.schema import check_record


@pytest.fixture(autouse=True)
def _fresh_counters(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test counts drops and gives one-time warnings as a fresh process would."""
    monkeypatch.delenv("SECEVENTS_DELIVERY", raising=False)
    _delivery._reset_for_tests()
    yield
    api.flush(timeout=10)  # drain whatever a test left behind
    _delivery._reset_for_tests()


def _dropped_metric(reason: str) -> int:
    points = api.get_config().metrics.points  # type: ignore[union-attr]
    return sum(p.value for p in points if p.name == "secevents.dropped" and p.tags == (f"reason:{reason}",))


def _run(code: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, **kwargs.pop("env", {})}
    env.pop("SECEVENTS_DELIVERY", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, timeout=60, check=False, **kwargs
    )


# --- the queue ---------------------------------------------------------------------------------------------


def test_queue_is_the_default_and_flush_writes_everything(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    with open(path, "wb") as handle:
        cfg = api.configure(output=handle, metrics="memory")
        assert cfg.delivery == "queue"
        for n in range(500):
            api.log_login(n, "failure", "203.0.113.7", reason="invalid_credentials")
        assert api.flush(timeout=10) is True
        lines = path.read_bytes().splitlines()
    assert [orjson.loads(line)["usr"]["id"] for line in lines] == [str(n) for n in range(500)]
    assert _delivery.dropped() == {}


def test_records_are_written_by_one_writer_thread_not_the_caller(tmp_path: Path) -> None:
    seen: list[str] = []

    class Recording(io.StringIO):
        def write(self, text: str) -> int:
            seen.append(threading.current_thread().name)
            return super().write(text)

    api.configure(output=Recording(), metrics="none")
    for n in range(50):
        api.log_logout(n)
    assert api.flush(timeout=10)
    assert set(seen) == {"graffer_secevents-writer"}
    assert len(seen) < 50  # batched: fewer writes than records


@pytest.mark.parametrize("name", ["stdout", "stderr"])
def test_stdout_and_stderr_are_resolved_at_write_time(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    api.configure(output=name, metrics="none")  # capsys replaced sys.stdout/sys.stderr before this
    api.log_logout(3)
    assert api.flush(timeout=10)
    captured = capsys.readouterr()
    assert json.loads(getattr(captured, name[3:]))["usr"]["id"] == "3"


def test_sync_delivery_writes_on_the_callers_thread() -> None:
    out = io.StringIO()
    api.configure(output=out, metrics="none", delivery="sync")
    api.log_logout(1)
    assert json.loads(out.getvalue())["usr"]["id"] == "1"  # no flush needed


def test_the_capture_fixture_writes_synchronously(security_events: Any) -> None:
    api.configure(delivery="queue", metrics="none")  # the capture keeps sync delivery through configure()
    api.log_logout(7)
    security_events.assert_emitted("session_logout", usr__id="7")
    assert api.get_config().delivery == "sync"


class _StuckPipe:
    """A real pipe nobody reads, filled until a write would block; ``resume()`` starts reading it."""

    def __init__(self) -> None:
        self.read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        try:
            while True:
                os.write(write_fd, b"#" * 65536)
        except BlockingIOError:
            pass
        os.set_blocking(write_fd, True)
        self.stream = os.fdopen(write_fd, "wb", buffering=0)
        self.data = bytearray()
        self._reader: threading.Thread | None = None
        self._stop = False

    def resume(self) -> None:
        def read() -> None:
            while True:
                chunk = os.read(self.read_fd, 65536)
                if not chunk:
                    return
                self.data += chunk

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()

    def records(self) -> list[dict[str, Any]]:
        self.stream.close()
        assert self._reader is not None
        self._reader.join(10)
        text = bytes(self.data).lstrip(b"#")
        return [orjson.loads(line) for line in text.splitlines()]


def test_a_stuck_pipe_never_blocks_the_caller_drops_are_counted_and_the_rest_arrive() -> None:
    pipe = _StuckPipe()
    api.configure(output=pipe.stream, metrics="memory", queue_size=100)
    slowest = 0.0
    for n in range(1000):
        started = time.perf_counter()
        api.log_login(n, "failure", "203.0.113.7", reason="invalid_credentials")
        slowest = max(slowest, time.perf_counter() - started)
    assert slowest < 2.0  # the writer is stuck in write(2); the caller is not
    lost = _delivery.dropped()["queue_full"]
    assert 800 <= lost <= 900  # the queue holds 100; the writer took at most one batch before sticking
    assert _dropped_metric("queue_full") == lost
    pipe.resume()
    assert api.flush(timeout=10) is True  # what was still queued when flush() was called is written
    api.log_login(1000, "failure", "203.0.113.7")
    assert api.flush(timeout=10) is True
    records = pipe.records()
    assert len(records) == 1001 - lost
    ids = [int(r["usr"]["id"]) for r in records]
    assert ids == sorted(ids) and ids[-1] == 1000
    # Each record written after a loss says how many were lost since the previous one was written.
    notes = [r["secevents"]["dropped_before"] for r in records if "dropped_before" in r["secevents"]]
    assert sum(notes) == lost and 1 <= len(notes) <= 3
    assert [problem for r in records for problem in check_record(r)] == []  # the note is in the schema
    assert all(r["network"]["client"]["ip"] == "203.0.113.7" for r in records)


def test_overflow_block_waits_up_to_block_timeout_then_drops() -> None:
    pipe = _StuckPipe()
    api.configure(output=pipe.stream, metrics="memory", queue_size=2, overflow="block", block_timeout=0.05)
    started = time.perf_counter()
    for n in range(8):
        api.log_logout(n)
    elapsed = time.perf_counter() - started
    assert elapsed >= 0.05 * 4  # at least the calls beyond queue + the stuck batch each waited
    lost = _delivery.dropped()["queue_full"]
    assert 4 <= lost <= 6
    pipe.resume()
    assert api.flush(timeout=10)
    assert len(pipe.records()) == 8 - lost


def test_overflow_block_gets_room_when_the_writer_catches_up(tmp_path: Path) -> None:
    with open(tmp_path / "events.log", "wb") as handle:
        api.configure(output=handle, metrics="none", queue_size=1, overflow="block", block_timeout=5)
        for n in range(300):
            api.log_logout(n)
        assert api.flush(timeout=10)
    assert len((tmp_path / "events.log").read_bytes().splitlines()) == 300
    assert _delivery.dropped() == {}


def test_flush_reports_false_when_the_output_is_stuck() -> None:
    pipe = _StuckPipe()
    api.configure(output=pipe.stream, metrics="none")
    api.log_logout(1)
    assert api.flush(timeout=0.2) is False
    pipe.resume()
    assert api.flush(timeout=10) is True
    assert len(pipe.records()) == 1


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"delivery": "async"}, "delivery: unknown value 'async'; allowed: queue, sync"),
        ({"overflow": "drop_oldest"}, "overflow: unknown value 'drop_oldest'; allowed: drop, block"),
        ({"queue_size": 0}, "queue_size: expected a whole number >= 1, got 0"),
        ({"queue_size": 2.5}, "queue_size: expected a whole number >= 1"),
        ({"block_timeout": -1}, "block_timeout: expected a number of seconds > 0"),
        ({"block_timeout": float("nan")}, "block_timeout: expected a number of seconds > 0"),
    ],
)
def test_delivery_options_are_validated_eagerly(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(".", r"\.")):
        api.configure(**settings)


def test_delivery_options_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECEVENTS_DELIVERY", "SYNC")
    monkeypatch.setenv("SECEVENTS_QUEUE_SIZE", "50")
    monkeypatch.setenv("SECEVENTS_OVERFLOW", "block")
    monkeypatch.setenv("SECEVENTS_BLOCK_TIMEOUT", "0.25")
    cfg = api.configure(reset=True)  # the environment is read at the first build and on reset
    assert (cfg.delivery, cfg.queue_size, cfg.overflow, cfg.block_timeout) == ("sync", 50, "block", 0.25)
    monkeypatch.setenv("SECEVENTS_QUEUE_SIZE", "lots")
    with pytest.raises(
        ConfigurationError, match="SECEVENTS_QUEUE_SIZE: expected a whole number >= 1, got 'lots'"
    ):
        api.configure(reset=True)


# --- faults: a record is dropped exactly when it did not reach the output -----------------------------------


def test_a_writer_that_raises_loses_the_records_but_not_the_caller(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise RuntimeError("disk controller on fire")

    api.configure(output=Broken(), metrics="memory")
    for n in range(3):
        api.log_logout(n)
    assert api.flush(timeout=10) is False
    assert _delivery.dropped() == {"write_error": 3}
    assert _dropped_metric("write_error") == 3
    err = capsys.readouterr().err
    assert err.count("could not write a security event") == 1 and "disk controller on fire" in err


def test_a_loss_is_noted_on_the_next_record_of_the_same_output_only() -> None:
    closed = io.StringIO()
    closed.close()
    api.configure(output=closed, metrics="none", delivery="sync")
    api.log_logout(1)
    api.log_logout(2)
    other = io.StringIO()
    api.configure(output=other, metrics="none", delivery="sync")
    api.log_logout(3)
    assert "dropped_before" not in json.loads(other.getvalue())["secevents"]  # not this output's loss
    assert _delivery.dropped() == {"closed": 2}


def test_a_flush_that_fails_after_a_write_is_not_a_drop() -> None:
    class FlushFails(io.BytesIO):
        def flush(self) -> None:
            raise OSError(errno.EIO, "flush failed")

    out = FlushFails()
    api.configure(output=out, metrics="memory")
    api.log_logout(1)
    api.log_logout(2)
    assert api.flush(timeout=10) is True
    assert [orjson.loads(line)["usr"]["id"] for line in out.getvalue().splitlines()] == ["1", "2"]
    assert _delivery.dropped() == {} and _dropped_metric("write_error") == 0


@pytest.mark.parametrize("delivery", ["queue", "sync"])
def test_a_transient_enospc_is_retried_and_not_counted(delivery: str) -> None:
    class FullThenFree(io.BytesIO):
        failures = 2

        def write(self, data: Any) -> int:
            if self.failures:
                self.failures -= 1
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(data)

    out = FullThenFree()
    api.configure(output=out, metrics="memory", delivery=delivery)
    api.log_logout(1)
    assert api.flush(timeout=10) is True
    assert orjson.loads(out.getvalue())["usr"]["id"] == "1"
    assert _delivery.dropped() == {} and _dropped_metric("write_error") == 0


def test_a_lasting_enospc_is_a_write_error_after_bounded_retries() -> None:
    class AlwaysFull(io.BytesIO):
        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    api.configure(output=AlwaysFull(), metrics="memory", delivery="sync")
    api.log_logout(1)
    assert _delivery.dropped() == {"write_error": 1}


def test_a_broken_logging_handler_counts_as_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging, "raiseExceptions", False)  # the handler's own traceback is not our output
    closed = io.StringIO()
    closed.close()
    logger = logging.getLogger("test_delivery.broken")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    broken = logging.StreamHandler(closed)
    logger.addHandler(broken)
    try:
        api.configure(output=logger, metrics="memory")
        api.log_logout(1)
        api.log_logout(2)
        assert api.flush(timeout=10) is False
        assert _delivery.dropped() == {"write_error": 2}
        assert _dropped_metric("write_error") == 2
        assert "handleError" not in broken.__dict__  # the handler is left as it was
    finally:
        logger.removeHandler(broken)


def test_a_working_handler_and_the_applications_levels_are_not_drops() -> None:
    out = io.StringIO()
    logger = logging.getLogger("test_delivery.working")
    logger.propagate = False
    handler = logging.StreamHandler(out)
    handler.setLevel(logging.WARNING)  # the application keeps only warnings: its choice, not a loss
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        api.configure(output=logger, metrics="memory")
        api.log_login(1, "success")  # info
        api.log_login(1, "failure")  # warning
        assert api.flush(timeout=10) is True
        (line,) = out.getvalue().splitlines()
        assert json.loads(line)["evt"]["outcome"] == "failure"
        assert _delivery.dropped() == {}
    finally:
        logger.removeHandler(handler)


def test_a_text_stream_that_is_not_utf8_gets_escaped_lines() -> None:
    class AsciiOnly(io.TextIOBase):
        """A text stream with no ``buffer`` that can only encode ASCII."""

        def __init__(self) -> None:
            self.text = ""

        @property
        def encoding(self) -> str:
            return "ascii"

        def write(self, text: str) -> int:
            text.encode("ascii")
            self.text += text
            return len(text)

    out = AsciiOnly()
    api.configure(output=out, metrics="memory")
    api.log_login("café", "failure", note="naïve ☃")
    assert api.flush(timeout=10) is True
    record = json.loads(out.text)
    assert record["usr"]["id"] == "café" and record["context"]["note"] == "naïve ☃"
    assert _delivery.dropped() == {}


def test_a_text_stream_that_is_not_utf8_gets_utf8_bytes_through_its_buffer() -> None:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    out.write("the application's own line\n")  # still in the text layer: written first
    api.configure(output=out, metrics="memory")
    api.log_login("café", "failure")
    assert api.flush(timeout=10) is True
    first, record = raw.getvalue().splitlines()
    assert first == b"the application's own line"
    assert b'"id":"caf\xc3\xa9"' in record
    assert _delivery.dropped() == {}


def test_an_ascii_stdout_gets_utf8_bytes() -> None:
    code = """
        import graffer_secevents as s
        s.configure(metrics="none")
        s.log_login("café", "failure", note="naïve ☃")
        print(s.flush(5), flush=True)
    """
    result = _run(code, capture_output=True, env={"PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0, result.stderr
    record_line, flushed, end = result.stdout.splitlines()
    assert json.loads(end)["secevents"]["end"] is True
    assert "naïve ☃".encode() in record_line  # the UTF-8 bytes themselves, not an escape or a "?"
    assert json.loads(record_line.decode("utf-8"))["context"]["note"] == "naïve ☃"
    assert flushed == b"True"


def test_a_closed_stdout_is_counted_as_closed() -> None:
    code = """
        import json, os, sys
        import graffer_secevents as s
        from graffer_secevents import _delivery
        s.configure(metrics="none")
        sys.stdout.close()
        s.log_logout(1)
        s.log_logout(2)
        s.flush(5)
        os.write(2, ("DROPPED " + json.dumps(_delivery.dropped()) + "\\n").encode())
    """
    result = _run(code, capture_output=True)
    assert result.returncode == 0, result.stderr
    assert b'DROPPED {"closed": 2}' in result.stderr
    assert result.stderr.count(b"could not write a security event") == 1


def test_dev_full_is_a_write_error() -> None:
    code = """
        import json, os
        import graffer_secevents as s
        from graffer_secevents import _delivery
        s.configure(metrics="none", delivery="sync")
        s.log_logout(1)
        os.write(2, ("DROPPED " + json.dumps(_delivery.dropped()) + "\\n").encode())
    """
    with open("/dev/full", "wb") as full:
        result = _run(code, stdout=full, stderr=subprocess.PIPE)
    assert result.returncode == 0, result.stderr
    assert b'DROPPED {"write_error": 1}' in result.stderr
    assert b"No space left on device" in result.stderr


def test_a_pipe_whose_reader_left_is_counted_as_closed() -> None:
    code = """
        import json, os, time
        import graffer_secevents as s
        from graffer_secevents import _delivery
        s.configure(metrics="none")
        time.sleep(0.2)  # the reader has closed its end by now
        for n in range(3):
            s.log_logout(n)
        s.flush(5)
        os.write(2, ("DROPPED " + json.dumps(_delivery.dropped()) + "\\n").encode())
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "SECEVENTS_DELIVERY"},
    )
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert b'DROPPED {"closed": 3}' in err


def test_the_queue_drains_at_interpreter_exit() -> None:
    code = """
        import graffer_secevents as s
        s.configure(metrics="none")
        for n in range(2000):
            s.log_logout(n)
    """
    result = _run(code, capture_output=True)
    assert result.returncode == 0, result.stderr
    *lines, end = result.stdout.splitlines()
    ids = [json.loads(line)["usr"]["id"] for line in lines]
    assert ids == [str(n) for n in range(2000)]
    assert json.loads(end)["secevents"] == {"schema": 1, "end": True, "writer": ANY, "seq": 2001}


def test_exit_with_a_stuck_stdout_waits_boundedly_and_counts_what_was_left() -> None:
    code = """
        import atexit, json, os

        def late():  # registered first, so it runs after the library's drain (atexit is last-in, first-out)
            before = _delivery.dropped()
            s.log_logout("late")  # after a drain that gave up: counted too, never silently lost
            os.write(2, ("LEFT " + json.dumps([before, _delivery.dropped()]) + "\\n").encode())

        atexit.register(late)
        import graffer_secevents as s
        from graffer_secevents import _delivery
        s.configure(metrics="none")
        for n in range(2000):
            s.log_logout(n)
    """
    read_end, write_end = os.pipe()  # nobody reads it
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env={k: v for k, v in os.environ.items() if k != "SECEVENTS_DELIVERY"},
        )
        os.close(write_end)
        assert proc.wait(timeout=60) == 0  # the exit drain gave up after its 5 s; the process did exit
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.stderr.close()
    finally:
        os.close(read_end)
    before, left = json.loads(err.split(b"LEFT ")[1])
    assert set(before) == {"exit"} and 500 < before["exit"] < 2000  # the rest fit in the pipe (64 KiB)
    assert left == {"exit": before["exit"] + 1}
    assert (
        f"security events were not written; dropped in this process, by reason: exit: {before['exit'] + 1}\n".encode()
        in err
    )


def test_a_forked_child_never_writes_its_parents_queued_records(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    code = f"""
        import os, threading
        import graffer_secevents as s

        PARENT = os.getpid()
        release = threading.Event()

        class Gate:
            mode = "ab"
            # Appends to one file; blocks in the parent until released, so its records wait in the queue.
            def write(self, data):
                if os.getpid() == PARENT:
                    release.wait(30)
                with open({str(path)!r}, "ab") as f:
                    f.write(data)

        s.configure(output=Gate(), metrics="none")
        for n in range(20):
            s.log_logout(f"parent-{{n}}")
        pid = os.fork()
        if pid == 0:
            s.log_logout("child")
            assert s.flush(10)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        release.set()
        assert s.flush(10)
        print(status)
    """
    result = _run(code, capture_output=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == b"0"
    records = [json.loads(line) for line in path.read_bytes().splitlines()]
    ids = [r["usr"]["id"] for r in records if "usr" in r]
    assert ids.count("child") == 1
    assert sorted(i for i in ids if i != "child") == sorted(f"parent-{n}" for n in range(20))


def test_structlog_output_goes_through_the_applications_chain() -> None:
    import structlog

    structlog.reset_defaults()
    try:
        with structlog.testing.capture_logs() as logs:
            api.configure(output="structlog", metrics="none")
            api.log_login(1, "failure", "203.0.113.7")
            assert api.flush(timeout=10)
    finally:
        structlog.reset_defaults()
    (entry,) = logs
    assert entry["event"] == "authn_login_fail: login failed"
    assert entry["log_level"] == "warning"
    assert entry["usr"] == {"id": "1"} and entry["network"]["client"]["ip"] == "203.0.113.7"


def test_import_does_not_import_structlog() -> None:
    result = _run(
        "import sys, graffer_secevents as s; s.log_logout(1); s.flush(5); print('structlog' in sys.modules)",
        capture_output=True,
    )
    assert result.stdout.splitlines()[-2] == b"False"  # the last line is the writer's end record
