"""Requests and record checks shared by the Django seams' tests (``test_seams_*.py``)."""

from __future__ import annotations

import itertools
import json
from typing import Any

from django.contrib.auth import get_user_model
from django.test import Client

from graffer_secevents.testing import Capture

_ids = itertools.count()


def new_account(prefix: str, *, active: bool = True, staff: bool = False) -> tuple[Any, str]:
    """A new account (a unique username per call) and its password."""
    n = next(_ids)
    username = f"{prefix}-seams{n}"  # a marker no other module's f"{name}{n}" can produce
    password = f"pw-{username}-Secret9!"
    user = get_user_model().objects.create_user(
        username, f"{username}@example.com", password, is_active=active, is_staff=staff
    )
    return user, password


def send(
    method: str,
    path: str,
    data: Any = None,
    *,
    client: Client | None = None,
    json_body: bool = False,
    **headers: str,
) -> tuple[Any, str, str]:
    """One request from its own client IP with its own request id; returns (response, ip, request id)."""
    n = next(_ids)
    ip, rid = f"192.0.2.{n % 250 + 1}", f"seam-{n}"
    client = client or Client()
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    if json_body:
        extra["content_type"] = "application/json"
    response = getattr(client, method)(path, data, REMOTE_ADDR=ip, HTTP_X_REQUEST_ID=rid, **extra)
    return response, ip, rid


def of_request(capture: Capture, rid: str, secrets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The records of one request; no line written anywhere holds one of ``secrets``."""
    records = [r for r in capture.records if r.get("http", {}).get("request_id") == rid]
    for line in capture.lines:
        for secret in secrets:
            assert secret.encode() not in line, (secret, line)
    return records


def only(
    capture: Capture, rid: str, evt_type: str, ip: str, *, secrets: tuple[str, ...] = (), **usr: Any
) -> dict[str, Any]:
    """The request wrote exactly one record, of ``evt_type``, with its IP, request id and ``usr`` fields."""
    records = of_request(capture, rid, secrets)
    assert [r["evt"]["type"] for r in records] == [evt_type], json.dumps(records, indent=1)
    record = records[0]
    assert record["network"]["client"]["ip"] == ip
    assert record["http"]["request_id"] == rid
    for key, value in usr.items():
        assert record.get("usr", {}).get(key) == value, (key, record.get("usr"))
    return record


def types_of(capture: Capture, rid: str, secrets: tuple[str, ...] = ()) -> list[str]:
    return sorted(r["evt"]["type"] for r in of_request(capture, rid, secrets))
