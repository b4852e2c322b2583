"""The spoofing matrix through the ASGI middleware, and the one-time warning: the forged address never wins."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException

import graffer_secevents as api
from graffer_secevents._errors import ForwardedHeaderIgnoredWarning
from graffer_secevents._errors import reset_warnings as _reset_warning_state
from graffer_secevents.integrations.fastapi import SecurityEventsMiddleware
from graffer_secevents.testing import capture_events

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def denying_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(SecurityEventsMiddleware)

    @app.get("/denied")
    def denied() -> None:
        raise HTTPException(403)

    return app


@pytest.mark.filterwarnings("ignore::graffer_secevents.ForwardedHeaderIgnoredWarning")
def test_forged_address_never_wins(spoof_case: Any) -> None:
    api.configure(**spoof_case.configure_kwargs())
    with capture_events() as events, TestClient(denying_app(), client=(spoof_case.peer, 4711)) as client:
        assert client.get("/denied", headers=spoof_case.headers()).status_code == 403
    spoof_case.check(events.records)


def test_repeated_forwarding_headers_are_read_as_one_list() -> None:
    """Two X-Forwarded-For lines (a client's and a proxy's) are one list: the forged line stays on the left."""
    api.configure(trusted_proxies=["10.0.0.0/8"])
    with capture_events() as events, TestClient(denying_app(), client=("10.0.0.1", 1)) as client:
        client.get("/denied", headers=[("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "203.0.113.7")])
    events.assert_emitted("authz_fail", network__client__ip="203.0.113.7")


def test_forwarding_headers_from_an_untrusted_peer_warn_once() -> None:
    _reset_warning_state()
    try:
        with TestClient(denying_app(), client=("203.0.113.7", 1)) as client, capture_events() as events:
            with pytest.warns(ForwardedHeaderIgnoredWarning, match="trusted_proxies"):
                client.get("/denied", headers={"X-Forwarded-For": "6.6.6.6"})
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                client.get("/denied", headers={"X-Forwarded-For": "6.6.6.7"})
        assert [r["network"]["client"]["ip"] for r in events.records] == ["203.0.113.7", "203.0.113.7"]
    finally:
        _reset_warning_state()
