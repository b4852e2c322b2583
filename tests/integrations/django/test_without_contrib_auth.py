"""A Django project without `django.contrib.auth` (an API checking its own tokens, no user model) starts,
passes `manage.py check`, and writes its events: the auth seams that need Django's user model stay out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src"

PROJECT = textwrap.dedent(
    """
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False, SECRET_KEY="s" * 50, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, DATABASES={},
        INSTALLED_APPS=[EXTRA_APPS"graffer_secevents.integrations.django"],
        MIDDLEWARE=["graffer_secevents.integrations.django.SecurityEventsMiddleware"],
        # Django's default backend: it cannot even be imported without django.contrib.auth's models.
        AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.ModelBackend"],
        SECEVENTS={"hash_key": "k" * 32},  # the default 401 rule: a credential sent makes it invalid_token
    )

    from django.http import JsonResponse
    from django.urls import path

    import graffer_secevents as secevents


    def export(request):
        if request.headers.get("Authorization") != "Bearer good":
            return JsonResponse({"detail": "unauthenticated"}, status=401)
        secevents.log_data_export(secevents.User(id="svc-7"), "orders", record_count=3)
        return JsonResponse({"ok": True})


    urlpatterns = [path("export", export)]
    django.setup()

    from django.core.management import call_command
    from django.test import Client

    call_command("check", fail_level="ERROR")
    client = Client(REMOTE_ADDR="203.0.113.9")
    print("status", client.get("/export", HTTP_AUTHORIZATION="Bearer good").status_code, flush=True)
    print("status", client.get("/export", HTTP_AUTHORIZATION="Bearer forged-token").status_code, flush=True)
    """
)


def _run(apps: str) -> tuple[list[str], list[dict[str, object]]]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("SECEVENTS_STRICT", None)
    done = subprocess.run(
        [sys.executable, "-c", PROJECT.replace("EXTRA_APPS", apps)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    statuses = [line for line in lines if line.startswith("status")]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    return statuses, records


def test_a_project_without_django_contrib_auth_starts_and_writes_its_events() -> None:
    statuses, records = _run("")
    assert statuses == ["status 200", "status 401"]
    types = [r["evt"]["type"] for r in records if "evt" in r]  # type: ignore[index]
    assert types == ["data_export", "authn_login_fail"]
    export, refused = (r for r in records if "evt" in r)
    assert export["usr"] == {"id": "svc-7"}
    assert refused["network"] == {"client": {"ip": "203.0.113.9"}}
    assert refused["evt"]["reason"] == "invalid_token"  # type: ignore[index]
    assert "forged-token" not in json.dumps(records)
    assert records[-1]["secevents"]["end"] is True  # type: ignore[index]


def test_the_same_project_with_django_contrib_auth_keeps_every_seam() -> None:
    """The control: with the auth app the same project runs as before (the seams need its models)."""
    statuses, records = _run('"django.contrib.auth", "django.contrib.contenttypes", ')
    assert statuses == ["status 200", "status 401"]
    assert [r["evt"]["type"] for r in records if "evt" in r] == ["data_export", "authn_login_fail"]  # type: ignore[index]
