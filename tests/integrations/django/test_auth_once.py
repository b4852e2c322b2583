"""Exactly one event per denied request, whoever records it, and auth stacks that cost nothing unless used."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.test import Client, override_settings

from graffer_secevents.testing import Capture

WITH_401 = override_settings(SECEVENTS_STATUS_EVENTS={401: "authz_fail"})
SRC = Path(__file__).resolve().parents[3] / "src"


@WITH_401
@pytest.mark.parametrize(
    ("headers", "status", "evt_type"),
    [({}, 401, "authn_login_fail"), ({"HTTP_X_API_KEY": "k-good"}, 403, "authz_fail")],
)
def test_a_failure_written_with_the_public_api_is_the_requests_only_event(
    security_events: Capture, headers: dict[str, str], status: int, evt_type: str
) -> None:
    """``log_login(..., "failure")`` / ``emit("authz_fail")`` in the view: the status rule adds nothing."""
    response = Client().get("/api-key/", REMOTE_ADDR="203.0.113.7", HTTP_X_REQUEST_ID="once-1", **headers)
    assert response.status_code == status
    assert [r["evt"]["type"] for r in security_events.records] == [evt_type]
    record = security_events.records[0]
    assert record["http"]["request_id"] == "once-1"
    assert record["network"]["client"]["ip"] == "203.0.113.7"


@WITH_401
def test_a_success_does_not_silence_the_status_rule(security_events: Capture) -> None:
    """Only failures mark the request: a 401 after a success event still gets its own event."""
    response = Client().post("/api/login/", {"username": "ada", "password": "correct horse"})
    assert response.status_code == 200
    security_events.clear()
    Client().get("/status/401/")
    security_events.assert_emitted("authz_fail", http__status_code=401)


def test_stacks_not_in_installed_apps_are_never_imported() -> None:
    """DRF, simplejwt and allauth are installed here, but a project without them in INSTALLED_APPS (and
    ``import graffer_secevents``) imports none of them."""
    code = textwrap.dedent(
        """
        import sys
        import graffer_secevents, graffer_secevents.integrations.django
        import django
        from django.conf import settings
        settings.configure(INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes",
                                           "graffer_secevents.integrations.django"])
        django.setup()
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in
                        ("rest_framework", "rest_framework_simplejwt", "allauth", "axes", "django_otp",
                         "oauth2_provider"))
        print(loaded)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": str(SRC)}
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
