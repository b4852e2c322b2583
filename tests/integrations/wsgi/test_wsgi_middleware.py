"""The plain WSGI middleware, around raw WSGI callables, through werkzeug's test client."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.test import Client

import graffer_secevents as api
from graffer_secevents._config import set_config
from graffer_secevents.integrations.wsgi import SecurityEventsMiddleware
from graffer_secevents.testing import Capture, capture_events

PEER = "203.0.113.9"


def plain_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    api.emit("sensitive_read", object=environ["PATH_INFO"])
    status = "403 Forbidden" if environ["PATH_INFO"].startswith("/denied") else "200 OK"
    start_response(status, [("Content-Type", "text/plain")])
    return [b"body"]


def lazy_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    """A generator app: start_response runs while the server iterates, after the middleware returned."""
    start_response("403 Forbidden", [("Content-Type", "text/plain")])
    yield b"late"


def get(app: Any, path: str = "/", **kwargs: Any) -> Any:
    environ = {"REMOTE_ADDR": PEER, **kwargs.pop("environ_base", {})}
    return Client(app).get(path, environ_base=environ, **kwargs)


def test_events_inside_the_app_carry_the_request(security_events: Capture) -> None:
    response = get(
        SecurityEventsMiddleware(plain_app),
        "/things",
        headers={"X-Request-ID": "wsgi-1", "User-Agent": "pytest-agent"},
    )
    assert response.headers["X-Request-ID"] == "wsgi-1"
    record = security_events.assert_emitted(
        "sensitive_read",
        network__client__ip=PEER,
        http__request_id="wsgi-1",
        http__useragent="pytest-agent",
        http__method="GET",
        http__url_details__path="/things",
    )
    assert "status_code" not in record["http"]  # emitted before the response started
    assert "route" not in record["http"]


def test_a_403_records_authz_fail_with_the_status(security_events: Capture) -> None:
    get(SecurityEventsMiddleware(plain_app), "/denied/here")
    security_events.assert_emitted("authz_fail", evt__resource="/denied/here", http__status_code=403)


def test_a_response_started_after_the_middleware_returned_is_still_recorded(security_events: Capture) -> None:
    response = get(SecurityEventsMiddleware(lazy_app), "/lazy", headers={"X-Request-ID": "lazy-1"})
    assert response.status_code == 403
    assert response.headers["X-Request-ID"] == "lazy-1"
    security_events.assert_emitted(
        "authz_fail", http__request_id="lazy-1", network__client__ip=PEER, http__status_code=403
    )
    assert api.current_request() is None


def test_script_name_and_non_ascii_paths_are_decoded(security_events: Capture) -> None:
    get(
        SecurityEventsMiddleware(plain_app),
        "/caf%C3%A9",
        base_url="http://localhost/app/",
    )
    security_events.assert_emitted("sensitive_read", http__url_details__path="/app/café")


def test_remote_user_is_not_trusted_as_the_user(security_events: Capture) -> None:
    """A server may copy REMOTE_USER from a proxy header (gunicorn's forwarder_headers): never a usr.id."""
    get(SecurityEventsMiddleware(plain_app), "/", environ_base={"REMOTE_USER": "root"})
    assert "usr" not in security_events.assert_emitted("sensitive_read")


def test_an_odd_environ_never_reaches_the_application(security_events: Capture) -> None:
    calls = []

    def app(environ: Any, start_response: Any) -> list[bytes]:
        calls.append(environ)
        start_response("200 OK", [])
        return [b""]

    middleware = SecurityEventsMiddleware(app)
    body = middleware({"PATH_INFO": None}, lambda status, headers, exc_info=None: None)
    assert body == [b""] and calls


def test_a_broken_configuration_never_reaches_the_application(monkeypatch: pytest.MonkeyPatch) -> None:
    def quiet(environ: Any, start_response: Any) -> list[bytes]:
        start_response("403 Forbidden", [])
        return [b"no"]

    monkeypatch.setenv("SECEVENTS_METRICS", "not-a-backend")
    set_config(None)
    response = get(SecurityEventsMiddleware(quiet), "/")
    assert response.status_code == 403
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


@pytest.mark.filterwarnings("ignore::graffer_secevents.ForwardedHeaderIgnoredWarning")
def test_forged_address_never_wins(spoof_case: Any) -> None:
    api.configure(**spoof_case.configure_kwargs())

    def quiet_denial(environ: Any, start_response: Any) -> list[bytes]:
        start_response("403 Forbidden", [])
        return [b"no"]

    with capture_events() as events:
        get(
            SecurityEventsMiddleware(quiet_denial),
            "/denied",
            headers=spoof_case.headers(),
            environ_base={"REMOTE_ADDR": spoof_case.peer},
        )
    spoof_case.check(events.records)


def test_the_id_an_inner_wsgi_middleware_answers_with_is_the_events_id(security_events: Capture) -> None:
    """An inner request-id middleware that makes its own id and answers with it (as flask-log-request-id
    and its kind do): the denial's event carries the id the response carries."""
    import httpx

    from graffer_secevents.integrations.wsgi import SecurityEventsMiddleware

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("403 Forbidden", [("X-Request-Id", "inner-made-42")])
        return [b"no"]

    wrapped = SecurityEventsMiddleware(app)
    with httpx.Client(transport=httpx.WSGITransport(app=wrapped), base_url="http://t") as client:
        response = client.get("/admin")
    assert response.headers.get_list("x-request-id") == ["inner-made-42"]
    security_events.assert_emitted("authz_fail", http__request_id="inner-made-42")


def test_proxyfix_around_the_middleware_is_said_to_have_rewritten_the_peer(security_events: Capture) -> None:
    """werkzeug's ProxyFix applied around (before) the middleware hands it a forwarded address as the peer,
    from any client: the record carries the forged address, and the library says why, once."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    from graffer_secevents._errors import reset_warnings

    reset_warnings()
    app = ProxyFix(SecurityEventsMiddleware(plain_app), x_for=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        get(app, "/read", headers={"X-Forwarded-For": "6.6.6.6"})
    security_events.assert_emitted("sensitive_read", network__client__ip="6.6.6.6")
    assert [w.category for w in caught if "is the last X-Forwarded-For hop" in str(w.message)] == [
        api.SecEventsWarning
    ]
    # and not also "header ignored, the socket peer is used": the peer is the header's address
    assert not [w for w in caught if issubclass(w.category, api.ForwardedHeaderIgnoredWarning)]
