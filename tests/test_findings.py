"""The library says what it is doing, once: Django system checks (`manage.py check`), a warning per finding
at Flask's and the ASGI middleware's start-up, and the refusal of a production start without a key. Each
finding is proven in a fresh process (settings, warnings and the metrics client are once per process)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import warnings

import pytest

import graffer_secevents as api
from graffer_secevents import SecEventsWarning
from graffer_secevents._errors import reset_warnings
from graffer_secevents._findings import _reset, config_findings, dogstatsd_unreachable
from graffer_secevents._metrics.dogstatsd import DogStatsdAddress

KEY = "a-key-of-at-least-16-bytes"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SECEVENTS_", "DD_"))}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


DJANGO = """
    import sys
    {prelude}
    from django.conf import settings
    settings.configure(
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "graffer_secevents.integrations.django"],
        DATABASES={{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}},
        SECEVENTS={secevents!r},
        {settings}
    )
    import django
    django.setup()
    from django.core.management import call_command
    call_command("check")
"""


def django_check(
    secevents: dict[str, object], settings: str = "", prelude: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    return run(DJANGO.format(secevents=secevents, settings=settings, prelude=prelude), **env)


def test_django_check_reports_a_missing_key_metrics_off_and_a_proxy_once() -> None:
    """No key, the datadog package made unimportable (an install without [datadog]) and a proxy setting
    without trusted_proxies: W001, W002 and W004, each once, and no warning besides the checks."""
    proxy = 'SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),'
    result = django_check({}, settings=proxy, prelude="sys.modules['datadog'] = None")
    assert result.returncode == 0, result.stderr
    for check in ("W001", "W002", "W004"):
        assert result.stderr.count(f"graffer_secevents.{check}") == 1, result.stderr
    assert "HINT: Set SECEVENTS['hash_key']" in result.stderr
    assert (
        'pip install "graffer-secevents[datadog]"' in result.stderr
        and "SECURE_PROXY_SSL_HEADER" in result.stderr
    )
    assert result.stderr.count("no hash_key") == 1  # the check, not also a warning
    assert "SecEventsWarning" not in result.stderr


def test_django_check_reports_an_agent_that_does_not_answer() -> None:
    port = free_udp_port()
    result = django_check({"hash_key": KEY, "metrics": "dogstatsd"}, DD_DOGSTATSD_PORT=str(port))
    assert "graffer_secevents.W003" in result.stderr, result.stderr
    assert f"udp://localhost:{port}" in result.stderr


def test_django_check_is_quiet_when_all_is_well() -> None:
    """A key, trusted proxies behind the proxy, and an agent that answers: no finding."""
    proxy = 'SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),'
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as agent:
        agent.bind(("127.0.0.1", 0))
        result = django_check(
            {"hash_key": KEY, "metrics": "dogstatsd", "trusted_proxies": "10.0.0.0/22"},
            settings=proxy,
            DD_DOGSTATSD_URL=f"udp://127.0.0.1:{agent.getsockname()[1]}",
        )
    assert result.returncode == 0, result.stderr
    assert "graffer_secevents.W" not in result.stderr, result.stderr


def test_django_refuses_to_start_in_production_without_a_key() -> None:
    result = django_check({"metrics": "none"}, DD_ENV="prod")
    assert result.returncode != 0
    assert "ConfigurationError" in result.stderr and "env='prod' is not development" in result.stderr


FLASK = """
    import warnings
    warnings.simplefilter("always")
    from flask import Flask
    {prelude}
    import graffer_secevents as secevents
    from graffer_secevents.integrations.flask import SecurityEvents
    secevents.configure(hash_key={key!r}, metrics={metrics!r})
    app = Flask("one")
    {wrap}
    SecurityEvents(app)
    SecurityEvents(Flask("two"))  # a second app in the same process: nothing more is said
    app.test_client().get("/")  # the agent probe runs at the first request, in a thread
    import time; time.sleep(0.5)
