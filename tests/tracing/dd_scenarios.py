"""ddtrace scenarios, each run in its own interpreter: ``python dd_scenarios.py <scenario>``.

Importing ddtrace, patching structlog or Django, enabling AppSec and activating spans change process-wide state,
so each scenario runs in a fresh subprocess (``tests/test_tracing_ddtrace.py``) and prints one JSON document on
its last stdout line. ddtrace's real tracer is used throughout; finished traces are read from a trace filter
that keeps them and drops them before the writer, so nothing is sent anywhere (the agent URL points at a closed
loopback port in any case).
"""

from __future__ import annotations

import os

os.environ.setdefault("DD_TRACE_AGENT_URL", "http://127.0.0.1:9")
os.environ.setdefault("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false")
os.environ.setdefault("DD_REMOTE_CONFIGURATION_ENABLED", "false")
os.environ.setdefault("DD_TRACE_STARTUP_LOGS", "false")
os.environ.setdefault("SECEVENTS_HASH_KEY", "test-hash-key-of-32-bytes-length")
os.environ.setdefault("SECEVENTS_METRICS", "none")

import io
import json
import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SCENARIOS: dict[str, Callable[[], Any]] = {}


def scenario(func: Callable[[], Any]) -> Callable[[], Any]:
    SCENARIOS[func.__name__] = func
    return func


# --- shared plumbing ---------------------------------------------------------------------------------------


class Harness:
    """The real ddtrace tracer with a capturing trace filter, and our library writing to a buffer."""

    def __init__(self, **config: Any) -> None:
        from ddtrace.trace import TraceFilter, tracer

        import graffer_secevents as secevents

        self.finished: list[list[Any]] = []
        finished = self.finished

        class Keep(TraceFilter):
            def process_trace(self, trace: list[Any]) -> None:
                finished.append(trace)
                return  # never reaches the writer

        tracer.configure(trace_processors=[Keep()])
        self.tracer = tracer
        self.buffer = io.StringIO()
        self.secevents = secevents
        secevents.configure(output=self.buffer, **config)

    def records(self) -> list[dict[str, Any]]:
        lines = self.buffer.getvalue().splitlines()
        self.buffer.seek(0)
        self.buffer.truncate()
        return [json.loads(line) for line in lines]

    def take_root(self) -> Any:
        """The root span of what finished since the last call (a trace may finish in several chunks)."""
        spans = [span for chunk in self.finished for span in chunk]
        self.finished.clear()
        return next(span for span in spans if span.parent_id is None)

    def request(self, emit: Callable[[], None], *, user: Any = None) -> dict[str, Any]:
        """Run ``emit`` inside a web request: a service-entry span, a child span active, a bound request context
        (client IP, user agent, optional authenticated user). Returns what the record and the root span hold."""
        from graffer_secevents._context import RequestContext, request_context

        ctx = RequestContext(
            client_ip="203.0.113.9", user_agent="curl/8.5", method="POST", path="/x", user=user
        )
        with (
            self.tracer.trace("web.request", service="auth-api", span_type="web") as root,
            self.tracer.trace("handler"),
            request_context(ctx),
        ):
            correlation = self.tracer.get_log_correlation_context()
            emit()
        assert self.take_root() is root
        return {
            "records": self.records(),
            "tags": {k: v for k, v in root.get_tags().items() if k != "runtime-id"},
            "priority": root.context.sampling_priority,
            "correlation": {k: correlation[k] for k in ("dd.trace_id", "dd.span_id")},
            "root_span_id": str(root.span_id),
        }


@contextmanager
def ddtrace_log_warnings() -> Iterator[list[str]]:
    """Collect what ddtrace logs at WARNING and above (e.g. its "No root span" warning)."""
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logger = logging.getLogger("ddtrace")
    logger.addHandler(handler)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)


# --- scenarios ---------------------------------------------------------------------------------------------


