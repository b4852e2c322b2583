"""Forks the interpreter did not see: a child's hooks run at its first use of the library instead.

`os.register_at_fork` hooks run only when the fork goes through the interpreter (`os.fork`,
multiprocessing, gunicorn). A server that embeds Python and forks in C skips them: uWSGI loads the app in
its master and forks the workers with `fork(2)` (unless `--lazy-apps`, `--py-call-osafterfork` or
`--py-call-uwsgi-fork-hooks`), and so may any C extension. Such a child would write with its parent's
writer identity and numbers, wait on a writer thread that does not exist, skip its exit drain (the state
says it belongs to another process), repeat its parent's request ids and inherit its parent's locks.

So every per-process reset is registered here, once, and runs in the child either at the fork (the
interpreter's hook) or at the child's first event, flush or request id, whichever comes first (`check`:
one `getpid()` per call, about 0.1 µs). The hooks replace state rather than acquire anything: when they
run late, the parent's threads that held its locks are gone all the same.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

__all__ = ["check", "in_child"]

_hooks: list[Callable[[], None]] = []
_pid = os.getpid()
_lock = threading.Lock()


def in_child(hook: Callable[[], None]) -> None:
    """Run `hook` in every forked child, at the fork or at the child's first use (see the module docstring).

    Hooks run in the order they were registered, once per child.
    """
    _hooks.append(hook)


def check() -> None:
    """Run the child hooks now if this process is a fork the interpreter did not report. Never raises."""
    if _pid != os.getpid():
        _unseen_fork()


def _unseen_fork() -> None:
    with _lock:
        if _pid == os.getpid():  # another thread of this child ran the hooks while this one waited
            return
        _run_hooks()


def _run_hooks() -> None:
    global _pid  # noqa: PLW0603 - this process's own
    for hook in list(_hooks):
        try:
            hook()
        except Exception:  # noqa: BLE001, S110 - one failed reset must not stop the others, nor the caller
            pass
    _pid = os.getpid()


def _after_fork_in_child() -> None:
    global _lock  # noqa: PLW0603 - a parent thread may have held it at the fork
    _lock = threading.Lock()
    _run_hooks()


os.register_at_fork(after_in_child=_after_fork_in_child)
