"""The library's own exception types.

Lenient mode (the default) never raises these into product code from an emit call; strict mode
(tests, ``SECEVENTS_STRICT=1``) raises :class:`EventValidationError` for invalid input, and
``configure()`` always raises :class:`ConfigurationError` for invalid settings.
"""

from __future__ import annotations

__all__ = ["ConfigurationError", "EventValidationError", "MissingDependencyError", "SecEventsError"]


class SecEventsError(Exception):
    """Base class of every error this library raises."""


class ConfigurationError(SecEventsError, ValueError):
    """A ``configure()`` argument or ``SECEVENTS_*`` variable is invalid; the message says what is allowed."""


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