"""


def flask_start(
    key: str | None = KEY, metrics: str = "none", wrap: str = "", prelude: str = "", **env: str
) -> str:
    return run(FLASK.format(key=key, metrics=metrics, wrap=wrap, prelude=prelude), **env).stderr


def test_flask_start_up_says_each_finding_once_at_the_applications_lines() -> None:
    """No key, no datadog package, ProxyFix without trusted_proxies; two apps in one process."""
    wrap = "from werkzeug.middleware.proxy_fix import ProxyFix; app.wsgi_app = ProxyFix(app.wsgi_app)"
    stderr = flask_start(
        key=None, metrics="auto", wrap=wrap, prelude="import sys; sys.modules['datadog'] = None"
    )
    assert stderr.count("no hash_key") == 1, stderr
    assert "<string>:8: SecEventsWarning: graffer_secevents: no hash_key" in stderr  # the configure() line
    assert stderr.count("metrics are off") == 1
    assert (
        "<string>:11: SecEventsWarning: graffer_secevents: metrics are off" in stderr
    )  # SecurityEvents(app)
    assert stderr.count("runs behind a proxy (werkzeug's ProxyFix wraps the app)") == 1


def test_flask_start_up_says_the_agent_does_not_answer() -> None:
    stderr = flask_start(metrics="dogstatsd", DD_DOGSTATSD_PORT=str(free_udp_port()))
    assert stderr.count("no DogStatsD agent answers") == 1, stderr


def test_flask_start_up_is_silent_when_all_is_well() -> None:
    assert "SecEventsWarning" not in flask_start()


def test_the_asgi_middleware_says_its_findings_once() -> None:
    script = """
        import warnings
        warnings.simplefilter("always")
        import sys; sys.modules['datadog'] = None
        from starlette.applications import Starlette
        from starlette.testclient import TestClient
        import graffer_secevents as secevents
        from graffer_secevents.integrations.asgi import SecurityEventsMiddleware
        secevents.configure(hash_key="a-key-of-at-least-16-bytes")
        for _ in range(2):
            app = Starlette()
            app.add_middleware(SecurityEventsMiddleware)
            TestClient(app).get("/")
    """
    stderr = run(script).stderr
    assert stderr.count("metrics are off") == 1, stderr


def test_the_plain_wsgi_middleware_says_its_findings_once_at_the_applications_line() -> None:
    """A WSGI app that is not Flask (the middleware wrapping any WSGI callable) gets the same findings."""
    script = """
        import warnings
        warnings.simplefilter("always")
        import sys; sys.modules['datadog'] = None
        import graffer_secevents as secevents
        from graffer_secevents.integrations.wsgi import SecurityEventsMiddleware
        secevents.configure(hash_key="a-key-of-at-least-16-bytes")
        def application(environ, start_response):
            start_response("200 OK", [])
            return [b"ok"]
        first = SecurityEventsMiddleware(application)
        second = SecurityEventsMiddleware(application)
    """
    stderr = run(script).stderr
    assert stderr.count("metrics are off") == 1, stderr
    assert "<string>:11: SecEventsWarning: graffer_secevents: metrics are off" in stderr, stderr


def test_findings_in_process_name_each_problem() -> None:
    """`config_findings` itself, on configurations built in this process."""
    assert config_findings(api.configure(metrics="none"), probe=False) == []
    ids = [f.id for f in config_findings(api.configure(), behind_proxy="a test", probe=False)]
    assert ids == ["proxies.missing"]
    assert dogstatsd_unreachable(DogStatsdAddress(host="127.0.0.1", port=free_udp_port())) is not None
    assert dogstatsd_unreachable(DogStatsdAddress(socket_path="unix:///nonexistent/dsd.socket")) is not None
    assert dogstatsd_unreachable(DogStatsdAddress(host="192.0.2.1", port=8125)) is None  # cannot be told


def test_startup_findings_never_raise_even_as_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from graffer_secevents._findings import report_startup_findings

    monkeypatch.delenv("SECEVENTS_HASH_KEY")
    api.configure(reset=True, metrics="none")
    _reset()
    reset_warnings()
    with warnings.catch_warnings():
        warnings.simplefilter("error", SecEventsWarning)
        report_startup_findings()  # the warning becomes an error: written to stderr instead, never raised
    _reset()


NO_THREAD_AT_START_UP = """
    import threading, warnings
    warnings.simplefilter("ignore")
    from flask import Flask
    import graffer_secevents as secevents
    from graffer_secevents.integrations.asgi import SecurityEventsMiddleware as Asgi
    from graffer_secevents.integrations.flask import SecurityEvents
    from graffer_secevents.integrations.wsgi import SecurityEventsMiddleware as Wsgi

    secevents.configure(hash_key={key!r}, metrics="dogstatsd")
    app = Flask("one")
    SecurityEvents(app)
    Wsgi(lambda environ, start_response: [])
    Asgi(lambda scope, receive, send: None)
    print("at start-up:", sorted(t.name for t in threading.enumerate()))
"""


def test_start_up_starts_no_thread_so_a_server_may_fork_in_c() -> None:
    """uWSGI without --lazy-apps loads the app in its master, then forks its workers in C: a worker forked
    while one of the master's threads held the GIL waits for it forever. The agent probe and the metrics'
    flush thread start at the first request and the first count instead, in the process that serves."""
    result = run(NO_THREAD_AT_START_UP.format(key=KEY), DD_DOGSTATSD_PORT=str(free_udp_port()))
    assert result.returncode == 0, result.stderr
    assert "at start-up: ['MainThread']" in result.stdout, result.stdout
