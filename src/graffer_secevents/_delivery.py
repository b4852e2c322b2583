"""The write step: a bounded in-process queue and one writer thread per process, or synchronous writing.

The caller's thread renders the record (in `_pipeline`) and hands the finished line to `deliver`. With
`delivery="queue"` (the default) that is an `append` to a deque and, when the writer sleeps, one
`Event.set`; the writer thread takes everything queued and writes it in batches (one `write` per batch
and target where the target allows), so a stuck stdout blocks only the writer. When the queue is full,
`overflow="drop"` drops the record at once and `overflow="block"` waits up to `block_timeout` seconds
for room, then drops. With `delivery="sync"` the caller writes the line itself (the test capture does).

A record counts as dropped exactly when it did not reach its target: `secevents.dropped{reason:...}` with a
bounded reason (`DROP_REASONS`), a per-process counter (`dropped`), a one-time line on stderr per reason,
and `secevents.dropped_before: N` on the next record written.

The queue is drained by `flush`, at interpreter exit (`atexit`, so also after SIGTERM when the application
or its server turns SIGTERM into a normal exit, as gunicorn, uvicorn and waitress do; no signal handler is
installed here) and a forked child starts with an empty queue and its own writer.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Final

import orjson

from ._metrics import record_dropped
from ._output import Target, TargetWriteError

if TYPE_CHECKING:
    from ._config import Config

__all__ = ["DELIVERY_MODES", "DROP_REASONS", "OVERFLOW_POLICIES", "deliver", "dropped", "flush"]

DELIVERY_MODES: Final = ("queue", "sync")
OVERFLOW_POLICIES: Final = ("drop", "block")
DROP_REASONS: Final = ("queue_full", "write_error", "closed", "encoding", "exit")
DEFAULT_QUEUE_SIZE: Final = 10_000
DEFAULT_BLOCK_TIMEOUT: Final = 1.0
EXIT_TIMEOUT: Final = 5.0
"""How long interpreter exit waits for the queue to drain; what is left after it is counted as dropped."""
_MAX_BATCH: Final = 1024
_WARNINGS: Final = {
    "queue_full": "the delivery queue is full (the output is not keeping up, or is stuck)",
    "write_error": "the output failed",
    "closed": "the output is closed",
    "encoding": "a record could not be encoded for the output",
    "exit": "the queue did not drain before the process exited",
}

Item = tuple["Config", str, bytes]


class _State:
    """Everything a process's delivery owns; replaced whole in a forked child."""

    def __init__(self) -> None:
        self.queue: deque[Item | threading.Event] = deque()
        self.wake = threading.Event()
        self.room = threading.Condition(threading.Lock())
        self.waiting = 0  # callers blocked for room (overflow="block")
        self.idle = True
        self.writer: threading.Thread | None = None
        self.start_lock = threading.Lock()
        self.counts_lock = threading.Lock()
        self.counts: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        # Per target: records lost since the last one written there, its next record's dropped_before.
        self.unreported: dict[Target, int] = {}
        self.warned: set[str] = set()
        self.unwarned: list[tuple[str, str]] = []  # drops noticed on a caller's thread, warned by the writer


_state = _State()


def deliver(cfg: Config, level: str, line: bytes) -> None:
    """Hand one rendered line to its target, queued or synchronously. Never raises, never blocks on I/O."""
    state = _state
    if cfg.delivery == "sync":
        _write_batch(state, cfg, [level], [line], patient=False)
        _warn_pending(state)
        return
    queue = state.queue
    if len(queue) >= cfg.queue_size and not (cfg.overflow == "block" and _wait_for_room(state, cfg)):
        _dropped(state, cfg, "queue_full", 1, None, warn_later=True)
        return
    queue.append((cfg, level, line))
    if state.idle:
        _wake(state)


def _wake(state: _State) -> None:
    if state.writer is None:
        with state.start_lock:
            if state.writer is None:
                thread = threading.Thread(target=_run, args=(state,), name="graffer_secevents-writer")
                thread.daemon = True  # never keeps the process alive; atexit drains the queue instead
                thread.start()
                state.writer = thread
    state.idle = False
    state.wake.set()


def _wait_for_room(state: _State, cfg: Config) -> bool:
    deadline = time.monotonic() + cfg.block_timeout
    with state.room:
        state.waiting += 1
        try:
            while len(state.queue) >= cfg.queue_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                state.room.wait(remaining)
            return True
        finally:
            state.waiting -= 1


def _run(state: _State) -> None:
    queue = state.queue
    while True:
        if not queue:
            state.idle = True
            if not queue:  # a caller that saw idle=False before this appended already: look again
                state.wake.wait()
            state.wake.clear()
            state.idle = False
            continue
        batch: list[Item] = []
        markers: list[threading.Event] = []
        while queue and len(batch) < _MAX_BATCH:
            item = queue.popleft()
            if type(item) is tuple:
                batch.append(item)
            else:
                markers.append(item)  # type: ignore[arg-type]
                break  # a flush() marker: everything queued before it is in this batch
        if state.waiting:
            with state.room:
                state.room.notify_all()
        try:
            _write_items(state, batch)
        except BaseException as exc:  # noqa: BLE001 - the writer thread must outlive any one batch
            for cfg, _level, _line in batch:
                _dropped(state, cfg, "write_error", 1, exc)
        _warn_pending(state)
        for marker in markers:
            marker.set()


