"""Metrics: bounded tags, and the real backends end to end.

The DogStatsD tests run the real ``datadog`` client in a subprocess that sends to a socket this test binds on
127.0.0.1 (or a Unix socket), and parse every datagram against the DogStatsD wire format. The OpenTelemetry
tests use the real SDK with an ``InMemoryMetricReader``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graffer_secevents import _metrics
from graffer_secevents._errors import ConfigurationError
from graffer_secevents._metrics import (
    DROP_REASONS,
    LOGIN_FAILURE_REASONS,
    METRIC_BACKENDS,
    DogStatsdAddress,
    DogStatsdMetrics,
    MemoryMetrics,
    MetricPoint,
    MetricsBackend,
    NoMetrics,
    OTelMetrics,
    create_backend,
    record_dropped,
    record_event,
    resolve_dogstatsd_address,
)

# ----------------------------------------------------------------------------------------------------------
# The workload: login attempts with mixed outcomes, reasons (some hostile) and usr_exists, plus other events.
# Each row: outcome, the reason given, the reason tag expected (None: no tag), usr_exists, how many times.
# ----------------------------------------------------------------------------------------------------------

LOGINS: list[tuple[str, str | None, str | None, bool | None, int]] = [
    ("failure", "invalid_credentials", "invalid_credentials", True, 5),
    ("failure", "unknown_user", "unknown_user", False, 4),
    ("failure", "Invalid Credentials", "invalid_credentials", True, 2),
    ("failure", "alice@example.com", "other", False, 3),
    ("failure", "203.0.113.7", "other", None, 2),
    ("failure", "user_id=42;session=sess-abcdef0123", "other", True, 1),
    ("failure", "../../etc/passwd", "other", True, 1),
    ("failure", "x" * 300, "other", False, 1),
    ("failure", None, None, True, 2),
    ("failure", "rate_limited", "rate_limited", None, 1),
    ("success", "alice@example.com", None, True, 6),
    ("success", None, None, None, 1),
]
OTHER_EVENTS: list[tuple[str, str, str | None, int]] = [
    ("authz_fail", "authorization", "failure", 3),
    ("malicious_sqli", "intrusion_detection", None, 2),
]
DROPS: list[tuple[str, str, int]] = [("write_error", "write_error", 2), ("alice@example.com", "other", 1)]
HOSTILE = ("alice", "example", "203.0.113", "sess-", "user_id", "xxxx", "etc/passwd", "42")


def workload() -> list[dict[str, Any]]:
    """The record_event keyword arguments, in order."""
    calls: list[dict[str, Any]] = []
    for outcome, reason, _expected, exists, times in LOGINS:
        evt_type = "authn_login_fail" if outcome == "failure" else "authn_login_success"
        call = {
            "evt_type": evt_type,
            "category": "authentication",
            "outcome": outcome,
            "login_attempt": True,
            "reason": reason,
            "usr_exists": exists,
        }
        calls.extend([call] * times)
    for evt_type, category, outcome, times in OTHER_EVENTS:
        call = {
            "evt_type": evt_type,
            "category": category,
            "outcome": outcome,
            "login_attempt": False,
            "reason": None,
            "usr_exists": None,
        }
        calls.extend([call] * times)
    return calls


def expected_totals() -> Counter[tuple[str, frozenset[str]]]:
    """What the workload must add up to, per (metric, tag set), written out independently of the module."""
    totals: Counter[tuple[str, frozenset[str]]] = Counter()
    for outcome, _reason, expected_reason, exists, times in LOGINS:
        evt_type = "authn_login_fail" if outcome == "failure" else "authn_login_success"
        event_tags = {f"evt_type:{evt_type}", "evt_category:authentication", f"outcome:{outcome}"}
        totals["secevents.events", frozenset(event_tags)] += times
        login_tags = {f"outcome:{outcome}"}
        if expected_reason is not None:
            login_tags.add(f"reason:{expected_reason}")
        if exists is not None:
            login_tags.add(f"usr_exists:{str(exists).lower()}")
        totals["secevents.login.attempts", frozenset(login_tags)] += times
    for evt_type, category, outcome, times in OTHER_EVENTS:
        tags = {f"evt_type:{evt_type}", f"evt_category:{category}"} | (
            {f"outcome:{outcome}"} if outcome else set()
        )
        totals["secevents.events", frozenset(tags)] += times
    for _given, expected, times in DROPS:
        totals["secevents.dropped", frozenset({f"reason:{expected}"})] += times
    return totals


def run_workload(backend: MetricsBackend) -> None:
    for call in workload():
        record_event(backend, **call)
    for given_reason, _expected, times in DROPS:
        for _ in range(times):
            record_dropped(backend, given_reason)


# ----------------------------------------------------------------------------------------------------------
# Subprocess and DogStatsD wire-format helpers
# ----------------------------------------------------------------------------------------------------------

_DD_VARIABLES = (
    "DD_DOGSTATSD_URL",
    "DD_DOGSTATSD_HOST",
    "DD_DOGSTATSD_PORT",
    "DD_AGENT_HOST",
    "DD_SERVICE",
    "DD_ENV",
    "DD_VERSION",
    "DD_ENTITY_ID",
    "DD_EXTERNAL_ENV",
    "DATADOG_TAGS",
    "DD_DOGSTATSD_DISABLE",
    "DD_TELEMETRY_HOST",
    "DD_TELEMETRY_PORT",
    "PYTHONWARNINGS",
)

# name:value|type[|@rate][|#tags][|c:container][|e:external][|card:cardinality][|Tts]
_LINE = re.compile(
    r"(?P<name>[A-Za-z][A-Za-z0-9_.]*):(?P<value>-?[0-9]+(?:\.[0-9]+)?)\|(?P<type>c|g|ms|h|s|d)"
    r"(?:\|@(?P<rate>[0-9.]+))?(?:\|#(?P<tags>[^|]*))?(?:\|c:[^|]*)?(?:\|e:[^|]*)?(?:\|card:[a-z]+)?(?:\|T[0-9]+)?"
)
_TAG = re.compile(r"[a-z][a-z0-9_.:/-]*")


def run_python(
    code: str, *, env: dict[str, str] | None = None, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter (warnings are errors there too), no Datadog variables but ``env``."""
    environ = {k: v for k, v in os.environ.items() if k not in _DD_VARIABLES}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def drain(sock: socket.socket) -> list[tuple[bytes, Any]]:
    """Every datagram already queued on ``sock`` (the sender has exited), with its source address."""
    received = []
    sock.settimeout(0.3)
    try:
        while True:
            received.append(sock.recvfrom(65535))
    except TimeoutError:
        pass
    return received


