"""The write step: a bounded in-process queue and one writer thread per process, or synchronous writing.

The caller's thread renders the record (in `_pipeline`) and hands the finished line to `deliver`. With
`delivery="queue"` (the default) that is an `append` to a deque and, when the writer sleeps, one
`Event.set`; the writer thread takes everything queued and writes it in batches, so a stuck stdout blocks
only the writer. The queue is bounded in records (`queue_size`) and in bytes (`queue_bytes`). When it is
full, `overflow="drop"` drops the record at once and `overflow="block"` waits up to `block_timeout` seconds
for room, then drops. With `delivery="sync"` the caller writes the line itself (the test capture does).

**Stamping.** Just before a line is written (on the writer thread, or under the output's lock for
`delivery="sync"`), it gets its writer's identity and the next sequence number of that output
(`secevents.writer`, `secevents.seq`, gap-free per writer and output), `secevents.dropped_before` after a
loss, and with an integrity key `secevents.chain`: an HMAC-SHA256 over the previous record's chain value and
this record. The fields are spliced into the rendered bytes (the pipeline writes `secevents` last), so
stamping never re-encodes a record. A write that fails takes its numbers back: the next record written
carries them, and `dropped_before` says how many were lost.

A record counts as dropped exactly when it did not reach its target: `secevents.dropped{reason:...}` with a
bounded reason (`DROP_REASONS`), a per-process counter (`dropped`), a one-time line on stderr per reason,
and `secevents.dropped_before: N` on the next record written to the same output (kept across
`configure()`: outputs are told apart by their `key`, not by the target object).

**Exit paths** (docs/delivery.md lists them): `shutdown` drains the queue (bounded), counts what it could
not write as `reason:exit` (the queue and the batch the writer holds), writes an end record per output and
flushes the metrics. It runs at interpreter exit (`atexit`), in `multiprocessing` (and billiard) children
through their own finaliser registry (they end with `os._exit`, which skips `atexit`), in any other forked
child at `os._exit` (RQ's work horse: a child's `os._exit` is wrapped, `_exit_forked_child`), on ASGI
lifespan shutdown, and on SIGTERM where the process had no handler of its own (`SIG_DFL`): the handler
drains, then restores the default and re-raises, so the process still dies of the signal (servers such as
uvicorn restore the handler they found and re-raise SIGTERM after their graceful stop). A forked child
starts with an empty queue, its own writer identity and its own writer thread.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Final, NoReturn

import orjson

from . import _fork
from ._metrics import record_dropped
from ._output import Target, TargetWriteError, gevent_patched

if TYPE_CHECKING:
    from ._config import Config

__all__ = [
    "DELIVERY_MODES",
    "DROP_REASONS",
    "MAX_LINE_BYTES",
    "OVERFLOW_POLICIES",
    "deliver",
    "dropped",
    "flush",
    "shutdown",
]

DELIVERY_MODES: Final = ("queue", "sync")
OVERFLOW_POLICIES: Final = ("drop", "block")
DROP_REASONS: Final = ("queue_full", "write_error", "closed", "encoding", "exit")
DEFAULT_QUEUE_SIZE: Final = 10_000
DEFAULT_QUEUE_BYTES: Final = 16 * 1024 * 1024
DEFAULT_BLOCK_TIMEOUT: Final = 1.0
EXIT_TIMEOUT: Final = 5.0
"""How long an exit path waits for the queue to drain; what is left after it is counted as dropped."""
MAX_LINE_BYTES: Final = 4096
"""The most bytes a written record takes, newline included: Linux's `PIPE_BUF`, the most one `write` to a
pipe delivers without interleaving with other processes writing the same pipe."""
STAMP_BYTES: Final = 256
"""Room the writer's stamp needs (writer, seq, dropped_before, chain: 170 bytes at most), kept free by the
renderer: a rendered line is at most `MAX_LINE_BYTES - STAMP_BYTES` bytes."""
_MAX_BATCH: Final = 4096
_CHUNK: Final = 1 << 20
_WARNINGS: Final = {
    "queue_full": "the delivery queue is full (the output is not keeping up, or is stuck)",
    "write_error": "the output failed",
    "closed": "the output is closed",
    "encoding": "a record could not be encoded for the output",
    "exit": "the queue did not drain before the process exited",
}
_END_MESSAGE: Final = "secevents_writer_end: this writer wrote every record it was given and stopped cleanly"

Item = tuple["Config", str, bytes]


class _Output:
    """What one output of this process has been given: its next number, its chain, the losses it owes."""

    __slots__ = ("cfg", "chain", "ended_at", "lock", "seq", "unreported")

    def __init__(self, cfg: Config | None) -> None:
        self.cfg = (
            cfg  # the configuration it was last written under, for its end record (None: no end record)
        )
        self.seq = 0  # the last number written
        self.chain = b""  # the last chain value written (hex), with an integrity key
        self.unreported = 0  # records lost since the last one written here: the next one's dropped_before
        self.ended_at = -1  # the seq of the last end record written
        self.lock = threading.Lock()  # numbers are taken and written in one order


class _State:
    """Everything a process's delivery owns; replaced whole in a forked child."""

    def __init__(self) -> None:
        self.queue: deque[Item | threading.Event] = deque()
        self.queued_bytes = 0  # approximate (see deliver); reset whenever the writer finds the queue empty
        self.wake = threading.Event()
        self.room = threading.Condition(threading.Lock())
        self.waiting = 0  # callers blocked for room (overflow="block")
        self.idle = True
        self.writer: threading.Thread | None = None
        self.start_lock = threading.Lock()
        self.counts_lock = threading.RLock()  # reentrant: the SIGTERM handler may count while it is held
        self.counts: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self.outputs: dict[Hashable, _Output] = {}
        self.warned: set[str] = set()
        self.unwarned: list[tuple[str, str]] = []  # drops noticed on a caller's thread, warned by the writer
        self.writer_id = os.urandom(8).hex()
        self.stamp_prefix = b',"writer":"%s","seq":' % self.writer_id.encode()
        self.inflight: list[Item] = []  # the batch the writer holds, of which the first `done` are written
        self.done = 0
        self.abandoned: list[Item] | None = None  # the batch an exit path counted: the writer drops the rest
        self.hooked = False  # the exit hooks of this process are in place
        self.ends_each_batch = False  # no exit path runs here (a uWSGI master): each batch ends with its end
        self.pid = os.getpid()
        self.summarised: dict[str, int] = {}
        self.exited: str | None = None  # the exit drain: "draining", then "clean" or "stuck" (it gave up)
        self.drained = threading.Event()  # set when `exited` leaves "draining"


