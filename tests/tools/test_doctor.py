"""`secevents doctor`: the configuration in force with each value's source, the active integrations and auth
stacks, and the findings; run as a user runs it (the console script, in a fresh process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

SECEVENTS = Path(sys.executable).parent / "secevents"
KEY = "doctor-key-never-printed-0123"


def doctor(cwd: Path, *args: str, **env: str) -> dict[str, Any]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SECEVENTS_", "DD_"))}
    result = subprocess.run(
        [str(SECEVENTS), "doctor", "--format", "json", *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert KEY not in result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def sources(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {row["option"]: (row["value"], row["source"]) for row in report["options"]}


def test_doctor_says_where_each_value_came_from(tmp_path: Path) -> None:
    (tmp_path / "shopapp.py").write_text(
        textwrap.dedent(
            """
            from flask import Flask
            import graffer_secevents as secevents
            from graffer_secevents.integrations.flask import SecurityEvents

            secevents.configure(service="shop", metrics="none")
            app = Flask(__name__)
            SecurityEvents(app)
            """
        )
    )
    report = doctor(
        tmp_path, "--app", "shopapp", SECEVENTS_TRUSTED_PROXIES="10.0.0.0/22", SECEVENTS_HASH_KEY=KEY
    )
    shown = sources(report)
    assert shown["service"] == ("shop", "argument")
    assert shown["metrics"] == ("none", "argument")
    assert shown["trusted_proxies"] == ("10.0.0.0/22", "environment (SECEVENTS_TRUSTED_PROXIES)")
    assert shown["hash_key"] == (f"set ({len(KEY)} bytes, not shown)", "environment (SECEVENTS_HASH_KEY)")
    assert shown["delivery"] == ("queue", "default")
    states = {row["name"]: row["state"] for row in report["integrations"] + report["auth_stacks"]}
    assert states["flask"] == "active" and states["Flask-Login"] == "active"
    assert states["django"] == "installed, not used"
    assert report["findings"] == []


def test_doctor_reads_django_settings(tmp_path: Path) -> None:
    (tmp_path / "doctor_settings.py").write_text(
        textwrap.dedent(
            """
            INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "graffer_secevents.integrations.django"]
            DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
            SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
            SECEVENTS = {"service": "django-shop", "metrics": "none"}
            """
        )
    )
    report = doctor(tmp_path, DJANGO_SETTINGS_MODULE="doctor_settings", PYTHONPATH=str(tmp_path))
    shown = sources(report)
    assert shown["service"] == ("django-shop", "settings.SECEVENTS")
    assert shown["hash_key"] == ("not set", "default")
    assert {f["id"] for f in report["findings"]} == {"hash_key.missing", "proxies.missing"}
    states = {row["name"]: row["state"] for row in report["integrations"] + report["auth_stacks"]}
    assert states["django"] == "active" and states["Django auth"] == "active"


def test_doctor_text_names_the_findings(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SECEVENTS_", "DD_"))}
    result = subprocess.run(
        [str(SECEVENTS), "doctor"],
        cwd=tmp_path,
        env={**base, "SECEVENTS_METRICS": "none"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "configuration in force" in result.stdout
    assert "[hash_key.missing]" in result.stdout and "secrets.token_urlsafe" in result.stdout
    assert "env unset: development" in result.stdout


def _doctor_fails(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SECEVENTS_", "DD_", "DJANGO_"))}
    return subprocess.run(
        [str(SECEVENTS), "doctor", *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_app_that_cannot_be_imported_is_a_clear_usage_error(tmp_path: Path) -> None:
    """A typo in `--app`, an app that raises while importing (here: configure() refusing to start outside
    development without a hash key) or a `DJANGO_SETTINGS_MODULE` that does not import: one line naming
    what failed, status 2, no traceback."""
    (tmp_path / "prodapp.py").write_text(
        'import graffer_secevents\n\ngraffer_secevents.configure(service="shop", env="prod")\n',
        encoding="utf-8",
    )
    cases = [
        (("--app", "shopp"), {}, "cannot import --app shopp: ModuleNotFoundError"),
        (("--app", "prodapp"), {}, "cannot import --app prodapp: "),
        ((), {"DJANGO_SETTINGS_MODULE": "nosuch.settings"}, "cannot set up Django (DJANGO_SETTINGS_MODULE="),
    ]
    for args, env, expected in cases:
        result = _doctor_fails(tmp_path, *args, **env)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith(f"secevents doctor: {expected}"), result.stderr
        assert result.stdout == ""