def parse(datagrams: list[bytes]) -> list[tuple[str, int, frozenset[str]]]:
    """Parse DogStatsD datagrams (several ``\\n``-separated lines each); fail on any malformed line."""
    points = []
    for datagram in datagrams:
        for line in datagram.decode("utf-8").split("\n"):
            if not line:
                continue
            match = _LINE.fullmatch(line)
            assert match, f"not a DogStatsD metric line: {line!r}"
            tags = match.group("tags")
            tag_list = tags.split(",") if tags else []
            assert len(tag_list) == len(set(tag_list)), f"a tag sent twice: {line!r}"
            points.append((match.group("name"), int(float(match.group("value"))), frozenset(tag_list)))
    return points


def totals_of(points: list[tuple[str, int, frozenset[str]]]) -> Counter[tuple[str, frozenset[str]]]:
    totals: Counter[tuple[str, frozenset[str]]] = Counter()
    for name, value, tags in points:
        if name.startswith("secevents."):
            totals[name, tags] += value
    return totals


@pytest.fixture
def udp_receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


@pytest.fixture
def closed_udp_port() -> int:
    """A loopback UDP port nobody listens on (bound, then released)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def short_tmp() -> Iterator[str]:
    """A short directory for Unix sockets (their paths are limited to ~100 bytes)."""
    path = tempfile.mkdtemp(prefix="secev", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


WORKLOAD_SCRIPT = """
import json
from graffer_secevents._metrics import create_backend, record_dropped, record_event

