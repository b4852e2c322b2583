"""The auth-stack pages: their Python compiles, and the five-line recipe for an unsupported stack works as
the page says, through the real Django middleware."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings

from graffer_secevents.integrations.django import SecurityEventsMiddleware
from graffer_secevents.testing import Capture

ROOT = Path(__file__).resolve().parents[3]
PAGES = ["docs/integrations/auth-stacks.md", "docs/integrations/drf.md", "docs/integrations/allauth.md"]
FENCE = re.compile(
    r"^(?P<marker><!-- docs-test: (?P<kind>[^>]*)-->\n)?```python\n(?P<body>.*?)^```$", re.M | re.S
)


def python_blocks(page: str) -> list[tuple[str, str]]:
    text = (ROOT / page).read_text(encoding="utf-8")
    return [(m.group("kind") or "", m.group("body")) for m in FENCE.finditer(text)]


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_compile(page: str) -> None:
    assert python_blocks(page)
    for number, (_, code) in enumerate(python_blocks(page), 1):
        compile(code, f"{page}, python block {number}", "exec")


def recipe() -> Any:
    [code] = [body for kind, body in python_blocks(PAGES[0]) if kind.startswith("the recipe")]
    assert "graffer_secevents._" not in code  # public API only
    assert len([line for line in code.splitlines() if line.strip()]) <= 5
    namespace: dict[str, Any] = {}
    exec(compile(code, "auth-stacks recipe", "exec"), namespace)
    return namespace["record_login"]


@override_settings(SECEVENTS_STATUS_EVENTS={401: "authz_fail"})
@pytest.mark.parametrize("typed", ["ada", "mallory"])
def test_the_five_line_recipe_records_one_event_per_attempt(security_events: Capture, typed: str) -> None:
    record_login = recipe()
    account = get_user_model().objects.filter(username=typed).first()

    def view(request: HttpRequest) -> HttpResponse:  # an unsupported stack refusing, answered 401
        record_login(account, typed, ok=False, reason="invalid_credentials" if account else "unknown_user")
        return HttpResponse("no", status=401)

    request = RequestFactory().post(
        "/custom-login/", REMOTE_ADDR="203.0.113.50", HTTP_X_REQUEST_ID="recipe-1"
    )
    assert SecurityEventsMiddleware(view)(request).status_code == 401
    [record] = security_events.records  # the 401 rule adds nothing
    assert record["evt"]["type"] == "authn_login_fail"
    assert record["usr"]["exists"] is (account is not None)
    assert record["usr"]["id"] == (str(account.pk) if account else record["usr"]["login"])
    assert record["network"]["client"]["ip"] == "203.0.113.50"
    assert record["http"]["request_id"] == "recipe-1"
    assert typed.encode() not in security_events.lines[0]  # the login is hashed

    security_events.clear()
    if account is not None:
        record_login(account, typed, ok=True)
        security_events.assert_emitted("authn_login_success", usr__id=str(account.pk))