_state = _State()


def deliver(cfg: Config, level: str, line: bytes) -> None:
    """Hand one rendered line to its target, queued or synchronously. Never raises, never blocks on I/O."""
    _fork.check()  # a child forked in C (a uWSGI worker): its own state first (the metrics' too: after this)
    state = _state
    if state.exited is not None:
        _deliver_late(state, cfg, level, line)
        return
    if cfg.delivery == "sync":
        if not state.hooked:
            _install_exit_hooks(state)
        _write_batch(state, cfg, [(cfg, level, line)], patient=False)
        _warn_pending(state)
        return
    queue = state.queue
    if (len(queue) >= cfg.queue_size or state.queued_bytes >= cfg.queue_bytes) and not (
        cfg.overflow == "block" and _wait_for_room(state, cfg)
    ):
        _dropped(state, cfg, "queue_full", 1, None, warn_later=True)
        return
    if len(queue) > cfg.queue_size >> 1:
        # The writer is behind: hand it the interpreter (the GIL) for a moment rather than lose records.
        # Callers that saturate the interpreter otherwise starve it (docs/performance.md, bench_writer.py).
        time.sleep(0)
    queue.append((cfg, level, line))
    # Not under a lock: on CPython with the GIL, `+=` on a plain attribute is not interrupted by another
    # thread (no eval-breaker check inside it); the writer resets it whenever it finds the queue empty.
    state.queued_bytes += len(line)
    if state.idle:
        _wake(state)


