"""Real servers bound to a unix socket, the way a proxy on the same host reaches them (nginx's
`proxy_pass http://unix:/run/app.sock`): the peer has no address, and each server says so differently
(uvicorn no `client`, gunicorn an empty `REMOTE_ADDR`, waitress `localhost`, uWSGI `0.0.0.0`). With the `unix` entry in
`trusted_proxies`, the proxy's `X-Forwarded-For` is walked from it; without it nothing forged is believed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
SERVERS = {
    "gunicorn": lambda sock: [
        str(BIN / "gunicorn"),
        "-w",
        "1",
        "-b",
        f"unix:{sock}",
        "unix_socket_app:application",
    ],
    "waitress": lambda sock: [
        str(BIN / "waitress-serve"),
        f"--unix-socket={sock}",
        "--no-clear-untrusted-proxy-headers",
        "unix_socket_app:application",
    ],
    "uvicorn": lambda sock: [
        str(BIN / "uvicorn"),
        "--uds",
        str(sock),
        "--no-proxy-headers",
        "unix_socket_app:app",
    ],
    # uWSGI names a unix-socket peer 0.0.0.0, an address no connection comes from
    "uwsgi": lambda sock: [
        str(BIN / "uwsgi"),
        f"--http-socket={sock}",
        "--module=unix_socket_app:application",
        "--master",
        "--processes=1",
        "--die-on-term",
        "--disable-logging",
    ],
}
FORGED, CLIENT = "6.6.6.6", "203.0.113.9"


def _listening(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(sock))
    except OSError:
        return False
    return True


def serve_and_ask(server: str, tmp_path: Path, trusted: dict[str, str]) -> list[dict[str, Any]]:
    """Start `server` on a socket file, send two requests (forwarded and not), stop it; its records."""
    if not Path(SERVERS[server](tmp_path)[0]).exists():
        pytest.skip(f"{server} is not installed")
    sock, events = tmp_path / f"{server}.sock", tmp_path / f"{server}.jsonl"
    env = {**os.environ, "EVENTS_FILE": str(events), "PYTHONPATH": str(HERE), **trusted}
    with (tmp_path / f"{server}.stderr").open("w") as stderr:
        proc = subprocess.Popen(
            SERVERS[server](sock), cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        deadline = time.monotonic() + 30
        while not _listening(sock):
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp_path / f"{server}.stderr"
            ).read_text()
            time.sleep(0.05)
        with httpx.Client(
            transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://localhost"
        ) as client:
            headers = {"X-Forwarded-For": f"{FORGED}, {CLIENT}", "X-Request-ID": "via-proxy"}
            assert client.get("/private", headers=headers).status_code == 401
            assert client.get("/private", headers={"X-Request-ID": "local"}).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    records = [orjson.loads(line) for line in events.read_bytes().splitlines()]
    return [r for r in records if "evt" in r]


def ip_by_request(records: list[dict[str, Any]]) -> dict[str, Any]:
    assert [r["evt"]["type"] for r in records] == ["authz_fail", "authz_fail"], records
    return {r["http"]["request_id"]: r.get("network", {}).get("client", {}).get("ip") for r in records}


@pytest.mark.parametrize("server", list(SERVERS))
def test_the_unix_entry_trusts_the_proxy_on_the_socket(server: str, tmp_path: Path) -> None:
    records = serve_and_ask(server, tmp_path, {"SECEVENTS_TRUSTED_PROXIES": "unix,10.0.0.0/8"})
    assert ip_by_request(records) == {"via-proxy": CLIENT, "local": None}


@pytest.mark.parametrize("server", ["waitress", "uwsgi"])
def test_a_hop_count_reads_a_unix_socket_peer_by_position(server: str, tmp_path: Path) -> None:
    """waitress names a unix-socket peer `localhost`, uWSGI `0.0.0.0`: still no address, so a hop count
    applies to it."""
    records = serve_and_ask(server, tmp_path, {"SECEVENTS_TRUSTED_HOPS": "1"})
    assert ip_by_request(records) == {"via-proxy": CLIENT, "local": None}


@pytest.mark.parametrize("server", ["gunicorn", "waitress", "uwsgi"])
def test_networks_alone_never_believe_a_header_over_a_socket(server: str, tmp_path: Path) -> None:
    records = serve_and_ask(server, tmp_path, {"SECEVENTS_TRUSTED_PROXIES": "127.0.0.1/32"})
    assert ip_by_request(records) == {"via-proxy": None, "local": None}
    assert b"add 'unix' to trusted_proxies" in (tmp_path / f"{server}.stderr").read_bytes()


@pytest.mark.parametrize("server", ["uwsgi"])
def test_with_nothing_configured_a_socket_peer_is_no_client_ip(server: str, tmp_path: Path) -> None:
    """uWSGI's `0.0.0.0` is not recorded as the client of every request (one address for all of them)."""
    records = serve_and_ask(server, tmp_path, {})
    assert ip_by_request(records) == {"via-proxy": None, "local": None}