backend = create_backend("dogstatsd")
calls, drops = json.loads({payload!r})
for call in calls:
    record_event(backend, **call)
for reason in drops:
    record_dropped(backend, reason)
# No flush(): the exit hook must send everything.
"""


def _workload_code() -> str:
    drops = [given for given, _expected, times in DROPS for _ in range(times)]
    return WORKLOAD_SCRIPT.format(payload=json.dumps([workload(), drops]))


# ----------------------------------------------------------------------------------------------------------
# DogStatsD, end to end
# ----------------------------------------------------------------------------------------------------------


def test_dogstatsd_subprocess_sends_every_count_at_exit_without_flush(udp_receiver: socket.socket) -> None:
    port = udp_receiver.getsockname()[1]
    proc = run_python(_workload_code(), env={"DD_DOGSTATSD_URL": f"udp://127.0.0.1:{port}"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    points = parse([data for data, _addr in drain(udp_receiver)])

    assert totals_of(points) == expected_totals()
    assert sum(totals_of(points).values()) == sum(expected_totals().values())
    all_tags = {tag for _name, _value, tags in points if _name.startswith("secevents.") for tag in tags}
    for tag in all_tags:
        assert _TAG.fullmatch(tag), tag
        assert len(tag) <= 200, tag
        assert tag.partition(":")[0] in _metrics.TAG_KEYS, tag
        assert not any(hostile in tag for hostile in HOSTILE), tag


def test_dogstatsd_over_a_unix_socket(short_tmp: str) -> None:
    path = os.path.join(short_tmp, "dsd.socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    try:
        proc = run_python(_workload_code(), env={"DD_DOGSTATSD_URL": f"unix://{path}"})
        assert proc.returncode == 0, proc.stderr
        points = parse([data for data, _addr in drain(sock)])
    finally:
        sock.close()
    assert totals_of(points) == expected_totals()


def test_dogstatsd_forked_child_sends_its_own_counts_and_none_twice(udp_receiver: socket.socket) -> None:
    """gunicorn --preload: the client has counts before fork; the child's counts leave from its own socket."""
    port = udp_receiver.getsockname()[1]
    proc = run_python(
        """
        import os, sys
        from graffer_secevents._metrics import create_backend, record_event

        def login(outcome, n):
            for _ in range(n):
                evt_type = "authn_login_fail" if outcome == "failure" else "authn_login_success"
                record_event(backend, evt_type=evt_type, category="authentication", outcome=outcome,
                             login_attempt=True, reason="invalid_credentials", usr_exists=True)

        backend = create_backend("dogstatsd")
        login("failure", 1)          # aggregated in the parent, not yet flushed at fork time
        pid = os.fork()
        if pid == 0:
            login("success", 7)
            sys.exit(0)              # a normal exit, as gunicorn workers do
        _, status = os.waitpid(pid, 0)
        assert status == 0, status
        login("failure", 3)
        """,
        env={"DD_DOGSTATSD_URL": f"udp://127.0.0.1:{port}"},
    )
    assert proc.returncode == 0, proc.stderr
    received = drain(udp_receiver)
    points = parse([data for data, _addr in received])
    totals = totals_of(points)
    assert totals["secevents.login.attempts", frozenset({"outcome:success", "usr_exists:true"})] == 7
    failure_tags = frozenset({"outcome:failure", "reason:invalid_credentials", "usr_exists:true"})
    assert (
        totals["secevents.login.attempts", failure_tags] == 4
    )  # 1 + 3: the child did not resend the parent's 1

    senders = {
        addr
        for data, addr in received
        for name, _v, tags in parse([data])
        if name == "secevents.login.attempts" and "outcome:success" in tags
    }
    parent_senders = {
        addr
        for data, addr in received
        for name, _v, tags in parse([data])
        if name == "secevents.login.attempts" and "outcome:failure" in tags
    }
    assert senders
    assert parent_senders
    assert senders.isdisjoint(parent_senders)