def _deliver_late(state: _State, cfg: Config, level: str, line: bytes) -> None:
    """A record emitted after the exit drain: by an `atexit` handler that runs after ours (registered
    before the library was imported), a `weakref.finalize` callback, a `__del__` at interpreter teardown.
    The writer thread may be gone by now, so it is written here, followed by a new end record, when the drain
    found the output working; after a drain that gave up it is counted as `exit` (and said on stderr)."""
    if state.exited == "draining" and threading.current_thread() is not threading.main_thread():
        state.drained.wait(EXIT_TIMEOUT + 1.0)  # another thread emits while the drain runs: after it
    if state.exited == "clean":
        # The record and a new end record in one write: a daemon thread (a task queue's worker) is frozen
        # wherever it is when the interpreter finishes exiting, which may be between two writes.
        _write_batch(state, cfg, [(cfg, level, line), _end_item(cfg)], False, end_last=True)
        _warn_pending(state)
    elif state.exited == "draining":  # the main thread (a signal handler) during the drain: ends after it
        _write_batch(state, cfg, [(cfg, level, line)], patient=False)
        _warn_pending(state)
    else:
        _dropped(state, cfg, "exit", 1, None, warn_later=True)
        with state.counts_lock:
            state.unwarned = []
        _summarise(state)


def _wake(state: _State) -> None:
    if state.writer is None:
        with state.start_lock:
            if state.writer is None:
                _install_exit_hooks(state)
                state.ends_each_batch = _no_exit_path_runs()
                thread = threading.Thread(target=_run, args=(state,), name="graffer_secevents-writer")
                thread.daemon = True  # never keeps the process alive; the exit paths drain the queue instead
                thread.start()
                state.writer = thread
    state.idle = False
    state.wake.set()


def _no_exit_path_runs() -> bool:
    """This process ends without running any Python: a uWSGI master ("the master cannot run atexit
    handlers", and it leaves SIGINT/SIGTERM to its own C handlers). Its records are those of the app it
    loads before forking the workers; each batch of them is followed by an end record, so a reader sees a
    clean end. Never imports uWSGI's module: only looks for it."""
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is None:
        return False
    try:
        return bool(uwsgi.opt.get("master")) and uwsgi.worker_id() == 0 and uwsgi.masterpid() == os.getpid()
    except Exception:  # noqa: BLE001 - an embedding we do not know: the usual exit paths
        return False


def _wait_for_room(state: _State, cfg: Config) -> bool:
    deadline = time.monotonic() + cfg.block_timeout
    with state.room:
        state.waiting += 1
        try:
            while len(state.queue) >= cfg.queue_size or state.queued_bytes >= cfg.queue_bytes:
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
                state.queued_bytes = 0
                state.wake.wait()
            state.wake.clear()
            state.idle = False
            continue
        batch: list[Item] = []
        markers: list[threading.Event] = []
        size = 0
        while queue and len(batch) < _MAX_BATCH and size < _CHUNK:
            item = queue.popleft()
            if type(item) is tuple:
                batch.append(item)
                size += len(item[2])
            else:
                markers.append(item)  # type: ignore[arg-type]
                break  # a flush() marker: everything queued before it is in this batch
        state.queued_bytes -= size
        if state.waiting:
            with state.room:
                state.room.notify_all()
        state.inflight, state.done = batch, 0
        try:
            _write_items(state, batch)
        except BaseException as exc:  # noqa: BLE001 - the writer thread must outlive any one batch
            for cfg, _level, _line in batch[state.done :]:
                _dropped(state, cfg, "write_error", 1, exc)
            if not isinstance(exc, Exception):
                _pass_on_interrupt(exc)
        state.inflight, state.done = [], 0
        if state.ends_each_batch and state.exited is None:
            _write_ends(state)
        _warn_pending(state)
        for marker in markers:
            marker.set()


