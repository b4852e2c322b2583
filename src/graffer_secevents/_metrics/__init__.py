"""Metrics recording and tag policy: count security events and login attempts with bounded tags.

What is counted and how to query it: `docs/metrics.md`. The backends live in `backends.py`, the DogStatsD
client and its process hooks in `dogstatsd.py`, the shared names in `names.py`; this module re-exports them.

Three counters, whatever the backend:

=============================  ===========================================================================
`secevents.events`           `evt_type`, `evt_category`, `outcome` (when the event has one)
`secevents.login.attempts`   `outcome`, `reason` (failures that give one), `usr_exists` (when known)
`secevents.dropped`          `reason` — events the library could not write
=============================  ===========================================================================

Tags are built only from bounded values: `record_event` takes no user id, login, email, IP, session or
request id, so none can reach a tag. Every value is sanitised to Datadog's tag rules and anything outside its
bounded set becomes `other`. `service`, `env` and `version` are *not* added by `record_event`:
the DogStatsD client adds them from `DD_SERVICE`/`DD_ENV`/`DD_VERSION` (and the Agent from container
labels), and the OpenTelemetry SDK carries them in its `Resource`; adding them here would send them twice.

Backends (`create_backend`): `dogstatsd` (the `datadog` package, imported lazily), `otel`
(`opentelemetry-api` only: a no-op until the application installs an SDK `MeterProvider`), `memory`
(tests) and `none`. `auto` picks `dogstatsd` when `datadog` is installed, else `none`.
Importing this module imports neither `datadog` nor `opentelemetry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from graffer_secevents._catalog import CATEGORIES

from .backends import (
    METRIC_BACKENDS,
    MemoryMetrics,
    MetricPoint,
    MetricsBackend,
    NoMetrics,
    OTelMetrics,
    create_backend,
)
from .dogstatsd import DogStatsdAddress, DogStatsdMetrics, resolve_dogstatsd_address
from .names import (
    DROPPED_METRIC,
    EVENTS_METRIC,
    LOGIN_ATTEMPTS_METRIC,
    METRIC_NAMES,
    OTHER,
    TAG_EVT_CATEGORY,
    TAG_EVT_TYPE,
    TAG_KEYS,
    TAG_OUTCOME,
    TAG_REASON,
    TAG_USR_EXISTS,
    UNIFIED_TAG_KEYS,
    sanitize_tag_value,
)

__all__ = [
    "DROPPED_METRIC",
    "DROP_REASONS",
    "EVENTS_METRIC",
    "LOGIN_ATTEMPTS_METRIC",
    "LOGIN_FAILURE_REASONS",
    "METRIC_BACKENDS",
    "METRIC_NAMES",
    "OTHER",
    "OUTCOMES",
    "OUTCOME_FAILURE",
    "OUTCOME_SUCCESS",
    "TAG_EVT_CATEGORY",
    "TAG_EVT_TYPE",
    "TAG_KEYS",
    "TAG_OUTCOME",
    "TAG_REASON",
    "TAG_USR_EXISTS",
    "UNIFIED_TAG_KEYS",
    "DogStatsdAddress",
    "DogStatsdMetrics",
    "MemoryMetrics",
    "MetricPoint",
    "MetricsBackend",
    "NoMetrics",
    "OTelMetrics",
    "create_backend",
    "record_dropped",
    "record_event",
    "resolve_dogstatsd_address",
    "sanitize_tag_value",
]

OUTCOME_SUCCESS: Final = "success"
OUTCOME_FAILURE: Final = "failure"
OUTCOMES: frozenset[str] = frozenset({OUTCOME_SUCCESS, OUTCOME_FAILURE})

LOGIN_FAILURE_REASONS: frozenset[str] = frozenset(
    {
        "invalid_credentials",
        "unknown_user",
        "account_locked",
        "account_disabled",
        "mfa_required",
        "mfa_failed",
        "password_expired",
        "rate_limited",
        "unverified",  # an account whose e-mail is not verified yet, refused by the stack (fastapi-users)
        "invalid_token",  # a forged, expired or unknown bearer token / JWT / API token (the auth stacks)
        "not_allowed",  # the right password, but the login form refuses the account (the admin's staff check)
        OTHER,
    }
)
DROP_REASONS: frozenset[str] = frozenset(
    {"queue_full", "write_error", "closed", "encoding", "exit", "internal_error", OTHER}
)  # see _delivery

_CATEGORIES: frozenset[str] = frozenset(CATEGORIES)

# Common spellings of the bounded reasons (after sanitising), so `reason="bad_password"` is not `other`.
_REASON_ALIASES: Mapping[str, str] = {
    "bad_credentials": "invalid_credentials",
    "bad_password": "invalid_credentials",
    "invalid_password": "invalid_credentials",
    "wrong_password": "invalid_credentials",
    "user_not_found": "unknown_user",
    "no_such_user": "unknown_user",
    "locked": "account_locked",
    "disabled": "account_disabled",
    "expired_password": "password_expired",
    "throttled": "rate_limited",
    "expired_token": "invalid_token",
    "bad_token": "invalid_token",
    "invalid_code": "mfa_failed",
}

# evt_type comes from the catalog (~75 types); this cap only matters if a caller bypasses it.
_MAX_EVT_TYPES = 256
_seen_evt_types: set[str] = set()
# (evt_type, category, outcome, login_attempt, reason, usr_exists) -> ((metric, tags), ...); see _cacheable.
_PLANS: dict[tuple[object, ...], tuple[tuple[str, tuple[str, ...]], ...]] = {}
_MAX_PLANS = 2048
_MAX_CACHED_ARG_LEN = 64
_DROP_TAGS: dict[str, tuple[str, ...]] = {}

# ----------------------------------------------------------------------------------------------------------
# Recording
# ----------------------------------------------------------------------------------------------------------


def record_event(
    backend: MetricsBackend,
    *,
    evt_type: str,
    category: str,
    outcome: str | None,
    login_attempt: bool,
    reason: str | None,
    usr_exists: bool | None,
) -> None:
    """Count one emitted event, and one login attempt when `login_attempt` is true. Never raises.

    Args:
        backend: from `create_backend`.
        evt_type: the catalog type, e.g. `"authn_login_fail"` (tag `evt_type`).
        category: the catalog category (tag `evt_category`; any other value becomes `other`).
        outcome: `"success"`, `"failure"` or `None` (no `outcome` tag); anything else is `other`.
        login_attempt: also count `secevents.login.attempts`.
        reason: why a login failed, mapped onto `LOGIN_FAILURE_REASONS` (anything else is `other`).
            Only failures carry it; a failure with `reason=None` gets **no** `reason` tag, so `other`
            keeps meaning "a reason we could not classify" rather than "the caller gave none".
        usr_exists: whether the account exists; `None` means unknown and adds no `usr_exists` tag.

    Raises:
        Nothing: a metrics failure must never break the caller (`BaseException` still propagates).

    Example:
        >>> m = MemoryMetrics()
        >>> record_event(m, evt_type="authn_login_fail", category="authentication", outcome="failure",
        ...              login_attempt=True, reason="unknown_user", usr_exists=False)
        >>> m.points[1].tags
        ('outcome:failure', 'reason:unknown_user', 'usr_exists:false')
    """
    try:
        key = (evt_type, category, outcome, login_attempt, reason, usr_exists)
        plan = _PLANS.get(key)
        if plan is None:
            plan = _plan(
                evt_type=evt_type,
                category=category,
                outcome=outcome,
                login_attempt=login_attempt,
                reason=reason,
                usr_exists=usr_exists,
            )
            if _cacheable(key):
                _PLANS[key] = plan
        for name, tags in plan:
            backend.count(name, 1, tags)
    except Exception:  # noqa: BLE001 - metrics never break the caller
        _debug("graffer_secevents: could not record event metrics")


def record_dropped(backend: MetricsBackend, reason: str) -> None:
    """Count one event that could not be written (`secevents.dropped`). Never raises.

    Args:
        backend: from `create_backend`.
        reason: one of `DROP_REASONS`; anything else is counted as `other`.

    Example:
        >>> m = MemoryMetrics()
        >>> record_dropped(m, "write_error")
        >>> m.points[0]
        MetricPoint(name='secevents.dropped', value=1, tags=('reason:write_error',))
    """
    try:
        tags = _DROP_TAGS.get(reason)
        if tags is None:
            value = _bounded(reason, TAG_REASON, DROP_REASONS)
            tags = (f"{TAG_REASON}:{value}",)
            if value != OTHER or reason == OTHER:
                _DROP_TAGS[reason] = tags
        backend.count(DROPPED_METRIC, 1, tags)
    except Exception:  # noqa: BLE001 - metrics never break the caller
        _debug("graffer_secevents: could not record a dropped event")


def _bounded(
    value: object, key: str, allowed: frozenset[str], aliases: Mapping[str, str] | None = None
) -> str:
    cleaned = sanitize_tag_value(value, key)
    if aliases is not None:
        cleaned = aliases.get(cleaned, cleaned)
    return cleaned if cleaned in allowed else OTHER


def _evt_type_value(evt_type: object) -> str:
    cleaned = sanitize_tag_value(evt_type, TAG_EVT_TYPE)
    if cleaned in _seen_evt_types:
        return cleaned
    if len(_seen_evt_types) >= _MAX_EVT_TYPES:
        return OTHER
    _seen_evt_types.add(cleaned)
    return cleaned


def _plan(
    *,
    evt_type: object,
    category: object,
    outcome: object,
    login_attempt: object,
    reason: object,
    usr_exists: object,
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    outcome_value = None if outcome is None else _bounded(outcome, TAG_OUTCOME, OUTCOMES)
    event_tags = [
        f"{TAG_EVT_TYPE}:{_evt_type_value(evt_type)}",
        f"{TAG_EVT_CATEGORY}:{_bounded(category, TAG_EVT_CATEGORY, _CATEGORIES)}",
    ]
    if outcome_value is not None:
        event_tags.append(f"{TAG_OUTCOME}:{outcome_value}")
    plan: list[tuple[str, tuple[str, ...]]] = [(EVENTS_METRIC, tuple(event_tags))]
    if login_attempt:
        login_tags: list[str] = []
        if outcome_value is not None:
            login_tags.append(f"{TAG_OUTCOME}:{outcome_value}")
        if outcome_value == OUTCOME_FAILURE and reason is not None:
            login_tags.append(
                f"{TAG_REASON}:{_bounded(reason, TAG_REASON, LOGIN_FAILURE_REASONS, _REASON_ALIASES)}"
            )
        if usr_exists is not None and usr_exists in (True, False):  # by equality, as the plan cache is keyed
            login_tags.append(f"{TAG_USR_EXISTS}:{'true' if usr_exists else 'false'}")
        plan.append((LOGIN_ATTEMPTS_METRIC, tuple(login_tags)))
    return tuple(plan)


def _cacheable(key: tuple[object, ...]) -> bool:
    # Only short inputs are kept, and only so many: hostile `reason` strings cost CPU, never memory.
    if len(_PLANS) >= _MAX_PLANS:
        return False
    return all(not isinstance(part, str) or len(part) <= _MAX_CACHED_ARG_LEN for part in key)


def _debug(message: str) -> None:
    """`message` and the exception being handled, at debug level; imports logging only when it is needed."""
    import logging

    logging.getLogger(__name__).debug(message, exc_info=True, stacklevel=2)
