"""Flask with the SecurityEvents extension and Flask-Login, through Flask's own test client."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask, abort, request, stream_with_context
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user

import graffer_secevents as api
from graffer_secevents._config import set_config
from graffer_secevents.integrations.flask import SecurityEvents
from graffer_secevents.integrations.wsgi import CONTEXT_KEY, RESPONSE_KEY
from graffer_secevents.testing import ABSENT, Capture, capture_events

PEER = "203.0.113.9"
HEX32 = re.compile(r"[0-9a-f]{32}")


class Account(UserMixin):
    def __init__(self, id: int, username: str, password: str, role: str) -> None:
        self.id = id
        self.username = username
        self.password = password
        self.role = role

    def get_username(self) -> str:
        return self.username


ACCOUNTS = {
    "ada": Account(1001, "ada", "correct horse", "user"),
    "root": Account(1, "root", "admin secret", "admin"),
}


def build_app(*, with_login_manager: bool = True, **extension: Any) -> Flask:
    app = Flask(__name__)
    app.secret_key = "test-only"
    if with_login_manager:
        manager = LoginManager(app)

        @manager.user_loader
        def load(user_id: str) -> Account | None:
            return next((a for a in ACCOUNTS.values() if str(a.id) == user_id), None)

    SecurityEvents(app, **extension)

    @app.post("/login")
    def login() -> tuple[str, int]:
        username = request.form["username"]
        account = ACCOUNTS.get(username)
        if account is None or account.password != request.form["password"]:
            # Flask-Login has no failure signal: failures are recorded where the password is checked.
            api.log_login(
                account,  # the account when it exists: its failures and successes share its id
                "failure",
                login=username,
                exists=account is not None,
                reason="invalid_credentials" if account else "unknown_user",
            )
            return "no", 401
        login_user(account)  # no event code: Flask-Login's signal records the success
        return "ok", 200

    @app.post("/logout")
    @login_required
    def logout() -> str:
        logout_user()
        return "bye"

    @app.get("/private")
    @login_required
    def private() -> str:
        return "secret"

    @app.get("/admin")
    @login_required
    def admin() -> str:
        if current_user.role != "admin":
            abort(403)
        return "admin"

    @app.get("/orders/<int:order_id>")
    def order(order_id: int) -> str:
        api.emit("sensitive_read", object=f"order:{order_id}")
        return "order"

    @app.get("/status/<int:code>")
    def status(code: int) -> tuple[str, int]:
        return "status", code

    @app.get("/denied")
    def denied() -> None:
        abort(403)

    return app


@pytest.fixture
def app() -> Flask:
    return build_app()


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()


def call(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    environ = {"REMOTE_ADDR": PEER, **kwargs.pop("environ_base", {})}
    return client.open(path, method=method, environ_base=environ, **kwargs)


def log_in(client: Any, username: str = "ada", password: str = "correct horse") -> Any:
    return call(client, "POST", "/login", data={"username": username, "password": password})


# --- Flask-Login's signals ----------------------------------------------------------------------------------


def test_login_user_records_the_success_with_the_request_context(
    client: Any, security_events: Capture
) -> None:
    response = call(
        client,
        "POST",
        "/login",
        data={"username": "ada", "password": "correct horse"},
        headers={"X-Request-ID": "flask-1", "User-Agent": "pytest-agent"},
    )
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "flask-1"
    security_events.assert_emitted(
        "authn_login_success",
        usr__id="1001",
        network__client__ip=PEER,
        http__request_id="flask-1",
        http__route="/login",
        http__method="POST",
        http__useragent="pytest-agent",
    )


@pytest.mark.parametrize(("username", "exists"), [("ada", True), ("mallory", False)])
def test_failed_login_recorded_by_the_helper_carries_the_request(
    client: Any, security_events: Capture, username: str, exists: bool
) -> None:
    response = log_in(client, username, "wrong")
    assert response.status_code == 401
    security_events.assert_emitted(
        "authn_login_fail",
        usr__exists=exists,
        network__client__ip=PEER,
        http__request_id=response.headers["X-Request-ID"],
    )


def test_logout_user_records_session_logout(client: Any, security_events: Capture) -> None:
    log_in(client)
    call(client, "POST", "/logout")
    security_events.assert_emitted(
        "session_logout", usr__id="1001", network__client__ip=PEER, http__route="/logout"
    )


def test_login_required_without_a_login_records_authz_fail_once(security_events: Capture) -> None:
    """user_unauthorized → authz_fail; the 401 that follows is not recorded again, even when 401 is on."""
    client = build_app(status_events={401: "authz_fail"}).test_client()
    assert call(client, "GET", "/private").status_code == 401
    record = security_events.assert_emitted("authz_fail", evt__resource="/private", network__client__ip=PEER)
    assert "usr" not in record
    assert len(security_events.find("authz_fail")) == 1


def test_signals_of_another_app_are_not_recorded(security_events: Capture) -> None:
    other = Flask("other")
    other.secret_key = "other"
    manager = LoginManager(other)
    manager.user_loader(lambda user_id: ACCOUNTS["ada"])

    @other.post("/login")
    def other_login() -> str:
        login_user(ACCOUNTS["ada"])
        return "ok"

    build_app()  # our extension is installed on a different app in the same process
    other.test_client().post("/login")
    security_events.assert_not_emitted("authn_login_success")


# --- the user, route and status at response time -----------------------------------------------------------


def test_a_403_records_authz_fail_with_the_flask_login_user(client: Any, security_events: Capture) -> None:
    log_in(client)
    assert call(client, "GET", "/admin").status_code == 403
    security_events.assert_emitted(
        "authz_fail", usr__id="1001", evt__resource="/admin", http__status_code=403, http__route="/admin"
    )


def test_route_template_and_anonymous_user(client: Any, security_events: Capture) -> None:
    call(client, "GET", "/orders/42")
    record = security_events.assert_emitted(
        "sensitive_read", http__route="/orders/<int:order_id>", http__url_details__path="/orders/42"
    )
    assert "usr" not in record  # Flask-Login's AnonymousUserMixin is no user


def test_without_a_login_manager_events_have_no_user(security_events: Capture) -> None:
    client = build_app(with_login_manager=False).test_client()
    call(client, "GET", "/denied")
    record = security_events.assert_emitted("authz_fail", network__client__ip=PEER)
    assert "usr" not in record


def test_set_user_works_without_flask_login(security_events: Capture) -> None:
    app = build_app(with_login_manager=False)

    @app.get("/api/thing")
    def thing() -> tuple[str, int]:
        api.set_user(api.User(id="svc-7"))
        return "no", 403

    call(app.test_client(), "GET", "/api/thing")
    security_events.assert_emitted("authz_fail", usr__id="svc-7")


def test_429_is_opt_in(security_events: Capture) -> None:
    call(build_app().test_client(), "GET", "/status/429")
    assert security_events.records == []
    call(build_app(status_events={429: "excess_rate_limit_exceeded"}).test_client(), "GET", "/status/429")
    security_events.assert_emitted("excess_rate_limit_exceeded", http__status_code=429)


def test_401_without_a_credential_is_unauthenticated_unless_switched_off(security_events: Capture) -> None:
    call(build_app().test_client(), "GET", "/status/401")
    security_events.assert_emitted("authz_fail", evt__reason="unauthenticated", http__status_code=401)
    security_events.clear()
    call(build_app(record_unauthenticated=False).test_client(), "GET", "/status/401")
    call(build_app(status_events={401: None}).test_client(), "GET", "/status/401")
    assert security_events.records == []


def test_403_can_be_switched_off(security_events: Capture) -> None:
    call(build_app(status_events={403: None}).test_client(), "GET", "/denied")
    assert security_events.records == []


def test_generated_request_id_is_echoed(client: Any, security_events: Capture) -> None:
    response = call(client, "GET", "/denied", headers={"X-Request-ID": "bad id"})
    assert HEX32.fullmatch(response.headers["X-Request-ID"])
    security_events.assert_emitted("authz_fail", http__request_id=response.headers["X-Request-ID"])


def test_init_app_twice_installs_once(security_events: Capture) -> None:
    app = build_app()
    wrapped = app.wsgi_app
    SecurityEvents().init_app(app)
    assert app.wsgi_app is wrapped
    call(app.test_client(), "GET", "/denied")
    assert len(security_events.records) == 1


def test_no_context_is_left_bound_after_a_request(client: Any) -> None:
    call(client, "GET", "/orders/1")
    assert api.current_request() is None


# --- the context is found through Flask's request context, built at the first event --------------------------


def test_a_request_that_records_nothing_builds_no_context(app: Flask, security_events: Capture) -> None:
    seen: dict[str, Any] = {}

    @app.get("/quiet")
    def quiet() -> str:
        seen["environ"] = request.environ
        return "quiet"

    response = call(app.test_client(), "GET", "/quiet")
    assert CONTEXT_KEY not in seen["environ"]
    status, request_id = seen["environ"][RESPONSE_KEY]  # left for an event that may come later
    assert (status, request_id) == ("200 OK", response.headers["X-Request-ID"])
    assert security_events.records == []


def test_an_event_after_the_response_started_has_its_status_and_echoed_id(
    app: Flask, security_events: Capture
) -> None:
    @app.teardown_request
    def after(_exc: BaseException | None) -> None:
        api.emit("sensitive_read", object="report:7")

    response = call(app.test_client(), "GET", "/status/204")
    security_events.assert_emitted(
        "sensitive_read",
        http__status_code=204,
        http__request_id=response.headers["X-Request-ID"],
        network__client__ip=PEER,
    )


def test_an_event_before_the_response_shares_the_echoed_id(client: Any, security_events: Capture) -> None:
    response = call(client, "GET", "/orders/3", headers={"X-Request-ID": "upstream-3"})
    assert response.headers["X-Request-ID"] == "upstream-3"
    security_events.assert_emitted(
        "sensitive_read", http__request_id="upstream-3", http__route="/orders/<int:order_id>"
    )


def test_a_body_streamed_with_stream_with_context_carries_the_request(
    app: Flask, security_events: Capture
) -> None:
    @app.get("/export")
    def export() -> Any:
        def rows() -> Any:
            yield "a,b\n"
            api.log_data_export(None, "report:9", record_count=2)
            yield "1,2\n"

        return app.response_class(stream_with_context(rows()), mimetype="text/csv")

    response = call(app.test_client(), "GET", "/export")
    assert response.get_data(as_text=True) == "a,b\n1,2\n"
    security_events.assert_emitted(
        "data_export", network__client__ip=PEER, http__request_id=response.headers["X-Request-ID"]
    )


def test_an_app_without_the_extension_gets_no_context(security_events: Capture) -> None:
    build_app()  # the extension is installed on another app in this process
    plain = Flask("plain")

    @plain.get("/")
    def index() -> str:
        assert api.current_request() is None
        api.emit("sensitive_read", object="x")
        return "ok"

    assert call(plain.test_client(), "GET", "/").status_code == 200
    security_events.assert_emitted("sensitive_read", http=ABSENT, network=ABSENT)


# --- failures stay out of the application ------------------------------------------------------------------


def test_a_broken_configuration_never_reaches_the_application(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECEVENTS_METRICS", "not-a-backend")
    set_config(None)
    log_in(client)  # Flask-Login's signal handler cannot build an event
    response = call(client, "GET", "/admin")  # nor can the 403 rule
    assert response.status_code == 403
    assert response.headers["X-Request-ID"]


# --- the spoofing matrix ------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::graffer_secevents.ForwardedHeaderIgnoredWarning")
def test_forged_address_never_wins(spoof_case: Any) -> None:
    api.configure(**spoof_case.configure_kwargs())
    client = build_app().test_client()
    with capture_events() as events:
        response = client.get(
            "/denied", headers=spoof_case.headers(), environ_base={"REMOTE_ADDR": spoof_case.peer}
        )
    assert response.status_code == 403
    spoof_case.check(events.records)