def _pass_on_interrupt(exc: BaseException) -> None:
    """A `KeyboardInterrupt` or `SystemExit` that landed in the writer is the application's, not a failed
    write: hand it to the main greenlet, where the server waits for it.

    Only under gevent's monkey-patching, where the writer is a greenlet of the main thread and a Python
    signal handler (Ctrl-C's `KeyboardInterrupt`) raises in whichever greenlet runs: swallowed here, the
    process would go on serving after Ctrl-C. gevent's hub throws it into the main greenlet and resumes
    this one later, as it does for any greenlet (`Hub.handle_system_error`). A real thread never gets it.
    """
    if not gevent_patched():
        return
    try:
        hub = sys.modules["gevent.hub"].get_hub()
        if isinstance(exc, hub.SYSTEM_ERROR):
            hub.handle_system_error(type(exc), exc, exc.__traceback__)
    except Exception:  # noqa: BLE001, S110 - never let the writer die of it
        pass


def _write_items(state: _State, batch: list[Item]) -> None:
    """Write a batch, one target call per run of consecutive records under the same configuration."""
    start = 0
    while start < len(batch):
        cfg = batch[start][0]
        end = start + 1
        while end < len(batch) and batch[end][0] is cfg:
            end += 1
        _write_batch(state, cfg, batch[start:end], patient=True)
        start = end


def _output_of(state: _State, cfg: Config) -> _Output:
    target = cfg.writer
    key = getattr(target, "key", None)
    if key is None:
        key = id(target)
    output = state.outputs.get(key)
    ends = getattr(target, "end_records", True)
    if output is None:
        with state.counts_lock:
            output = state.outputs.setdefault(key, _Output(cfg if ends else None))
    if ends:
        output.cfg = cfg
    return output


def _write_batch(
    state: _State, cfg: Config, items: list[Item], patient: bool, *, end: bool = False, end_last: bool = False
) -> None:
    """Stamp and write `items` (all under `cfg`) in chunks the target takes in one write each; with
    `end_last`, the last item is an end record (not a loss if it fails), and once written it is the
    output's last end record."""
    output = _output_of(state, cfg)
    target = cfg.writer
    chunk_bytes = getattr(target, "chunk_bytes", _CHUNK)
    with output.lock:
        added_end = state.exited is not None and not (end or end_last) and 0 < output.seq == output.ended_at
        if added_end:
            # The exit drain wrote this output's end record while this thread was already past its check
            # of `exited` (a daemon thread's record in `delivery="sync"`, or the writer's last batch): the
            # records and a new end record go in one write, so an end record still comes last.
            items, end_last = [*items, _end_item(cfg)], True
        before, done = output.seq, state.done
        _write_batch_locked(state, cfg, output, target, chunk_bytes, items, patient, end_last, end=end)
        if added_end and state.done > done:
            state.done -= 1  # the end record is no queued record
        if end_last and output.seq == before + len(items):
            output.ended_at = output.seq


def _end_item(cfg: Config) -> Item:
    return (cfg, "info", _end_line(cfg))


def _write_batch_locked(
    state: _State,
    cfg: Config,
    output: _Output,
    target: Target,
    chunk_bytes: int,
    items: list[Item],
    patient: bool,
    end_last: bool,
    *,
    end: bool = False,
) -> None:
    """`_write_batch` with `output.lock` held."""
    if len(items) == 1:  # one record (delivery="sync", an end record): no chunks to work out
        if not (patient and state.abandoned is state.inflight):
            _write_one(state, cfg, output, target, items[0], patient, end)
            if patient:
                state.done += 1
        return
    start = 0
    # What the stamp adds to a line, at most: writer and seq (56), the chain (75); dropped_before (38).
    extra = 56 + (75 if cfg.integrity_key is not None else 0)
    while start < len(items):
        stop, size = start + 1, len(items[start][2]) + extra + 38
        while stop < len(items) and size + len(items[stop][2]) + extra <= chunk_bytes:
            size += len(items[stop][2]) + extra
            stop += 1
        if patient and state.abandoned is state.inflight:  # an exit path counted these already
            return
        ends = 1 if end_last and stop == len(items) else 0
        _write_chunk(state, cfg, output, target, items[start:stop], patient, end=end, ends=ends)
        if patient:
            state.done += stop - start
        start = stop