@scenario
def bridged() -> dict[str, Any]:
    """Every bridged event kind, each in its own request trace, with the default configuration."""
    h = Harness()
    s = h.secevents
    User = s.User
    admin = User(id="admin-1", login="root")
    gina = User(id="u-7", login="gina", email="gina@example.com")
    cases: dict[str, tuple[Callable[[], None], Any]] = {
        "login_success": (
            lambda: s.log_login(User(id="u-1", login="ada", email="ada@example.com"), "success", mfa="totp"),
            None,
        ),
        "login_fail_unknown": (
            lambda: s.log_login(None, "failure", login="mallory", exists=False, reason="unknown_user"),
            None,
        ),
        "login_fail_known": (
            lambda: s.log_login(User(id="u-2", login="bob"), "failure", exists=True, reason="bad_password"),
            None,
        ),
        "login_fail_no_exists": (lambda: s.log_login(None, "failure", login="trudy"), None),
        "login_successafterfail": (
            lambda: s.log_login(User(id="u-3", login="carol"), "success", retries=3),
            None,
        ),
        "signup": (lambda: s.log_signup(User(id="u-4", login="dave", email="dave@example.com")), None),
        "signup_with_metadata": (lambda: s.log_signup(User(id="u-4", login="dave"), plan="pro"), None),
        "login_with_secret_metadata": (
            lambda: s.log_login(
                User(id="u-1", login="ada"), "success", api_token="s3cr3t", nested={"a": [1]}
            ),
            None,
        ),
        "reset_request_unknown": (lambda: s.log_password_reset(None, login="erin", exists=False), None),
        "reset_complete": (
            lambda: s.log_password_reset(User(id="u-5", login="erin"), stage="complete", exists=True),
            None,
        ),
        "user_deleted": (lambda: s.log_user_deleted(admin, User(id="u-6", login="frank")), admin),
        "data_export": (
            lambda: s.log_data_export(None, "invoices", record_count=10, export_format="csv"),
            gina,
        ),
        "authz_fail_request_user": (lambda: s.log_access_denied(None, "/admin"), gina),
        "authz_fail_other_user": (lambda: s.log_access_denied(User(id="u-99"), "/admin"), gina),
        "lockout_anonymous_request": (
            lambda: s.log_account_locked(User(id="u-8"), reason="maxretries"),
            None,
        ),
        "plain_span": (lambda: None, None),
    }
    return {name: h.request(emit, user=user) for name, (emit, user) in cases.items()}


@scenario
def privacy_modes() -> dict[str, Any]:
    """Non-default privacy: the trace gets the same processed (or absent) values as the log."""
    h = Harness(privacy={"usr.login": "keep", "usr.email": "drop", "usr.id": "hash"})
    s = h.secevents
    return {
        "login_success": h.request(
            lambda: s.log_login(s.User(id="u-1", login="ada", email="ada@example.com"), "success")
        ),
        "authz_fail_request_user": h.request(
            lambda: s.log_access_denied(None, "/admin"), user=s.User(id="u-7", login="gina")
        ),
    }


@scenario
def appsec_tracking_off() -> dict[str, Any]:
    h = Harness(appsec_tracking=False)
    s = h.secevents
    return {
        "login_success": h.request(lambda: s.log_login(s.User(id="u-1", login="ada"), "success")),
        "data_export": h.request(lambda: s.log_data_export(None, "invoices"), user=s.User(id="u-7")),
    }


@scenario
def no_span() -> dict[str, Any]:
    """Events outside any span: records without trace ids, no SDK import, no ddtrace warning."""
    h = Harness()
    s = h.secevents
    with ddtrace_log_warnings() as seen:
        s.log_login(s.User(id="u-1", login="ada"), "success")
        s.log_login(None, "failure", login="mallory", exists=False)
        s.log_signup(s.User(id="u-4", login="dave"))
        s.log_password_reset(None, login="erin", exists=False)
        s.log_access_denied(s.User(id="u-7"), "/admin")
    return {
        "records": h.records(),
        "ddtrace_warnings": seen,
        "sdk_imported": "ddtrace.appsec.track_user_sdk" in sys.modules,
        "finished_traces": len(h.finished),
    }