def test_dogstatsd_counts_from_atexit_hooks_that_run_after_ours_are_still_sent(
    udp_receiver: socket.socket,
) -> None:
    port = udp_receiver.getsockname()[1]
    proc = run_python(
        """
        import atexit
        from graffer_secevents._metrics import create_backend, record_dropped

        atexit.register(lambda: record_dropped(backend, "write_error"))  # registered first, so it runs last
        backend = create_backend("dogstatsd")
        record_dropped(backend, "internal_error")
        """,
        env={"DD_DOGSTATSD_URL": f"udp://127.0.0.1:{port}"},
    )
    assert proc.returncode == 0, proc.stderr
    totals = totals_of(parse([data for data, _addr in drain(udp_receiver)]))
    assert totals == {
        ("secevents.dropped", frozenset({"reason:internal_error"})): 1,
        ("secevents.dropped", frozenset({"reason:write_error"})): 1,
    }


@pytest.mark.parametrize("given_service", [None, "auth-api"])
def test_dogstatsd_service_env_version_are_sent_once(
    udp_receiver: socket.socket, given_service: str | None
) -> None:
    """DD_SERVICE/DD_ENV/DD_VERSION come from the client; configure()'s values are not added a second time."""
    port = udp_receiver.getsockname()[1]
    proc = run_python(
        f"""
        from graffer_secevents._metrics import create_backend, record_dropped
        backend = create_backend("dogstatsd", service={given_service!r}, env="prod", version="1.2.3")
        record_dropped(backend, "write_error")
        """,
        env={
            "DD_DOGSTATSD_URL": f"udp://127.0.0.1:{port}",
            "DD_SERVICE": "auth-api",
            "DD_ENV": "prod",
            "DD_VERSION": "1.2.3",
        },
    )
    assert proc.returncode == 0, proc.stderr
    points = [p for p in parse([d for d, _a in drain(udp_receiver)]) if p[0].startswith("secevents.")]
    assert points == [
        (
            "secevents.dropped",
            1,
            frozenset({"reason:write_error", "service:auth-api", "env:prod", "version:1.2.3"}),
        )
    ]  # parse() already fails on a tag sent twice


def test_dogstatsd_configured_service_fills_in_when_dd_service_is_unset(udp_receiver: socket.socket) -> None:
    port = udp_receiver.getsockname()[1]
    proc = run_python(
        """
        from graffer_secevents._metrics import create_backend, record_dropped
        record_dropped(create_backend("dogstatsd", service="Auth API", env="prod"), "write_error")
        """,
        env={"DD_DOGSTATSD_URL": f"udp://127.0.0.1:{port}", "DD_ENV": "prod"},
    )
    assert proc.returncode == 0, proc.stderr
    points = [p for p in parse([d for d, _a in drain(udp_receiver)]) if p[0].startswith("secevents.")]
    assert points == [
        ("secevents.dropped", 1, frozenset({"reason:write_error", "service:auth_api", "env:prod"}))
    ]


NO_LISTENER_SCRIPT = """
    import logging, sys, time
    from graffer_secevents._metrics import create_backend, record_event

    {setup}
    root_before = (logging.getLogger().level, list(logging.getLogger().handlers))
    backend = create_backend("dogstatsd")

    def login():
        record_event(backend, evt_type="authn_login_fail", category="authentication", outcome="failure",
                     login_attempt=True, reason="invalid_credentials", usr_exists=True)

    start = time.perf_counter()
    for _ in range(1000):
        login()
    elapsed = time.perf_counter() - start
    for _ in range(4):  # several sends, so the refused ones (ICMP port unreachable) surely happen
        backend.flush()
        time.sleep(0.03)
        login()
    assert (logging.getLogger().level, list(logging.getLogger().handlers)) == root_before
    print(elapsed, logging.getLogger("datadog.dogstatsd").level)
"""


@pytest.mark.parametrize("app_logging", ["", "logging.basicConfig()"], ids=["no-logging", "root-configured"])
@pytest.mark.parametrize("transport", ["udp", "unix"])
def test_dogstatsd_without_an_agent_is_fast_silent_and_never_raises(
    transport: str, app_logging: str, closed_udp_port: int, short_tmp: str
) -> None:
    """No Agent: 1000 logins return fast, nothing raises, an app logging to stderr gets no warning spam."""
    url = f"udp://127.0.0.1:{closed_udp_port}" if transport == "udp" else f"unix://{short_tmp}/missing.sock"
    proc = run_python(NO_LISTENER_SCRIPT.format(setup=app_logging), env={"DD_DOGSTATSD_URL": url})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    elapsed, level = proc.stdout.split()
    assert float(elapsed) < 1.0  # ~5 ms expected; generous for a noisy machine
    assert int(level) == 40  # ERROR


