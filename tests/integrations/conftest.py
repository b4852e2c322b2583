"""Shared by the integration tests: the spoofing matrix, and real servers on loopback driven by httpx."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from graffer_secevents._errors import reset_warnings as _reset_warning_state

CLIENT = "203.0.113.7"
FORGED = "6.6.6.6"
CIDRS = ["10.0.0.0/8", "2001:db8:ffff::/48"]


@dataclass(frozen=True)
class SpoofCase:
    """One request through a middleware: who connects, what headers arrive, what must be logged."""

    id: str
    peer: str
    expected: str
    xff: str | None = None
    forwarded: str | None = None
    cidrs: list[str] | None = field(default_factory=lambda: list(CIDRS))
    hops: int | None = None

    def configure_kwargs(self) -> dict[str, Any]:
        return {"trusted_proxies": self.cidrs, "trusted_hops": self.hops}

    def check(self, records: list[dict[str, Any]]) -> None:
        """One ``authz_fail`` was recorded, with the expected client IP; the forged address appears nowhere."""
        denied = [r for r in records if r["evt"]["type"] == "authz_fail"]
        assert len(denied) == 1, records
        assert denied[0].get("network", {}).get("client", {}).get("ip") == self.expected, denied[0]
        assert_not_forged(records)

    def headers(self) -> dict[str, str]:
        out = {}
        if self.xff is not None:
            out["X-Forwarded-For"] = self.xff
        if self.forwarded is not None:
            out["Forwarded"] = self.forwarded
        return out


SPOOF_CASES = [
    # Forged headers from a peer nobody trusts: the peer is the client.
    SpoofCase("unconfigured-forged-xff", CLIENT, CLIENT, xff=FORGED, cidrs=None),
    SpoofCase("unconfigured-forged-forwarded", CLIENT, CLIENT, forwarded=f"for={FORGED}", cidrs=None),
    SpoofCase("untrusted-peer-forged-xff", CLIENT, CLIENT, xff=f"{FORGED}, 10.0.0.1"),
    SpoofCase("untrusted-peer-forged-forwarded", CLIENT, CLIENT, forwarded=f"for={FORGED};proto=https"),
    # Chains through 1-3 trusted proxies; the client wrote FORGED itself, the proxies appended the rest.
    SpoofCase("one-proxy", "10.0.0.1", CLIENT, xff=f"{FORGED}, {CLIENT}"),
    SpoofCase("two-proxies", "10.0.0.2", CLIENT, xff=f"{FORGED}, {CLIENT}, 10.0.0.1"),
    SpoofCase("three-proxies", "10.0.0.3", CLIENT, xff=f"{FORGED}, {CLIENT}, 10.0.0.1, 10.0.0.2"),
    SpoofCase(
        "forwarded-two-proxies", "10.0.0.2", CLIENT, forwarded=f"for={FORGED}, for={CLIENT}, for=10.0.0.1"
    ),
    SpoofCase("forged-trusted-looking-prefix", "10.0.0.2", CLIENT, xff=f"10.0.0.9, {CLIENT}, 10.0.0.1"),
    # Malformed hops stop the walk at the last trusted hop.
    SpoofCase("malformed-hop", "10.0.0.2", "10.0.0.1", xff=f"{FORGED}, not-an-ip, 10.0.0.1"),
    SpoofCase("script-injection-hop", "10.0.0.1", "10.0.0.1", xff=f"{FORGED}, <script>alert(1)</script>"),
    SpoofCase("empty-hop", "10.0.0.1", "10.0.0.1", xff=f"{FORGED}, "),
    SpoofCase("forwarded-unbalanced-quote", "10.0.0.1", CLIENT, forwarded=f'for="{FORGED}, for={CLIENT}'),
    # IPv6: brackets, ports, a trusted IPv6 proxy, IPv4-mapped peers.
    SpoofCase(
        "ipv6-bracketed-port-forwarded", "10.0.0.1", "2001:db8::7", forwarded='for="[2001:db8::7]:4711"'
    ),
    SpoofCase("ipv6-bracketed-port-xff", "10.0.0.1", "2001:db8::7", xff=f"{FORGED}, [2001:db8::7]:4711"),
    SpoofCase("ipv6-trusted-proxy", "2001:db8:ffff::1", CLIENT, xff=f"{FORGED}, {CLIENT}"),
    SpoofCase("ipv4-mapped-trusted-peer", "::ffff:10.0.0.1", CLIENT, xff=f"{FORGED}, {CLIENT}"),
    SpoofCase("ipv6-untrusted-peer", "2001:db8::99", "2001:db8::99", xff=FORGED),
    # Hop-count mode: exactly N proxies are trusted, whatever their addresses.
    SpoofCase("one-hop", "192.0.2.1", CLIENT, xff=f"{FORGED}, {CLIENT}", cidrs=None, hops=1),
    SpoofCase("two-hops", "192.0.2.1", CLIENT, xff=f"{FORGED}, {CLIENT}, 192.0.2.2", cidrs=None, hops=2),
    SpoofCase("hops-with-cidrs-untrusted-peer", CLIENT, CLIENT, xff=FORGED, hops=2),
    # The two headers disagree: neither is believed past the point where they differ.
    SpoofCase("xff-and-forwarded-disagree", "10.0.0.1", "10.0.0.1", xff=CLIENT, forwarded=f"for={FORGED}"),
]


@pytest.fixture(params=SPOOF_CASES, ids=[case.id for case in SPOOF_CASES])
def spoof_case(request: pytest.FixtureRequest) -> Iterator[SpoofCase]:
    """Each row of the spoofing matrix; the one-time forwarding warning is reset around it."""
    _reset_warning_state()
    yield request.param
    _reset_warning_state()


def assert_not_forged(records: list[dict[str, Any]]) -> None:
    """No record anywhere mentions the forged address."""
    for record in records:
        assert FORGED not in orjson.dumps(record).decode(), record


# --- real servers on loopback ------------------------------------------------------------------------------


def _accepts(port: int) -> bool:
    """Whether the port a server announced accepts connections right away: a server must listen before it
    says so, else a client quicker than the server's start-up (any client, on a busy machine) is refused."""
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    except ConnectionRefusedError:
        return False
    return True