def _write_chunk(
    state: _State,
    cfg: Config,
    output: _Output,
    target: Target,
    chunk: list[Item],
    patient: bool,
    *,
    end: bool,
    ends: int = 0,
) -> None:
    """Stamp and write one chunk; an end record that fails is not a loss (it is no one's record): `end`
    when the chunk is end records, `ends` when its last `ends` lines are."""
    owed = 0
    if output.unreported and not end:
        with state.counts_lock:
            owed, output.unreported = output.unreported, 0
    key = cfg.integrity_key
    seq, chain = output.seq, output.chain
    prefix = state.stamp_prefix
    lines: list[bytes] = []
    levels: list[str] = []
    marks: list[tuple[int, bytes]] = []  # (seq, chain) after each line
    dropped_tail = b',"dropped_before":%d' % owed if owed else b""  # on the first record only
    for _cfg, level, line in chunk:
        seq += 1
        stamped, chain = _stamp(line, prefix + str(seq).encode() + dropped_tail, key, chain)
        dropped_tail = b""
        lines.append(stamped)
        levels.append(level)
        marks.append((seq, chain))
    try:
        target.write_lines(lines, levels, patient)
        delivered = len(lines)
    except TargetWriteError as failure:
        delivered = failure.delivered
        missing = len(lines) - delivered
        missing -= min(missing, ends)  # an end record is no one's record
        lost = missing + (owed if delivered == 0 else 0)  # a lost first record carried `owed` too
        if not end:
            _dropped(state, cfg, failure.reason, lost, failure, counted=missing, output=output)
    except Exception as exc:  # noqa: BLE001 - a target that breaks its own contract loses the chunk
        delivered = 0
        if not end:
            count = len(lines) - ends
            _dropped(state, cfg, "write_error", count + owed, exc, counted=count, output=output)
    if delivered:
        output.seq, output.chain = marks[delivered - 1]


def _write_one(
    state: _State, cfg: Config, output: _Output, target: Target, item: Item, patient: bool, end: bool
) -> None:
    """`_write_chunk` for one record (every record under `delivery="sync"`), without its lists."""
    owed = 0
    if output.unreported and not end:
        with state.counts_lock:
            owed, output.unreported = output.unreported, 0
    seq = output.seq + 1
    tail = state.stamp_prefix + b"%d" % seq
    if owed:
        tail += b',"dropped_before":%d' % owed
    stamped, chain = _stamp(item[2], tail, cfg.integrity_key, output.chain)
    try:
        target.write_lines((stamped,), (item[1],), patient)
    except TargetWriteError as failure:
        if failure.delivered:  # it reached the output after all
            output.seq, output.chain = seq, chain
        elif not end:
            _dropped(state, cfg, failure.reason, 1 + owed, failure, counted=1, output=output)
        return
    except Exception as exc:  # noqa: BLE001 - a target that breaks its own contract loses the record
        if not end:
            _dropped(state, cfg, "write_error", 1 + owed, exc, counted=1, output=output)
        return
    output.seq, output.chain = seq, chain


def _stamp(line: bytes, tail: bytes, key: bytes | None, chain: bytes) -> tuple[bytes, bytes]:
    """`line` with `tail` (`,"name":value` pairs) added to its `secevents` object, and with `key` its chain
    value: HMAC-SHA256(key, previous chain + the stamped line up to its closing braces)."""
    if line[-3:] != b"}}\n":  # never from the pipeline (it writes `secevents` last): re-encoded to that form
        line = _secevents_last(line)
    body = line[:-3] + tail
    if key is None:
        return body + b"}}\n", chain
    import hmac  # only with an integrity key: `import graffer_secevents` loads no hashing (bench_import)

    mac = hmac.digest(key, chain + b"\n" + body + b"}}", "sha256").hex().encode()
    return body + b',"chain":"' + mac + b'"}}\n', mac


