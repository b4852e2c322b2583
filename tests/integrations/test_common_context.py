"""The shared request context: lazy, never raising, framework-free; status rules; optional imports."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

import graffer_secevents as api
from graffer_secevents import ConfigurationError, MissingDependencyError
from graffer_secevents._context import request_context
from graffer_secevents.integrations import DEFAULT_STATUS_EVENTS, OPTIONAL_STATUS_EVENTS
from graffer_secevents.integrations._common import LazyRequestContext, status_rules, user_from_scope
from graffer_secevents.integrations.asgi import AsgiRequestContext
from graffer_secevents.testing import Capture


class Exploding:
    """Request data that fails on any use."""

    def __iter__(self) -> Any:
        raise RuntimeError("read")

    def __getitem__(self, item: Any) -> Any:
        raise RuntimeError("read")


class BrokenContext(LazyRequestContext):
    def __init__(self) -> None:
        pass

    def _raw_method(self) -> str | None:
        return 42  # type: ignore[return-value]  # not text: read as absent

    def _raw_path(self) -> str | None:
        raise RuntimeError("path")

    def _raw_peer_and_forwarding(self) -> tuple[str | None, str | None, str | None]:
        raise RuntimeError("peer")

    def _raw_user_agent(self) -> str | None:
        raise RuntimeError("agent")

    def _raw_request_id(self) -> str | None:
        raise RuntimeError("id")

    def _find_route(self) -> str | None:
        raise RuntimeError("route")

    def _find_user(self) -> Any:
        raise RuntimeError("user")


def test_every_field_is_safe_to_read_when_the_request_data_is_not(security_events: Capture) -> None:
    ctx = BrokenContext()
    fields = (ctx.method, ctx.path, ctx.client_ip, ctx.user_agent, ctx.route, ctx.user, ctx.status_code)
    assert fields == (None,) * 7
    assert ctx.request_id is not None and len(ctx.request_id) == 32
    with request_context(ctx):
        api.emit("authz_fail", resource="/x")
    record = security_events.assert_emitted("authz_fail", http__request_id=ctx.request_id)
    assert set(record["http"]) == {"request_id"}


def test_building_and_binding_a_context_reads_no_header() -> None:
    """Costly parts wait for an event: a request that emits nothing never parses its headers."""
    scope = {"type": "http", "method": "GET", "path": "/", "headers": Exploding(), "client": Exploding()}
    ctx = AsgiRequestContext(scope)
    with request_context(ctx):
        pass
    assert ctx.client_ip is None  # read now, fails safely


def test_client_ip_is_resolved_once_per_request() -> None:
    scope = {"type": "http", "headers": [], "client": ("203.0.113.5", 1)}
    ctx = AsgiRequestContext(scope)
    assert ctx.client_ip == "203.0.113.5"
    scope["client"] = ("198.51.100.1", 1)
    assert ctx.client_ip == "203.0.113.5"


def test_set_user_pins_the_user_over_the_frameworks() -> None:
    from starlette.authentication import SimpleUser

    ctx = AsgiRequestContext({"type": "http", "headers": [], "user": SimpleUser("from-scope")})
    with request_context(ctx):
        assert api.current_user() == api.User(id="from-scope")
        api.set_user(api.User(id="pinned"))
        assert api.current_user() == api.User(id="pinned")


def test_user_from_scope() -> None:
    from starlette.authentication import BaseUser, SimpleUser, UnauthenticatedUser

    class Model:
        is_authenticated = True
        pk = 5

    class NoIdentity(BaseUser):
        @property
        def is_authenticated(self) -> bool:
            return True

        @property
        def display_name(self) -> str:
            return "shown"

    model = Model()
    assert user_from_scope(SimpleUser("ada")) == api.User(id="ada")
    assert user_from_scope(UnauthenticatedUser()) is None
    assert user_from_scope(None) is None
    assert user_from_scope(model) is model
    assert user_from_scope(NoIdentity()) == api.User(id="shown")


def test_status_rules_merge_over_the_default() -> None:
    assert set(status_rules(None)) == {401, 403}
    assert set(status_rules({**OPTIONAL_STATUS_EVENTS})) == {401, 403, 429}
    assert set(status_rules({403: None, 401: None})) == set()
    teapot = status_rules({418: "sensitive_read"})[418]  # any catalog type; parameters it lacks are not sent
    assert (teapot.evt_type, teapot.takes_resource) == ("sensitive_read", False)
    assert dict(DEFAULT_STATUS_EVENTS) == {401: "authz_fail", 403: "authz_fail"}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({600: "authz_fail"}, "not an HTTP status"),
        ({403: "authz_fial"}, "not a catalog event type"),
        ({403: 3}, "not a catalog event type"),
        ("403=authz_fail", "expected a mapping"),
    ],
)
def test_status_rules_refuse_bad_input_loudly(given: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        status_rules(given)


def test_importing_the_framework_free_integrations_imports_no_framework() -> None:
    code = (
        "import sys\n"
        "import graffer_secevents.integrations, graffer_secevents.integrations.asgi, "
        "graffer_secevents.integrations.wsgi\n"
        "print(','.join(m for m in ('django', 'flask', 'fastapi', 'starlette', 'werkzeug') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("flask", "flask", "flask"),
        ("fastapi", "fastapi", "fastapi"),
        ("django", "django", "django"),
        ("flask_security", "flask_security", "flask-security"),
        ("fastapi_users", "fastapi_users", "fastapi-users"),
        ("celery", "celery", "celery"),
        ("rq", "rq", "rq"),
        ("dramatiq", "dramatiq", "dramatiq"),
        ("arq", "arq", "arq"),
        ("sqlalchemy", "sqlalchemy", "sqlalchemy"),
        ("taskiq", "taskiq", "taskiq"),
    ],
)
def test_a_missing_framework_fails_with_the_install_hint(module: str, blocked: str, extra: str) -> None:
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "from graffer_secevents import MissingDependencyError\n"
        "try:\n"
        f"    import graffer_secevents.integrations.{module}\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert f'pip install "graffer-secevents[{extra}]"' in result.stdout
    assert issubclass(MissingDependencyError, ImportError)
