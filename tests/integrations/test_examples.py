"""The example apps run on their own and record events with their real logins (Flask: see the demo test)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import orjson

from graffer_secevents.testing import Capture

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_fastapi_example_records_logins_denials_and_admin_actions(security_events: Capture) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    shop = load(EXAMPLES / "fastapi_app.py", "secevents_example_fastapi_app")
    with TestClient(shop.app, client=("198.51.100.10", 1)) as client:
        assert (
            client.post("/login", json={"username": "ada@example.com", "password": "nope"}).status_code == 401
        )
        token = client.post(
            "/login", json={"username": "ada@example.com", "password": "correct horse battery staple"}
        ).json()["token"]
        ada = {"Authorization": f"Bearer {token}"}
        assert client.get("/admin/users", headers=ada).status_code == 403
        assert client.post("/logout", headers=ada).status_code == 200
        root_token = client.post(
            "/login", json={"username": "root@example.com", "password": "root-admin-pass"}
        ).json()["token"]
        client.post("/admin/users/1002/disable", headers={"Authorization": f"Bearer {root_token}"})
    ip = {"network__client__ip": "198.51.100.10"}
    security_events.assert_emitted(
        "authn_login_fail", usr__exists=True, evt__reason="invalid_credentials", **ip
    )
    security_events.assert_emitted("authn_login_success", usr__id="1001", **ip)
    security_events.assert_emitted("authz_fail", usr__id="1001", http__route="/admin/users", **ip)
    security_events.assert_emitted("session_logout", usr__id="1001", **ip)
    security_events.assert_emitted("authz_admin", usr__id="1", evt__resource="/users/1002", **ip)


DJANGO_SCRIPT = """
import django, os
django.setup()
from django.core.management import call_command
from django.test import Client
call_command("setup_demo", verbosity=0)
client = Client(REMOTE_ADDR="198.51.100.10")
assert client.post("/accounts/login/", {"username": "ada", "password": "nope"}).status_code == 200
assert client.post("/accounts/login/", {"username": "ada", "password": "correct horse battery staple"}).status_code == 302
assert client.get("/staff/users/").status_code == 403
assert client.post("/accounts/logout/").status_code == 302
api = Client(REMOTE_ADDR="198.51.100.10")
assert api.post("/api/token/", {"username": "ada", "password": "nope"}).status_code == 401
tokens = api.post("/api/token/", {"username": "ada", "password": "correct horse battery staple"}).json()
bearer = {"HTTP_AUTHORIZATION": "Bearer " + tokens["access"]}
assert api.get("/api/orders/", **bearer).status_code == 200
assert api.get("/api/orders/", HTTP_AUTHORIZATION="Bearer forged.token.value").status_code == 401
assert api.post("/api/token/refresh/", {"refresh": tokens["refresh"]}).status_code == 200
assert api.post("/api/token/refresh/", {"refresh": tokens["refresh"]}).status_code == 401
"""


def test_django_example_records_events_with_no_event_code_for_logins(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "SHOP_DB": str(tmp_path / "shop.sqlite3"),
        "PYTHONPATH": str(EXAMPLES / "django_app"),
    }
    result = subprocess.run(
        [sys.executable, "-c", DJANGO_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = [orjson.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    records = [r for r in records if "evt" in r]  # not the writer's end record
    types = [r["evt"]["type"] for r in records]
    assert types[0] == "authz_change"  # setup_demo creates root as staff: the privilege it is born with
    assert records[0]["actor"]["name"] == "manage:setup_demo"
    assert records[0]["evt"]["granted"] == ["staff"]
    records, types = records[1:], types[1:]
    assert types == [
        "authn_login_fail",
        "authn_login_success",
        "authz_fail",
        "session_logout",
        # the token API: a wrong password, a token login, a forged JWT, a rotated refresh token used again
        "authn_login_fail",
        "authn_login_success",
        "authn_login_fail",
        "authn_token_reuse",
    ]
    assert records[-2]["evt"]["reason"] == "invalid_token"
    assert "usr" not in records[6]  # a forged token names no account
    assert {r["usr"]["id"] for n, r in enumerate(records) if n != 6} == {records[1]["usr"]["id"]}
    assert all(r["network"]["client"]["ip"] == "198.51.100.10" for r in records)
    assert all(r["service"] == "django-shop" for r in records)
    assert records[0]["usr"]["exists"] is True