@scenario
def context_only() -> dict[str, Any]:
    """Distributed headers extracted and activated, no local span started yet."""
    from ddtrace.propagation.http import HTTPPropagator

    h = Harness()
    s = h.secevents
    headers = {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    context = HTTPPropagator.extract(headers)
    h.tracer.context_provider.activate(context)
    with ddtrace_log_warnings() as seen:
        correlation = h.tracer.get_log_correlation_context()
        s.log_login(s.User(id="u-1", login="ada"), "success")
    return {
        "records": h.records(),
        "correlation": {k: correlation[k] for k in ("dd.trace_id", "dd.span_id")},
        "ddtrace_warnings": seen,
        "sdk_imported": "ddtrace.appsec.track_user_sdk" in sys.modules,
    }


@scenario
def trace_id_64_bit() -> dict[str, Any]:
    """With 128-bit trace ids off, ddtrace formats the trace id in decimal; so do we."""
    h = Harness()
    return h.request(lambda: h.secevents.log_login(h.secevents.User(id="u-1"), "success"))


@scenario
def structlog_patched() -> dict[str, Any]:
    """ddtrace's own structlog and logging injection active: our record keeps its one nested ``dd`` object."""
    import ddtrace
    import structlog

    ddtrace.patch(structlog=True, logging=True)
    app_lines = io.StringIO()
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(app_lines),
    )
    app_log = structlog.get_logger("app")

    stdlib_records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            stdlib_records.append(record)

    stdlib_logger = logging.getLogger("app.security")
    stdlib_logger.addHandler(Keep())
    stdlib_logger.setLevel(logging.INFO)
    stdlib_logger.propagate = False

    h = Harness()
    s = h.secevents
    result = h.request(
        lambda: (
            app_log.info("login attempt"),
            s.log_login(s.User(id="u-1", login="ada"), "failure", exists=True),
        )
    )
    # The same through output="logging" into a stdlib logger that ddtrace's logging patch decorates.
    s.configure(output=stdlib_logger)
    with h.tracer.trace("web.request", service="auth-api"):
        correlation = h.tracer.get_log_correlation_context()
        s.log_login(s.User(id="u-1", login="ada"), "success")
    record = stdlib_records[-1]
    result["app_lines"] = [json.loads(line) for line in app_lines.getvalue().splitlines()]
    result["stdlib"] = {
        "message": json.loads(record.getMessage()),
        "record_dd_trace_id": getattr(record, "dd.trace_id", None),
        "record_dd_span_id": getattr(record, "dd.span_id", None),
        "correlation": {k: correlation[k] for k in ("dd.trace_id", "dd.span_id")},
    }
    return result


@scenario
def bridge_errors() -> dict[str, Any]:
    """A failing SDK call never reaches the caller (reported once); ddtrace's BlockingException does."""
    from ddtrace.appsec import track_user_sdk
    from ddtrace.internal._exceptions import BlockingException

    h = Harness()
    s = h.secevents
    real = track_user_sdk.track_login_success

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("ddtrace internals changed")

    def blocking(*args: Any, **kwargs: Any) -> None:
        raise BlockingException({"status_code": 403, "type": "auto", "block_id": "x"})

    out: dict[str, Any] = {}
    track_user_sdk.track_login_success = broken
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out["broken"] = h.request(lambda: s.log_login(s.User(id="u-1", login="ada"), "success"))
        out["broken_again"] = h.request(lambda: s.log_login(s.User(id="u-1", login="ada"), "success"))
    out["warnings"] = [str(w.message) for w in caught]
    track_user_sdk.track_login_success = blocking
    try:
        with h.tracer.trace("web.request", service="auth-api"):
            s.log_login(s.User(id="u-1", login="ada"), "success")
        out["blocking_propagated"] = False
    except BlockingException:
        out["blocking_propagated"] = True
    out["records_before_block"] = h.records()
    track_user_sdk.track_login_success = real
    return out


