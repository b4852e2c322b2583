"""The one guard every public entry point runs inside (sentry-python's `capture_internal_exceptions()`).

Hostile input is not what this catches: the pipeline reads caller objects only through the safe readers of
`_limits` and repairs what it cannot serialise, so bad input is noted on a written record. What reaches
the guard is a bug of ours. Lenient mode counts it (`secevents.dropped{reason:internal_error}`) and says
so once on stderr; strict mode (tests) turns it into an `EventValidationError` whose cause is the bug, so
a test sees our error type and the traceback, never a bare `RuntimeError`.

An entry point re-entered on the thread already running one (a signal handler, a `__del__` or `weakref`
callback, a caller object's `__str__`, all of which can interrupt an event half-way with its locks held)
is deferred: it runs on that thread right after the interrupted one, before that call returns.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, Final, ParamSpec

from . import _config
from ._errors import ConfigurationError, EventValidationError
from ._metrics import record_dropped

__all__ = ["guarded", "internal_errors"]

_P = ParamSpec("_P")
_counter: Final = [0]


def guarded(entry: Callable[_P, None], name: str | None = None) -> Callable[_P, None]:
    """Run `entry` inside the guard: in lenient mode it never raises; in strict mode only our error type.

    Args:
        entry: a public function that emits (it returns nothing).
        name: what errors call the entry point; `entry`'s own name by default.

    Returns:
        The guarded function, with `entry`'s name, signature and docstring.

    Example:
        >>> @guarded
        ... def log_something(user: object) -> None: ...
    """
    name = name or entry.__name__

    @functools.wraps(entry)
    def guard(*args: _P.args, **kwargs: _P.kwargs) -> None:
        here = _thread.__dict__
        if here.get("busy"):
            _defer(here, name, functools.partial(entry, *args, **kwargs))
            return
        here["busy"] = True
        try:
            try:  # _run, inlined: this is every event's path
                entry(*args, **kwargs)
            except (EventValidationError, ConfigurationError):
                if _strict():
                    raise  # strict mode: invalid input, or a bad SECEVENTS_* environment, as our own types
                _internal_error(name, None)  # lenient mode notes problems instead: reaching here is a bug
            except Exception as exc:  # noqa: BLE001 - the one place that catches what an entry point leaks
                _leaked(name, exc)
            if "deferred" in here:
                _run_deferred(here)
        finally:
            here["busy"] = False

    return guard


_thread: Final = threading.local()
"""Per thread: `busy` while an entry point runs, and the calls that re-entered it (`deferred`)."""
MAX_DEFERRED: Final = 1000


def _defer(here: dict[str, Any], name: str, call: Callable[[], None]) -> None:
    """An entry point re-entered on the thread that is running one: a signal handler, a `__del__` or a
    `weakref` callback the garbage collector ran, a caller object's `__str__`, interrupted an event half-way,
    with the delivery and metrics locks it holds (not reentrant: taking one again would wait forever).
    The call runs on this thread as soon as the interrupted one is done, before it returns."""
    deferred: list[tuple[str, Callable[[], None]]] = here.setdefault("deferred", [])
    if len(deferred) < MAX_DEFERRED:
        deferred.append((name, call))
    else:  # a handler that fires faster than events are written: lost, and said
        _internal_error(name, RecursionError("too many events emitted from signal handlers at once"))


def _run_deferred(here: dict[str, Any]) -> None:
    """Run the calls deferred while this thread's entry point ran (`_defer`), each inside the guard."""
    deferred = here.pop("deferred")
    while deferred:
        name, call = deferred.pop(0)
        try:
            call()
        except (EventValidationError, ConfigurationError):
            if _strict():
                raise
            _internal_error(name, None)
        except Exception as exc:  # noqa: BLE001 - judged as the guard judges it
            _leaked(name, exc)
        if "deferred" in here:  # a handler that fired during this one
            deferred.extend(here.pop("deferred"))


def _leaked(name: str, exc: Exception) -> None:
    if _strict():
        raise EventValidationError(
            name, [f"internal error ({type(exc).__name__}); please report it, the cause is attached"]
        ) from exc
    _internal_error(name, exc)


def internal_errors() -> int:
    """How many entry-point calls this process lost to an internal error (tests and diagnostics)."""
    return _counter[0]


def _strict() -> bool:
    cfg = _config._current
    if cfg is not None:
        return cfg.strict
    # No configuration could be built (a bad environment): strictness as the environment asks for it.
    return os.environ.get("SECEVENTS_STRICT", "").strip().lower() in _config._TRUE


def _internal_error(name: str, exc: Exception | None) -> None:
    _counter[0] += 1
    cfg = _config._current
    if cfg is not None and cfg.metrics is not None:
        record_dropped(cfg.metrics, "internal_error")
    if _counter[0] == 1:
        what = type(exc).__name__ if exc is not None else "a validation error in lenient mode"
        try:
            sys.stderr.write(
                f"graffer_secevents: {name} failed with an internal error ({what}); the event was dropped "
                "and counted in secevents.dropped{reason:internal_error}; please report it\n"
            )
        except Exception:  # noqa: BLE001, S110 - stderr itself may be gone
            pass