def _secevents_last(line: bytes) -> bytes:
    try:
        record = orjson.loads(line)
        meta = record.pop("secevents", None)
        record["secevents"] = meta if isinstance(meta, dict) and meta else {"schema": 1}
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    except Exception:  # noqa: BLE001 - not JSON at all: written as a record that says so
        return orjson.dumps(
            {"message": line[:200].decode("utf-8", "replace"), "secevents": {"schema": 1}},
            option=orjson.OPT_APPEND_NEWLINE,
        )


def _dropped(
    state: _State,
    cfg: Config,
    reason: str,
    owed: int,
    cause: BaseException | None,
    *,
    counted: int | None = None,
    warn_later: bool = False,
    output: _Output | None = None,
) -> None:
    """Note `owed` records lost for `cfg`'s output, of which `counted` (default all) are new losses
    (the rest were counted before and carried on a record that was lost in turn)."""
    count = owed if counted is None else counted
    if owed <= 0:
        return
    if output is None:
        output = _output_of(state, cfg)
    with state.counts_lock:
        state.counts[reason] = state.counts.get(reason, 0) + count
        output.unreported += owed
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
        _stderr(
            f"graffer_secevents: could not write a security event: {_WARNINGS.get(reason, reason)}"
            f"{detail}; events are being dropped and counted in secevents.dropped{{reason:{reason}}}\n"
        )


def _stderr(text: str) -> None:
    try:
        sys.stderr.write(text)
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
    _fork.check()  # a child forked in C: the parent's writer thread is not here to take the marker
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


# --- exit paths -------------------------------------------------------------------------------------------

_shutdown_lock = threading.RLock()


def shutdown(timeout: float = EXIT_TIMEOUT) -> bool:
    """Drain the queue or count what is left, write each output's end record, flush the metrics.

    What every exit path runs (idempotent: a second call writes nothing new). Records still queued after
    `timeout` seconds, and the batch the writer is stuck writing, are counted as `reason:exit`; the end
    records are then not written (the output is stuck), so a reader sees no clean end.

    Returns:
        `True` when everything was written and the end records too.
    """
    state = _state
    if state.pid != os.getpid():
        return True  # a forked child that never wrote: its parent's state is not its own
    if not _shutdown_lock.acquire(timeout=timeout):
        return False
    try:
        deadline = time.monotonic() + timeout
        drained = state.writer is None or flush(timeout)
        if not drained:
            _abandon(state)
        else:
            drained = _in_thread(lambda: _write_ends(state), max(0.1, deadline - time.monotonic()))
        _summarise(state)
        # Bounded too: a SIGTERM may have interrupted the main thread inside a metrics lock.
        _in_thread(lambda: _flush_metrics(state), max(0.1, deadline - time.monotonic()))
        return drained
    finally:
        _shutdown_lock.release()


def _abandon(state: _State) -> None:
    """Count what the writer could not write before the exit: what is queued and what it holds."""
    inflight = state.inflight
    left: list[Item] = [] if state.abandoned is inflight else inflight[state.done :]  # counted once
    state.abandoned = inflight
    queue = state.queue
    while queue:
        try:
            item = queue.popleft()
        except IndexError:
            break
        if isinstance(item, threading.Event):
            item.set()  # a flush() marker: nothing before it will be written
        else:
            left.append(item)
    state.queued_bytes = 0
    for cfg, _level, _line in left:
        _dropped(state, cfg, "exit", 1, None, warn_later=True)
    with state.counts_lock:
        state.unwarned = []  # the exit summary says it all