def test_dogstatsd_logger_configured_by_the_app_is_left_alone(closed_udp_port: int) -> None:
    """The control for the test above: with the app's own WARNING level, the client's warnings do show."""
    setup = "logging.basicConfig(); logging.getLogger('datadog.dogstatsd').setLevel(logging.WARNING)"
    assert (
        "Error submitting packet"
        not in run_python(
            NO_LISTENER_SCRIPT.format(setup="logging.basicConfig()"),
            env={"DD_DOGSTATSD_URL": f"udp://127.0.0.1:{closed_udp_port}"},
        ).stderr
    )
    proc = run_python(
        NO_LISTENER_SCRIPT.format(setup=setup), env={"DD_DOGSTATSD_URL": f"udp://127.0.0.1:{closed_udp_port}"}
    )
    assert proc.returncode == 0, proc.stderr
    assert "Error submitting packet" in proc.stderr
    assert proc.stdout.split()[1] == "30"  # WARNING, as the app set it


def test_importing_metrics_does_not_import_datadog() -> None:
    proc = run_python(
        """
        import sys
        import graffer_secevents._metrics
        assert "datadog" not in sys.modules, "datadog imported"
        """
    )
    assert proc.returncode == 0, proc.stderr


def test_dogstatsd_without_the_datadog_package() -> None:
    proc = run_python(
        """
        import sys
        sys.modules["datadog"] = None  # as if not installed
        from graffer_secevents._errors import MissingDependencyError
        from graffer_secevents._metrics import NoMetrics, create_backend
        try:
            create_backend("dogstatsd")
        except MissingDependencyError as exc:
            assert isinstance(exc, ImportError)
            assert 'pip install "graffer-secevents[datadog]"' in str(exc), str(exc)
        else:
            raise AssertionError("no error")
        assert isinstance(create_backend("auto"), NoMetrics)
        """
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def dogstatsd_env(monkeypatch: pytest.MonkeyPatch, closed_udp_port: int) -> None:
    for name in _DD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DD_DOGSTATSD_URL", f"udp://127.0.0.1:{closed_udp_port}")


@pytest.mark.usefixtures("dogstatsd_env")
def test_auto_picks_dogstatsd_when_datadog_is_installed() -> None:
    backend = create_backend("auto")
    try:
        assert isinstance(backend, DogStatsdMetrics)
        assert backend.address == DogStatsdAddress(host="127.0.0.1", port=backend.address.port)
    finally:
        backend.close()


@pytest.mark.usefixtures("dogstatsd_env")
def test_dogstatsd_backend_is_one_per_process_and_uses_our_flush_thread_only() -> None:
    first = create_backend("dogstatsd")
    try:
        assert create_backend("dogstatsd") is first
        names = [thread.name for thread in threading.enumerate()]
        assert "graffer_secevents-dogstatsd-flush" not in names  # a thread starts at the first count
        first.count("secevents.events", 1, ("evt_type:x",))
        names = [thread.name for thread in threading.enumerate()]
        assert "graffer_secevents-dogstatsd-flush" in names
        assert "DogStatsd_flush_thread" not in names  # flush_interval=0 keeps the client's own thread off
    finally:
        first.close()
    second = create_backend("dogstatsd")
    try:
        assert second is not first
        first.count("secevents.events", 1, ("evt_type:x",))  # after close: dropped, no error
        first.flush()
        first.close()
    finally:
        second.close()


def test_flush_sends_now_and_the_flush_thread_sends_on_its_own(udp_receiver: socket.socket) -> None:
    host, port = udp_receiver.getsockname()
    backend = DogStatsdMetrics(DogStatsdAddress(host=host, port=port), flush_interval=0.05)
    try:
        record_dropped(backend, "write_error")
        record_dropped(backend, "write_error")
        backend.flush()
        udp_receiver.settimeout(2)
        assert totals_of(parse([udp_receiver.recv(65535)])) == {
            ("secevents.dropped", frozenset({"reason:write_error"})): 2
        }
        record_dropped(backend, "internal_error")  # no flush(): the thread sends it within ~0.05 s
        assert totals_of(parse([udp_receiver.recv(65535)])) == {
            ("secevents.dropped", frozenset({"reason:internal_error"})): 1
        }
    finally:
        backend.close()


@pytest.mark.usefixtures("dogstatsd_env")
def test_bad_dogstatsd_url_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DD_DOGSTATSD_URL", "tcp://127.0.0.1:8125")
    with pytest.raises(ConfigurationError, match="DD_DOGSTATSD_URL"):
        create_backend("dogstatsd")


# ----------------------------------------------------------------------------------------------------------
# Address resolution (like ddtrace)
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "socket_exists", "expected"),
    [
        ({}, False, "udp://localhost:8125"),
        ({}, True, "unix:///var/run/datadog/dsd.socket"),
        ({"DD_AGENT_HOST": "10.0.0.7"}, True, "udp://10.0.0.7:8125"),
        ({"DD_DOGSTATSD_PORT": "9125"}, True, "udp://localhost:9125"),
        ({"DD_AGENT_HOST": "agent", "DD_DOGSTATSD_PORT": "9125"}, False, "udp://agent:9125"),
        ({"DD_DOGSTATSD_HOST": "dsd", "DD_AGENT_HOST": "agent"}, False, "udp://dsd:8125"),
        (
            {"DD_DOGSTATSD_URL": "udp://127.0.0.1:1234", "DD_AGENT_HOST": "agent"},
            True,
            "udp://127.0.0.1:1234",
        ),
        ({"DD_DOGSTATSD_URL": "udp://[::1]:1234"}, False, "udp://[::1]:1234"),
        ({"DD_DOGSTATSD_URL": "udp://agent"}, False, "udp://agent:8125"),
        ({"DD_DOGSTATSD_URL": "unix:///run/dsd.sock"}, False, "unix:///run/dsd.sock"),
        ({"DD_DOGSTATSD_URL": "unixgram:///run/dsd.sock"}, False, "unixgram:///run/dsd.sock"),
    ],
)
def test_dogstatsd_address_resolution_order(
    environ: dict[str, str], socket_exists: bool, expected: str
) -> None:
    assert resolve_dogstatsd_address(environ, socket_exists=lambda _path: socket_exists).url == expected


