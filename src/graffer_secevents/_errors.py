"""The library's own exception and warning types, and the one-time warning every module gives.

Lenient mode (the default) never raises these into product code from an emit call; strict mode
(tests, `SECEVENTS_STRICT=1`) raises `EventValidationError` for invalid input, and
`configure()` always raises `ConfigurationError` for invalid settings.
"""

from __future__ import annotations

import sys
import threading
import warnings

__all__ = [
    "ConfigurationError",
    "EventValidationError",
    "ForwardedHeaderIgnoredWarning",
    "MissingDependencyError",
    "SecEventsError",
    "SecEventsWarning",
    "warn_once",
]


class SecEventsError(Exception):
    """Base class of every error this library raises."""


class ConfigurationError(SecEventsError, ValueError):
    """A `configure()` argument or `SECEVENTS_*` variable is invalid; the message says what is allowed."""


class EventValidationError(SecEventsError, ValueError):
    """Strict mode: an event argument is invalid. The message names the field and what is allowed."""

    def __init__(self, evt_type: str, problems: list[str]) -> None:
        self.evt_type = evt_type
        self.problems = list(problems)
        super().__init__(f"{evt_type}: " + "; ".join(self.problems))


class MissingDependencyError(SecEventsError, ImportError):
    """An optional integration was used without its package installed; the message has the install command."""

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f'{package} is required for this integration: pip install "graffer-secevents[{extra}]"'
        )


class SecEventsWarning(UserWarning):
    """Base class of every warning this library gives: a setting that works but deserves attention.

    Silence them all with `warnings.filterwarnings("ignore", category=SecEventsWarning)`.
    """


class ForwardedHeaderIgnoredWarning(SecEventsWarning):
    """Forwarding headers were present but not used to resolve the client IP.

    Given once per process (and once more if `X-Forwarded-For` and `Forwarded` disagree). Silence it
    with `warnings.filterwarnings("ignore", category=ForwardedHeaderIgnoredWarning)`.
    """


_warned: set[str] = set()
_warn_lock = threading.Lock()


def warn_once(
    key: str, message: str, *, category: type[Warning] = SecEventsWarning, stacklevel: int = 3
) -> None:
    """Give `message` as a warning once per process for `key`. Never raises: it may run inside an emit
    call, where a warning turned into an error must not reach the caller (it goes to stderr instead).

    `stacklevel` counts from the caller of `warn_once`'s caller, as `warnings.warn` would from it.
    """
    # The flag check runs without the lock: after the first warning this is one set lookup.
    if key in _warned:
        return
    with _warn_lock:
        if key in _warned:
            return
        _warned.add(key)
    try:
        warnings.warn(message, category=category, stacklevel=stacklevel)
    except Exception:  # noqa: BLE001 - warnings turned into errors must not break the caller
        try:
            sys.stderr.write(message + "\n")
        except Exception:  # noqa: BLE001, S110 - stderr itself may be gone
            pass


def mark_warned(key: str) -> None:
    """Never give the one-time warning `key` in this process (another, truer message was given instead)."""
    with _warn_lock:
        _warned.add(key)


def reset_warnings() -> None:
    """Forget which one-time warnings were given (tests only)."""
    with _warn_lock:
        _warned.clear()
