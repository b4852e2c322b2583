"""Django system checks (`manage.py check`, and every `runserver`/`migrate`): the library's findings.

Registered by the app's `ready()`. Each finding of `_findings.config_findings` is a `checks.Warning` with a
stable id (`graffer_secevents.W001` ...), so a project can silence one with `SILENCED_SYSTEM_CHECKS`. Django
prints them where it prints its own, once per command, and not in the workers of a WSGI/ASGI server
(which do not run checks): the warnings the library would give otherwise are left to these.
"""

from __future__ import annotations

from typing import Any, Final

from django.core import checks

from graffer_secevents._findings import config_findings

__all__ = ["CHECK_IDS", "secevents_checks"]

CHECK_IDS: Final = {
    "hash_key.missing": "graffer_secevents.W001",
    "metrics.off": "graffer_secevents.W002",
    "metrics.unreachable": "graffer_secevents.W003",
    "proxies.missing": "graffer_secevents.W004",
}
_HINTS: Final = {
    "hash_key.missing": "Set SECEVENTS['hash_key'] (e.g. from os.environ['SECEVENTS_HASH_KEY']) in settings.",
    "metrics.off": 'pip install "graffer-secevents[datadog]", or SECEVENTS["metrics"] = "none" if intended.',
    "metrics.unreachable": "Run the Datadog Agent with DogStatsD, or point DD_DOGSTATSD_URL at it.",
    "proxies.missing": "Set SECEVENTS['trusted_proxies'] to your load balancer's CIDR (a string or a list).",
}


def _behind_proxy() -> str | None:
    from django.conf import settings

    for name in ("SECURE_PROXY_SSL_HEADER", "USE_X_FORWARDED_HOST", "USE_X_FORWARDED_PORT"):
        if getattr(settings, name, None):
            return f"settings.{name} is set"
    return None


@checks.register()  # type: ignore[untyped-decorator]  # Django ships no type information
def secevents_checks(app_configs: Any = None, **_kwargs: Any) -> list[Any]:
    """The library's findings as Django check messages."""
    return [
        checks.Warning(
            finding.message.removeprefix("graffer_secevents: "),
            hint=_HINTS.get(finding.id),
            id=CHECK_IDS.get(finding.id, "graffer_secevents.W000"),
        )
        for finding in config_findings(behind_proxy=_behind_proxy())
    ]