def _summarise(state: _State) -> None:
    """One stderr line at exit when records were dropped: how many, by reason (operators read it in the
    container's log when metrics are off)."""
    counts = dropped()
    if not counts or counts == state.summarised:
        return
    state.summarised = counts
    summary = ", ".join(f"{reason}: {n}" for reason, n in counts.items())
    text = (
        f"graffer_secevents[{os.getpid()}]: {sum(counts.values())} security events were not written; "
        f"dropped in this process, by reason: {summary}\n"
    )
    # stderr may be as stuck as stdout: written from a thread the exit does not wait for.
    _in_thread(lambda: _stderr(text), 0.5)


def _write_ends(state: _State) -> bool:
    """An end record on each output written since its last one: everything before it was written."""
    for output in list(state.outputs.values()):
        cfg = output.cfg
        if cfg is None or output.seq in (0, output.ended_at):
            continue
        before = output.seq
        _write_batch(state, cfg, [(cfg, "info", _end_line(cfg))], patient=False, end=True)
        if output.seq == before:
            return False  # not written (a closed or stuck output): no end record, and not a loss either
        output.ended_at = output.seq
    return True


def _end_line(cfg: Config) -> bytes:
    record = {
        "timestamp": _now(),
        "status": "info",
        "message": _END_MESSAGE,
        **cfg.static,
        "logger": {"name": "graffer_secevents"},
        "secevents": {"schema": 1, "end": True},
    }
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def _now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%06dZ" % int(now % 1 * 1e6)  # noqa: UP031


def _in_thread(action: Any, timeout: float) -> bool:
    """Run `action` on a daemon thread and wait at most `timeout` seconds for it (it may block on I/O)."""
    result: list[object] = []

    def run() -> None:
        try:
            result.append(action())
        except Exception:  # noqa: BLE001 - an exit path never raises
            result.append(False)

    thread = threading.Thread(target=run, name="graffer_secevents-exit", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # "can't create new thread at interpreter shutdown" (a __del__ at teardown)
        return False
    thread.join(timeout)
    return bool(result and result[0] is not False)


def _flush_metrics(state: _State) -> None:
    seen: set[int] = set()
    configs = [output.cfg for output in list(state.outputs.values()) if output.cfg is not None]
    for cfg in configs:
        metrics = cfg.metrics
        if metrics is not None and id(metrics) not in seen:
            seen.add(id(metrics))
            try:
                metrics.flush()
            except Exception:  # noqa: BLE001, S110 - an exit path never raises
                pass


def _at_exit() -> None:
    state = _state
    if state.pid != os.getpid():
        return
    # From now on records are written on the spot (_deliver_late): daemon threads (a task queue's workers)
    # may go on emitting while the drain runs and after it, and the writer thread may not outlive it.
    state.exited = "draining"
    drained = shutdown(EXIT_TIMEOUT)
    state.exited = "clean" if drained else "stuck"
    state.drained.set()  # threads that emitted meanwhile write (or count) their records now


def _on_sigterm(signum: int, _frame: object) -> None:
    """SIGTERM (or SIGHUP) in a process that had no handler: drain, then die of the signal as the default
    would.

    The drain runs on a helper thread: the handler interrupted the main thread wherever it was, perhaps
    holding a metrics or output lock that the drain needs (not reentrant), which only a bounded wait survives.
    """
    if gevent_patched():
        # The handler may run in gevent's hub (a callback of its loop), where nothing may wait: the drain
        # runs in a greenlet of its own, which the hub starts as soon as this returns (or, when a greenlet
        # is busy with CPU work, as soon as it yields: as every other greenlet, requests included, waits).
        try:
            sys.modules["gevent"].spawn(_drain_and_die, signum, lambda: shutdown(EXIT_TIMEOUT))
            return
        except Exception:  # noqa: BLE001, S110 - an unknown gevent: drain here, as without it
            pass
    _drain_and_die(signum, lambda: _in_thread(lambda: shutdown(EXIT_TIMEOUT), EXIT_TIMEOUT + 1.0))


def _drain_and_die(signum: int, drain: Callable[[], object]) -> None:
    try:
        drain()
    finally:
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)