def _write_items(state: _State, batch: list[Item]) -> None:
    """Write a batch, one target call per run of consecutive records under the same configuration."""
    start = 0
    while start < len(batch):
        cfg = batch[start][0]
        end = start + 1
        while end < len(batch) and batch[end][0] is cfg:
            end += 1
        run = batch[start:end]
        _write_batch(state, cfg, [item[1] for item in run], [item[2] for item in run], patient=True)
        start = end


def _write_batch(state: _State, cfg: Config, levels: list[str], lines: list[bytes], patient: bool) -> None:
    target = cfg.writer
    owed = 0
    if state.unreported:
        with state.counts_lock:
            owed = state.unreported.pop(target, 0)
        if owed:
            lines = [_stamp(lines[0], owed), *lines[1:]]
    try:
        target.write_lines(lines, levels, patient)
    except TargetWriteError as failure:
        lost = len(lines) - failure.delivered
        if failure.delivered == 0:
            lost += owed  # the stamped record was lost too: the next one carries both
        _dropped(state, cfg, failure.reason, lost, failure, counted=len(lines) - failure.delivered)
    except Exception as exc:  # noqa: BLE001 - a target that breaks its own contract loses the batch
        _dropped(state, cfg, "write_error", len(lines) + owed, exc, counted=len(lines))


def _stamp(line: bytes, owed: int) -> bytes:
    """`line` with `secevents.dropped_before` set (off the caller's thread, only after a loss)."""
    try:
        record = orjson.loads(line)
        meta = record.get("secevents")
        if not isinstance(meta, dict):
            meta = record["secevents"] = {}
        meta["dropped_before"] = owed
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    except Exception:  # noqa: BLE001 - the record matters more than the note
        return line


def _dropped(
    state: _State,
    cfg: Config,
    reason: str,
    owed: int,
    cause: BaseException | None,
    *,
    counted: int | None = None,
    warn_later: bool = False,
) -> None:
    """Note `owed` records lost for `cfg`'s output, of which `counted` (default all) are new losses
    (the rest were counted before and carried on a record that was lost in turn)."""
    count = owed if counted is None else counted
    if owed <= 0:
        return
    with state.counts_lock:
        state.counts[reason] = state.counts.get(reason, 0) + count
        state.unreported[cfg.writer] = state.unreported.get(cfg.writer, 0) + owed
        first = count > 0 and reason not in state.warned
        if first:
            state.warned.add(reason)
            detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
            state.unwarned.append((reason, detail))
    if cfg.metrics is not None:
        for _ in range(count):
            record_dropped(cfg.metrics, reason)
    if first and not warn_later:
        _warn_pending(state)


def _warn_pending(state: _State) -> None:
    """Write the one-time stderr line for each new drop reason (from the writer, or a synchronous caller:
    stderr may be as stuck as stdout, and a queued caller must not wait on it)."""
    if not state.unwarned:
        return
    with state.counts_lock:
        pending, state.unwarned = state.unwarned, []
    for reason, detail in pending:
        try:
            sys.stderr.write(
                f"graffer_secevents: could not write a security event: {_WARNINGS.get(reason, reason)}"
                f"{detail}; events are being dropped and counted in secevents.dropped{{reason:{reason}}}\n"
            )
            sys.stderr.flush()
        except Exception:  # noqa: BLE001, S110 - stderr itself may be the broken pipe
            pass


def flush(timeout: float | None = None) -> bool:
    """Wait until every record queued so far has been written (or dropped).

    Args:
        timeout: the longest wait in seconds; `None` waits as long as it takes.

    Returns:
        `True` when the queue drained in time and no record was dropped meanwhile; `False` otherwise
        (a stuck output, or records counted in `secevents.dropped`).

    Example:
        >>> import graffer_secevents as secevents
        >>> secevents.flush(timeout=2.0)
        True
    """
    state = _state
    before = sum(state.counts.values())
    if state.writer is not None and (state.queue or not state.idle):
        marker = threading.Event()
        state.queue.append(marker)
        _wake(state)
        if not marker.wait(timeout):
            return False
    return sum(state.counts.values()) == before


def dropped() -> dict[str, int]:
    """Records this process could not write, by reason (for tests and diagnostics; metrics may be off)."""
    with _state.counts_lock:
        return {reason: n for reason, n in _state.counts.items() if n}


def _drain_at_exit() -> None:
    state = _state
    if state.writer is None or flush(EXIT_TIMEOUT):
        return
    left = [item for item in list(state.queue) if type(item) is tuple]
    state.queue.clear()
    for cfg, _level, _line in left:
        _dropped(state, cfg, "exit", 1, None, warn_later=True)
    # The writer is stuck in a write; so may stderr be: warn from a thread the exit does not wait for.
    warner = threading.Thread(target=_warn_pending, args=(state,), daemon=True)
    warner.start()
    warner.join(0.5)


def _after_fork_in_child() -> None:
    # The parent's queued records are the parent's to write; its writer thread does not exist here.
    global _state  # noqa: PLW0603 - the whole state is replaced, never patched
    _state = _State()


atexit.register(_drain_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)


def _reset_for_tests() -> None:
    """Forget the drop counters and one-time warnings (tests that check them start as a fresh process)."""
    with _state.counts_lock:
        _state.counts = dict.fromkeys(DROP_REASONS, 0)
        _state.unreported = {}
        _state.warned.clear()
        _state.unwarned.clear()
