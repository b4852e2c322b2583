"""The one error of the replay engine."""

from __future__ import annotations

__all__ = ["DetectError"]


class DetectError(ValueError):
    """A rule, query or condition the replay engine cannot evaluate; the message names the construct.

    The engine never skips what it does not understand: an unsupported detection method, aggregation,
    operator or search construct is this error, so a rule is never silently half-evaluated.
    """