def _install_exit_hooks(state: _State) -> None:
    """The exit paths `atexit` misses: SIGTERM's default action, and `os._exit` in multiprocessing children.

    Called when the writer starts (or at the first synchronous record) and at import, so in a forked child
    again. The SIGTERM handler is installed only from the main thread and only over `SIG_DFL`: a handler the
    application or its server installed is never replaced (they end with a normal exit, or restore the
    handler they found, ours, and re-raise).
    """
    state.hooked = True
    _hook_twisted_shutdown()
    for name in ("multiprocessing.util", "billiard.util"):
        util = sys.modules.get(name)
        if util is not None:  # a child of the pool ends with os._exit after running these finalisers
            try:
                util.Finalize(None, _at_exit, exitpriority=100)
            except Exception:  # noqa: BLE001, S110 - an unknown version: atexit still covers normal exits
                pass
    install_sigterm_handler()


def _hook_twisted_shutdown() -> None:
    """Twisted (`twist`, `twistd`) stops its reactor on SIGTERM/SIGINT, then ends the process with the same
    signal (`signal.signal(sig, SIG_DFL)` and `os.kill`), which skips `atexit`. Its reactor's "after
    shutdown" triggers still run: the drain runs there (after the WSGI thread pool has stopped, so the
    records of the last requests are in). Only where the reactor was imported (`sys.modules`), never
    importing it; scheduled through `callFromThread` (the first record may come from the thread pool)."""
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None:
        return
    try:
        reactor.callFromThread(reactor.addSystemEventTrigger, "after", "shutdown", _at_exit)
    except Exception:  # noqa: BLE001, S110 - an unknown reactor: atexit still covers normal exits
        pass


_DRAINED_SIGNALS: Final = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""The signals whose default action ends the process quietly and that a process is sent to stop: SIGTERM
(`docker stop`, Kubernetes, supervisors), SIGHUP (a closed terminal or SSH session, `kill -HUP`)."""


def install_sigterm_handler() -> bool:
    """Install the draining handler for SIGTERM and SIGHUP where each has its default action (which ends
    the process without `atexit`); from the main thread only. True when one was installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    installed = False
    for signum in _DRAINED_SIGNALS:
        try:
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _on_sigterm)
                installed = True
        except (ValueError, OSError):  # not the main interpreter, or no signals here
            pass
    return installed


def _after_fork_in_child() -> None:
    # The parent's queued records are the parent's to write; its writer thread does not exist here. The
    # child is a new writer: its own identity and numbers (its parent goes on with its own).
    global _state, _shutdown_lock  # noqa: PLW0603 - the whole state is replaced, never patched
    _state = _State()
    _shutdown_lock = threading.RLock()
    if os._exit is not _exit_forked_child:
        os._exit = _exit_forked_child


_os_exit: Final = os._exit


def _exit_forked_child(status: int) -> NoReturn:
    """`os._exit` in a forked child: drain (or count) what this child queued and write its end record first.

    A forked child ends with `os._exit`, which skips `atexit`: RQ's work horse after each job,
    `multiprocessing` and billiard children, any pre-forking server of the application's own. Nothing
    else runs there, so this is the one place that sees every such exit. A child that wrote nothing
    exits at once; the drain is bounded like every exit path.
    """
    try:
        state = _state
        if state.pid == os.getpid() and (state.writer is not None or state.outputs):
            shutdown(EXIT_TIMEOUT)
    finally:
        _os_exit(status)


atexit.register(_at_exit)
_fork.in_child(_after_fork_in_child)
install_sigterm_handler()


def _reset_for_tests() -> None:
    """Forget the drop counters and one-time warnings (tests that check them start as a fresh process)."""
    with _state.counts_lock:
        _state.counts = dict.fromkeys(DROP_REASONS, 0)
        for output in _state.outputs.values():
            output.unreported = 0
        _state.warned.clear()
        _state.unwarned.clear()