@pytest.mark.parametrize(
    "environ",
    [
        {"DD_DOGSTATSD_URL": "http://agent:8125"},
        {"DD_DOGSTATSD_URL": "udp://agent:notaport"},
        {"DD_DOGSTATSD_URL": "unix://"},
        {"DD_DOGSTATSD_PORT": "eighty"},
        {"DD_DOGSTATSD_PORT": "70000"},
    ],
)
def test_malformed_dogstatsd_address_is_rejected(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        resolve_dogstatsd_address(environ, socket_exists=lambda _path: False)


# ----------------------------------------------------------------------------------------------------------
# OpenTelemetry
# ----------------------------------------------------------------------------------------------------------


def otel_totals(reader: Any) -> Counter[tuple[str, frozenset[str]]]:
    totals: Counter[tuple[str, frozenset[str]]] = Counter()
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                assert metric.data.is_monotonic  # a Counter
                for point in metric.data.data_points:
                    tags = frozenset(f"{key}:{value}" for key, value in point.attributes.items())
                    totals[metric.name, tags] += point.value
    return totals


def test_otel_sdk_sees_the_same_counts_and_attributes() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        run_workload(OTelMetrics(meter=provider.get_meter("graffer_secevents")))
        assert otel_totals(reader) == expected_totals()
    finally:
        provider.shutdown()


def test_otel_backend_is_a_noop_until_an_sdk_provider_is_installed_later() -> None:
    proc = run_python(
        """
        from collections import Counter
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from graffer_secevents._metrics import create_backend, record_dropped

        backend = create_backend("otel")           # before any provider: the API's proxies
        record_dropped(backend, "write_error")     # dropped by the no-op provider
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        for _ in range(3):
            record_dropped(backend, "write_error")
        seen = Counter()
        for rm in reader.get_metrics_data().resource_metrics:
            for sm in rm.scope_metrics:
                assert sm.scope.name == "graffer_secevents"
                for m in sm.metrics:
                    for p in m.data.data_points:
                        seen[m.name, tuple(sorted(p.attributes.items()))] += p.value
        assert seen == {("secevents.dropped", (("reason", "write_error"),)): 3}, seen
        """
    )
    assert proc.returncode == 0, proc.stderr


# ----------------------------------------------------------------------------------------------------------
# Tags, bounded sets, never raising
# ----------------------------------------------------------------------------------------------------------


def test_memory_backend_records_the_workload() -> None:
    memory = MemoryMetrics()
    run_workload(memory)
    totals: Counter[tuple[str, frozenset[str]]] = Counter()
    for point in memory.points:
        totals[point.name, frozenset(point.tags)] += point.value
    assert totals == expected_totals()
    assert memory.total("secevents.login.attempts", "outcome:failure") == 22
    memory.clear()
    assert memory.points == []


@pytest.mark.parametrize(
    ("reason", "tag"),
    [
        ("invalid_token", "reason:invalid_token"),
        ("expired_token", "reason:invalid_token"),
        ("account_disabled", "reason:account_disabled"),
        ("invalid_code", "reason:mfa_failed"),
    ],
)
def test_the_reasons_the_auth_stacks_write_are_bounded_values_not_other(reason: str, tag: str) -> None:
    """What the integrations write as `evt.reason` (bad tokens, inactive accounts, wrong MFA codes) keeps its
    meaning in the metric instead of falling into `reason:other`."""
    memory = MemoryMetrics()
    common = {"evt_type": "authn_login_fail", "category": "authentication", "login_attempt": True}
    record_event(memory, **common, outcome="failure", reason=reason, usr_exists=True)
    [attempt] = [p for p in memory.points if p.name == "secevents.login.attempts"]
    assert tag in attempt.tags


def test_failure_without_reason_has_no_reason_tag_and_success_never_has_one() -> None:
    memory = MemoryMetrics()
    common = {"evt_type": "authn_login_fail", "category": "authentication", "login_attempt": True}
    record_event(memory, **common, outcome="failure", reason=None, usr_exists=None)
    record_event(memory, **common, outcome="success", reason="mfa_failed", usr_exists=True)
    assert [p.tags for p in memory.points if p.name == "secevents.login.attempts"] == [
        ("outcome:failure",),
        ("outcome:success", "usr_exists:true"),
    ]


def test_non_login_events_count_only_secevents_events() -> None:
    memory = MemoryMetrics()
    record_event(
        memory,
        evt_type="authn_password_change",
        category="Authentication",
        outcome="SUCCESS",
        login_attempt=False,
        reason="invalid_credentials",
        usr_exists=True,
    )
    assert memory.points == [
        MetricPoint(
            "secevents.events",
            1,
            ("evt_type:authn_password_change", "evt_category:authentication", "outcome:success"),
        )
    ]


def test_unknown_category_and_outcome_become_other() -> None:
    memory = MemoryMetrics()
    record_event(
        memory,
        evt_type="authn_login_fail",
        category="alice@example.com",
        outcome="maybe",
        login_attempt=True,
        reason="account_locked",
        usr_exists=True,
    )
    assert [p.tags for p in memory.points] == [
        ("evt_type:authn_login_fail", "evt_category:other", "outcome:other"),
        ("outcome:other", "usr_exists:true"),
    ]


def test_evt_type_values_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_metrics, "_seen_evt_types", set())
    monkeypatch.setattr(_metrics, "_PLANS", {})
    monkeypatch.setattr(_metrics, "_MAX_EVT_TYPES", 2)
    memory = MemoryMetrics()
    for evt_type in ("a_one", "a_two", "a_three", "a_one"):
        record_event(
            memory,
            evt_type=evt_type,
            category="web",
            outcome=None,
            login_attempt=False,
            reason=None,
            usr_exists=None,
        )
    assert [p.tags[0] for p in memory.points] == [
        "evt_type:a_one",
        "evt_type:a_two",
        "evt_type:other",
        "evt_type:a_one",
    ]