@scenario
def ddtrace_absent() -> dict[str, Any]:
    """ddtrace cannot be imported at all: events are written, no bridge complains."""
    sys.modules["ddtrace"] = None  # type: ignore[assignment]  # makes "import ddtrace" raise ImportError
    import graffer_secevents as s

    buffer = io.StringIO()
    s.configure(output=buffer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s.log_login(s.User(id="u-1", login="ada"), "success")
        s.log_login(None, "failure", login="mallory", exists=False)
        s.log_password_reset(None, login="erin", exists=False)
    return {
        "records": [json.loads(line) for line in buffer.getvalue().splitlines()],
        "warnings": [str(w.message) for w in caught if "hash_key" not in str(w.message)],
    }


@scenario
def otel_and_ddtrace() -> dict[str, Any]:
    """Both tracers active: ddtrace's ids win, and the OpenTelemetry span gets no event (the log's ids and the
    span event always point at the same span)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel_tracer = provider.get_tracer("test")
    h = Harness()
    s = h.secevents

    def emit() -> None:
        with otel_tracer.start_as_current_span("otel.op"):
            s.log_login(s.User(id="u-1", login="ada"), "success")

    result = h.request(emit)
    result["otel_events"] = [[e.name for e in span.events] for span in exporter.get_finished_spans()]
    return result


# --- AppSec on: ddtrace's Django auto-instrumentation, and real WAF blocking ------------------------------------


def _django_app() -> Any:
    """A minimal Django project: in-memory SQLite, auth and sessions, one login view that also logs our event."""
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="test",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        USE_TZ=True,
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    return django


def _login_view(request: Any) -> Any:
    from django.contrib.auth import authenticate, login
    from django.contrib.auth.models import User
    from django.http import HttpResponse

    import graffer_secevents as s

    username = request.POST["username"]
    user = authenticate(request, username=username, password=request.POST["password"])
    if user is None:
        exists = User.objects.filter(username=username).exists()
        s.log_login(None, "failure", login=username, exists=exists, reason="bad_credentials")
        return HttpResponse("no", status=401)
    login(request, user)
    s.log_login(user, "success")
    return HttpResponse("ok")


def _reset_view(request: Any) -> Any:
    from django.http import HttpResponse

    import graffer_secevents as s

    s.log_password_reset(None, login=request.POST["username"], exists=True)
    return HttpResponse("sent")


urlpatterns: list[Any] = []


@scenario
def django_auto() -> dict[str, Any]:
    """AppSec on (``ddtrace.auto``, as ``ddtrace-run`` does): a real login through ``django.contrib.auth``."""
    import ddtrace.auto  # noqa: F401 - patches Django and loads AppSec's listeners

    _django_app()
    from django.contrib.auth.models import User
    from django.test import Client
    from django.urls import path

    urlpatterns[:] = [path("login", _login_view), path("reset", _reset_view)]
    User.objects.create_user("ada", password="correct horse")

    h = Harness()
    client = Client()
    out: dict[str, Any] = {}
    for name, url, data in (
        ("login_success", "/login", {"username": "ada", "password": "correct horse"}),
        ("login_failure", "/login", {"username": "ada", "password": "wrong"}),
        ("reset", "/reset", {"username": "ada"}),
    ):
        response = client.post(url, data)
        root = h.take_root()
        out[name] = {
            "status": response.status_code,
            "records": h.records(),
            "tags": {k: v for k, v in root.get_tags().items() if k != "runtime-id"},
        }
    from graffer_secevents._bridges import ddtrace_reports_logins

    out["ddtrace_reports_logins"] = ddtrace_reports_logins()
    return out


@scenario
def flask_blocking() -> dict[str, Any]:
    """AppSec on with a rule blocking one user id: the bridge's ``track_user`` lets the WAF block the request."""
    import ddtrace.auto  # noqa: F401 - patches Flask and loads AppSec
    import flask

    import graffer_secevents as s
    from graffer_secevents._context import RequestContext, request_context

    h = Harness()
    app = flask.Flask(__name__)

    @app.route("/export/<uid>")
    def export(uid: str) -> str:
        with request_context(RequestContext(user=s.User(id=uid, login=f"login-{uid}"))):
            s.log_data_export(None, "invoices", record_count=1)
        return "exported"

    client = app.test_client()
    out: dict[str, Any] = {}
    for uid in ("u-ok", "blocked-user"):
        response = client.get(f"/export/{uid}")
        body = response.get_data(as_text=True)
        response.close()  # ddtrace finishes the request span when the WSGI response is closed
        root = h.take_root()
        out[uid] = {
            "status": response.status_code,
            "body": body[:200],
            "records": h.records(),
            "tags": {
                k: v for k, v in root.get_tags().items() if k.startswith(("usr.", "appsec.", "_dd.appsec"))
            },
        }
    return out


if __name__ == "__main__":
    result = SCENARIOS[sys.argv[1]]()
    sys.stdout.write("\n" + json.dumps(result, default=str) + "\n")