class Server:
    """A server subprocess that prints ``PORT <n>`` once it listens on 127.0.0.1 and writes events to a file."""

    def __init__(self, script: Path, events: Path, env: dict[str, str] | None = None) -> None:
        self.events = events
        self.stderr_path = events.with_suffix(".stderr")
        with self.stderr_path.open("w") as stderr:  # a file, not a pipe: a chatty server never blocks
            self.proc = subprocess.Popen(
                [sys.executable, str(script), str(events)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env={**os.environ, **(env or {})},
            )
        self.port = self._read_port(timeout=30)

    def _read_port(self, timeout: float) -> int:
        import selectors

        assert self.proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not selector.select(timeout=deadline - time.monotonic()):
                    break
                line = self.proc.stdout.readline()
                if not line:
                    break
                if line.startswith("PORT "):
                    port = int(line.split()[1])
                    if _accepts(port):
                        return port
                    self.stop()
                    raise AssertionError(f"{self.proc.args} announced port {port} before listening on it")
        finally:
            selector.close()
        stderr = self.stop()
        raise RuntimeError(f"server did not start: {stderr[-2000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> str:
        """Stop the process (SIGTERM, then SIGKILL); return its stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.stderr_path.read_text()

    def records(self) -> list[dict[str, Any]]:
        records = [orjson.loads(line) for line in self.events.read_bytes().splitlines() if line.strip()]
        return [r for r in records if "evt" in r]  # not the writers' end records (docs/delivery.md)


def drive(
    base_url: str, requests: list[dict[str, Any]], *, threads: int = 16, time_limit: float = 45.0
) -> list[Any]:
    """Send ``requests`` (``httpx.Client.request`` keyword arguments) concurrently; return the responses."""
    import httpx

    deadline = time.monotonic() + time_limit
    with httpx.Client(base_url=base_url, timeout=10.0) as client:

        def one(kwargs: dict[str, Any]) -> Any:
            if time.monotonic() > deadline:
                raise TimeoutError("the load test ran out of time")
            return client.request(**kwargs)

        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(one, requests))


def load_plan(count: int) -> list[dict[str, str]]:
    """``count`` distinct clients: forwarded IP (behind a forged prefix for a third), user and request id."""
    plan = []
    for n in range(count):
        ip = f"198.18.{n // 200}.{n % 200 + 1}"
        plan.append(
            {
                "n": str(n),
                "ip": ip,
                "xff": f"{FORGED}, {ip}" if n % 3 == 0 else ip,
                "user": f"user-{n % 37}",
                "request_id": f"load-{n}",
            }
        )
    return plan


def load_requests(plan: list[dict[str, str]], url: Callable[[int], str]) -> list[dict[str, Any]]:
    """One ``GET url(n)`` per client of ``plan``, with its forwarded IP, test user and request id."""
    return [
        {
            "method": "GET",
            "url": url(n),
            "headers": {
                "X-Forwarded-For": p["xff"],
                "X-Test-User": p["user"],
                "X-Request-ID": p["request_id"],
            },
        }
        for n, p in enumerate(plan)
    ]


def check_no_bleed(
    records: list[dict[str, Any]], plan: list[dict[str, str]], expected: Callable[[int], list[str]]
) -> None:
    """Every record carries its own request's IP, user and request id; each request's events are all there."""
    by_id = {p["request_id"]: p for p in plan}
    seen: dict[str, list[str]] = {}
    for record in records:
        request_id = record["http"]["request_id"]
        assert request_id in by_id, record
        p = by_id[request_id]
        assert record["network"]["client"]["ip"] == p["ip"], record
        assert p["user"] in (record["usr"].get("id"), record["usr"].get("login")), record
        assert record["http"]["url_details"]["path"].endswith(f"/{p['n']}"), record
        seen.setdefault(request_id, []).append(record["evt"]["type"])
    for n, p in enumerate(plan):
        assert sorted(seen.get(p["request_id"], [])) == sorted(expected(n)), (p, seen.get(p["request_id"]))
    assert_not_forged(records)


def check_one_event_per_request(
    records: list[dict[str, Any]],
    plan: list[dict[str, str]],
    expected: Callable[[int], tuple[str, str | None]],
) -> None:
    """Exactly one record per request of ``plan`` (none lost, none doubled), with that request's IP and the
    ``(evt.type, evt.reason)`` that ``expected(n)`` names; the forged address appears nowhere."""
    by_id = {r["http"]["request_id"]: r for r in records}
    assert len(records) == len(by_id) == len(plan)
    for n, p in enumerate(plan):
        record = by_id[p["request_id"]]
        assert record["network"]["client"]["ip"] == p["ip"], record
        assert (record["evt"]["type"], record["evt"].get("reason")) == expected(n), record
    assert_not_forged(records)


class Loopback:
    """What a real-server test needs: start servers (stopped at teardown), drive load, check the events."""

    def __init__(self, tmp_path: Path) -> None:
        self._tmp_path = tmp_path
        self.started: list[Server] = []

    def start(self, script: Path, env: dict[str, str] | None = None) -> Server:
        server = Server(script, self._tmp_path / f"events-{len(self.started)}.jsonl", env)
        self.started.append(server)
        return server

    drive = staticmethod(drive)
    plan = staticmethod(load_plan)
    requests = staticmethod(load_requests)
    check_no_bleed = staticmethod(check_no_bleed)
    check_one_event_per_request = staticmethod(check_one_event_per_request)


@pytest.fixture
def loopback(tmp_path: Path) -> Iterator[Loopback]:
    """Real servers on 127.0.0.1 (ephemeral ports), always stopped after the test."""
    tools = Loopback(tmp_path)
    try:
        yield tools
    finally:
        for server in tools.started:
            server.stop()