class _Exploding:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def count(self, name: str, value: int, tags: tuple[str, ...]) -> None:
        raise self.error

    def flush(self) -> None: ...

    def close(self) -> None: ...


def test_recording_never_raises_an_exception_but_lets_base_exceptions_through() -> None:
    broken = _Exploding(RuntimeError("backend down"))
    record_event(
        broken,
        evt_type="x",
        category="web",
        outcome="failure",
        login_attempt=True,
        reason="a",
        usr_exists=True,
    )
    record_dropped(broken, "write_error")
    unhashable: Any = ["not", "hashable"]
    record_event(
        MemoryMetrics(),
        evt_type="x",
        category="web",
        outcome="failure",
        login_attempt=True,
        reason=unhashable,
        usr_exists=None,
    )
    record_dropped(MemoryMetrics(), unhashable)
    with pytest.raises(KeyboardInterrupt):
        record_dropped(_Exploding(KeyboardInterrupt()), "write_error")


def test_unknown_backend_name_lists_the_allowed_values() -> None:
    with pytest.raises(ConfigurationError) as info:
        create_backend("statsd")
    assert isinstance(info.value, ValueError)
    for name in METRIC_BACKENDS:
        assert repr(name) in str(info.value) or name in str(info.value)


def test_simple_backends_implement_the_protocol() -> None:
    for backend in (NoMetrics(), MemoryMetrics(), create_backend("none"), create_backend("memory")):
        assert isinstance(backend, MetricsBackend)
        backend.count("secevents.events", 1, ("evt_type:x",))
        backend.flush()
        backend.close()


