"""`secevents doctor`: the configuration in force and where each value came from, the integrations and auth
stacks that are active, and what the library would warn about (`_findings`).

Run on its own it shows what the environment gives; `--app module` imports the application first (its
`configure()` calls run, its `SecurityEvents(app)` is installed), and with `DJANGO_SETTINGS_MODULE` set
Django is set up, so `SECEVENTS` counts too.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from typing import IO, Any, Final

from graffer_secevents._config import OPTIONS, Config, get_config, is_development
from graffer_secevents._findings import config_findings

__all__ = ["doctor_report", "render_text", "run_doctor"]

FRAMEWORKS: Final = (
    ("django", "django", "graffer_secevents.integrations.django"),
    ("flask", "flask", "graffer_secevents.integrations.flask"),
    ("fastapi", "fastapi", "graffer_secevents.integrations.fastapi"),
    ("starlette (ASGI)", "starlette", "graffer_secevents.integrations.asgi"),
    ("WSGI", None, "graffer_secevents.integrations.wsgi"),
    ("structlog", "structlog", "graffer_secevents.integrations.structlog"),
)
"""(name, the package it needs, our integration module): active once the application imported it."""
AUTH_STACKS: Final = (
    ("Django auth", "django.contrib.auth", "graffer_secevents.integrations.django"),
    ("Django REST framework / simplejwt", "rest_framework", "graffer_secevents.integrations.django.drf"),
    ("django-allauth", "allauth", "graffer_secevents.integrations.django.allauth"),
    ("Flask-Login", "flask_login", "graffer_secevents.integrations.flask"),
    ("Flask-Security", "flask_security", "graffer_secevents.integrations.flask_security"),
    ("FastAPI Users", "fastapi_users", "graffer_secevents.integrations.fastapi_users"),
    ("Starlette AuthenticationMiddleware", "starlette", "graffer_secevents.integrations.starlette_auth"),
)


def _installed(package: str | None) -> bool:
    if package is None:
        return True
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def _shown(name: str, value: Any) -> str:
    if name == "hash_key":
        if value is None:
            return "not set"
        size = len(value.encode() if isinstance(value, str) else value)
        return f"set ({size} bytes, not shown)"
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value)  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    if isinstance(value, str | int | float | bool) or value is None:
        return str(value) if value is not None else "-"
    return type(value).__name__


def doctor_report(cfg: Config | None = None, *, behind_proxy: str | None = None) -> dict[str, Any]:
    """What `secevents doctor` shows, as data (`--format json`)."""
    cfg = cfg if cfg is not None else get_config()
    options = [
        {
            "option": opt.name,
            "value": _shown(opt.name, cfg.options[opt.name]),
            "source": cfg.sources.get(opt.name, "default"),
        }
        for opt in OPTIONS
    ]

    def state(package: str | None, module: str) -> str:
        if module in sys.modules:
            return "active"
        return "installed, not used" if _installed(package) else "not installed"

    return {
        "development": is_development(cfg.env),
        "env": cfg.env,
        "options": options,
        "metrics": type(cfg.metrics).__name__ if cfg.metrics is not None else "off",
        "integrations": [{"name": n, "state": state(p, m)} for n, p, m in FRAMEWORKS],
        "auth_stacks": [{"name": n, "state": state(p, m)} for n, p, m in AUTH_STACKS],
        "findings": [
            {"id": f.id, "message": f.message} for f in config_findings(cfg, behind_proxy=behind_proxy)
        ],
    }


def render_text(report: dict[str, Any]) -> str:
    """The report for a person."""
    width = max(len(row["option"]) for row in report["options"])
    value_width = min(40, max(len(row["value"]) for row in report["options"]))
    lines = ["configuration in force (option, value, where it came from):"]
    lines += [
        f"  {row['option']:<{width}}  {row['value']:<{value_width}}  {row['source']}"
        for row in report["options"]
    ]
    env = report["env"] or "unset"
    kind = "development" if report["development"] else "not development: a hash_key is required"
    lines += [f"  env {env}: {kind}", f"  metrics backend: {report['metrics']}", ""]
    for title, key in (("integrations", "integrations"), ("auth stacks", "auth_stacks")):
        lines.append(f"{title}:")
        lines += [f"  {row['name']}: {row['state']}" for row in report[key]]
        lines.append("")
    findings = report["findings"]
    lines.append(f"findings: {len(findings) or 'none'}")
    import shutil
    import textwrap

    width = max(40, shutil.get_terminal_size().columns)
    for f in findings:
        text = f"[{f['id']}] {f['message'].removeprefix('graffer_secevents: ')}"
        lines += textwrap.wrap(
            text, width, initial_indent="  ", subsequent_indent="    ", break_long_words=False
        )
    return "\n".join(lines) + "\n"


def _cannot(what: str, exc: Exception) -> int:
    """One line on stderr naming what failed and why, no traceback; the usage-error status."""
    reason = " ".join(str(exc).split())[:500]
    if isinstance(exc, ModuleNotFoundError) and exc.name == "django":
        reason += ' (pip install "graffer-secevents[django]")'
    sys.stderr.write(f"secevents doctor: {what}: {type(exc).__name__}: {reason}\n")
    return 2


def run_doctor(app: str | None, fmt: str, out: IO[str]) -> int:
    """Import `app` (if given) and Django (if `DJANGO_SETTINGS_MODULE` is set), then print the report."""
    import warnings

    behind_proxy = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # doctor reports the findings itself, once
        if app:
            sys.path.insert(0, os.getcwd())
            try:
                importlib.import_module(app.split(":", 1)[0])
            except Exception as exc:  # noqa: BLE001 - a typo, a missing package, an app refusing to start
                return _cannot(f"cannot import --app {app}", exc)
        if os.environ.get("DJANGO_SETTINGS_MODULE"):
            try:
                import django

                django.setup()
            except Exception as exc:  # noqa: BLE001 - no settings module, Django missing, a bad setting
                settings = os.environ["DJANGO_SETTINGS_MODULE"]
                return _cannot(f"cannot set up Django (DJANGO_SETTINGS_MODULE={settings})", exc)
            from graffer_secevents.integrations.django.checks import _behind_proxy  # pyright: ignore[reportPrivateUsage]

            behind_proxy = _behind_proxy()
        report = doctor_report(behind_proxy=behind_proxy)
    if fmt == "json":
        out.write(json.dumps(report, indent=2) + "\n")
    else:
        out.write(render_text(report))
    return 0
