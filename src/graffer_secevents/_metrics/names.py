"""The metrics vocabulary: metric names, tag keys, bounded values and Datadog's tag rules.

A leaf module shared by the recording (`graffer_secevents._metrics`), the backends and the DogStatsD
client, so none of them imports another for a constant.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Final

__all__ = [
    "DROPPED_METRIC",
    "EVENTS_METRIC",
    "LOGIN_ATTEMPTS_METRIC",
    "METRIC_NAMES",
    "OTHER",
    "TAG_EVT_CATEGORY",
    "TAG_EVT_TYPE",
    "TAG_KEYS",
    "TAG_OUTCOME",
    "TAG_REASON",
    "TAG_USR_EXISTS",
    "UNIFIED_TAG_KEYS",
    "sanitize_tag_value",
]

EVENTS_METRIC: Final = "secevents.events"
LOGIN_ATTEMPTS_METRIC: Final = "secevents.login.attempts"
DROPPED_METRIC: Final = "secevents.dropped"
METRIC_NAMES: frozenset[str] = frozenset({EVENTS_METRIC, LOGIN_ATTEMPTS_METRIC, DROPPED_METRIC})

TAG_EVT_TYPE: Final = "evt_type"
TAG_EVT_CATEGORY: Final = "evt_category"
TAG_OUTCOME: Final = "outcome"
TAG_REASON: Final = "reason"
TAG_USR_EXISTS: Final = "usr_exists"
TAG_KEYS: frozenset[str] = frozenset(
    {TAG_EVT_TYPE, TAG_EVT_CATEGORY, TAG_OUTCOME, TAG_REASON, TAG_USR_EXISTS}
)
UNIFIED_TAG_KEYS: frozenset[str] = frozenset({"service", "env", "version"})
"""Added by the DogStatsD client (`DD_SERVICE`/`DD_ENV`/`DD_VERSION`) or the Agent, never by us;
monitors may scope on them."""

OTHER: Final = "other"

_TAG_MAX_LEN = 200
_NOT_TAG_CHAR = re.compile(r"[^a-z0-9_.:/-]")


def sanitize_tag_value(value: object, key: str) -> str:
    """Make `value` a Datadog tag value for `key`: lowercase, `[a-z0-9_.:/-]`, the whole tag ≤ 200.

    Other characters become `_`; an empty result (or one that is only `:`) becomes `other`.

    Example:
        >>> sanitize_tag_value("Invalid Credentials", "reason")
        'invalid_credentials'
    """
    if isinstance(value, Enum):
        value = value.value
    text = value if isinstance(value, str) else str(value)
    # Cut before lowering so a huge hostile value costs no more than a long one.
    cleaned = _NOT_TAG_CHAR.sub("_", text[: 2 * _TAG_MAX_LEN].lower())[: _TAG_MAX_LEN - len(key) - 1].rstrip(
        ":"
    )
    return cleaned or OTHER