def test_memory_backend_appends_from_many_threads() -> None:
    memory = MemoryMetrics()

    def work() -> None:
        for _ in range(2000):
            record_dropped(memory, "write_error")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert memory.total("secevents.dropped", "reason:write_error") == 16000


_TEXT = st.one_of(st.none(), st.text(max_size=300), st.sampled_from(sorted(LOGIN_FAILURE_REASONS)))


@settings(max_examples=300, deadline=None)
@given(
    evt_type=st.sampled_from(["authn_login_fail", "authn_login_success", "authz_fail"]),
    category=st.text(max_size=50),
    outcome=st.one_of(st.none(), st.sampled_from(["success", "failure"]), st.text(max_size=20)),
    reason=_TEXT,
    usr_exists=st.one_of(st.none(), st.booleans()),
    drop_reason=st.one_of(st.text(max_size=300), st.sampled_from(sorted(DROP_REASONS))),
)
def test_any_input_gives_valid_bounded_tags(
    evt_type: str,
    category: str,
    outcome: str | None,
    reason: str | None,
    usr_exists: bool | None,
    drop_reason: str,
) -> None:
    memory = MemoryMetrics()
    record_event(
        memory,
        evt_type=evt_type,
        category=category,
        outcome=outcome,
        login_attempt=True,
        reason=reason,
        usr_exists=usr_exists,
    )
    record_dropped(memory, drop_reason)
    assert [p.name for p in memory.points] == [
        "secevents.events",
        "secevents.login.attempts",
        "secevents.dropped",
    ]
    allowed = {
        "outcome": {"success", "failure", "other"},
        "evt_category": _metrics._CATEGORIES | {"other"},
        "usr_exists": {"true", "false"},
        "evt_type": {evt_type},
    }
    for point in memory.points:
        keys = [tag.partition(":")[0] for tag in point.tags]
        assert len(keys) == len(set(keys))
        for tag in point.tags:
            assert _TAG.fullmatch(tag), tag
            assert len(tag) <= 200, tag
            assert not tag.endswith(":"), tag
            key, _, value = tag.partition(":")
            if key == "reason":
                assert value in (DROP_REASONS if point.name == "secevents.dropped" else LOGIN_FAILURE_REASONS)
            else:
                assert value in allowed[key], tag
