"""The `SECEVENTS` Django setting: one dict of `configure()` options plus the middleware's
`status_events`.

    SECEVENTS = {
        "service": "shop",
        "trusted_proxies": ["10.0.0.0/8"],
        "status_events": {401: "authz_fail"},
    }

An unknown key is a `ConfigurationError` at start-up naming the key and the nearest valid one. The flat
`SECEVENTS_STATUS_EVENTS` of 0.1 still works for this release, with a `DeprecatedSettingWarning`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from graffer_secevents._config import OPTIONS, arguments_from, check_names, configure
from graffer_secevents._errors import ConfigurationError, SecEventsWarning, warn_once

__all__ = [
    "DJANGO_KEYS",
    "DeprecatedSettingWarning",
    "apply_settings",
    "http_options_setting",
    "status_events_setting",
]

HTTP_KEYS: Final = (
    "record_unauthenticated",
    "record_invalid_credentials",
    "credential_headers",
    "credential_statuses",
)
"""The middleware's HTTP-semantics options in `SECEVENTS` (keyword arguments of `http_rules`)."""

DJANGO_KEYS: Final = ("status_events", "sensitive_models", *HTTP_KEYS)
"""The keys of `SECEVENTS` that are Django's own (the middleware's HTTP semantics, the admin's sensitive
models), not `configure()` options."""


class DeprecatedSettingWarning(SecEventsWarning, DeprecationWarning):
    """A Django setting of an earlier release is used; the message names its replacement."""


def _setting() -> Mapping[str, Any]:
    from django.conf import settings

    value: object = getattr(settings, "SECEVENTS", None)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"settings.SECEVENTS: expected a dict of configure() options, got {type(value).__name__}"
        )
    options: Mapping[str, Any] = value
    check_names(options, [*(opt.name for opt in OPTIONS), *DJANGO_KEYS], "settings.SECEVENTS")
    return options


def apply_settings() -> None:
    """Apply `SECEVENTS`'s `configure()` options (the app's `ready()` calls this once).

    Raises:
        ConfigurationError: an unknown key (the message names the nearest valid one) or an invalid value.
    """
    options = _setting()
    named = {key: value for key, value in options.items() if key not in DJANGO_KEYS}
    if named:
        with arguments_from("settings.SECEVENTS"):
            configure(**named)


def status_events_setting() -> Mapping[int, str | None] | None:
    """The middleware's per-status events: `SECEVENTS["status_events"]`, else the deprecated flat setting.

    Returns:
        The mapping as written in settings, or `None` when neither is set.

    Raises:
        ConfigurationError: both are set (only one may be).
    """
    from django.conf import settings

    nested: Mapping[int, str | None] | None = _setting().get("status_events")
    flat: Mapping[int, str | None] | None = getattr(settings, "SECEVENTS_STATUS_EVENTS", None)
    if flat is None:
        return nested
    if nested is not None:
        raise ConfigurationError(
            "settings.SECEVENTS_STATUS_EVENTS and settings.SECEVENTS['status_events'] are both set; keep "
            "only SECEVENTS['status_events']"
        )
    warn_once(
        "django-flat-status-events",
        "graffer_secevents: settings.SECEVENTS_STATUS_EVENTS is deprecated and will be removed in the next "
        "release; move it into SECEVENTS as SECEVENTS = {..., 'status_events': {...}}",
        category=DeprecatedSettingWarning,
        stacklevel=4,
    )
    return flat


def http_options_setting() -> dict[str, Any]:
    """The middleware's HTTP-semantics options set in `SECEVENTS` (`record_unauthenticated`,
    `record_invalid_credentials`, `credential_headers`, `credential_statuses`), as keyword arguments of
    `graffer_secevents.integrations._common.http_rules`."""
    options = _setting()
    return {key: options[key] for key in HTTP_KEYS if key in options}
