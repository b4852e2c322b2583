"""What the library tells a newcomer about its own set-up: once, at start-up, in the framework's own way.

A finding is something that works but not as the user probably expects: pseudonyms without a key, metrics
that go nowhere, forwarded addresses nobody is allowed to set, a server that rewrites the client address
before the library sees it. `config_findings` computes them from the configuration in force (and what the
integration knows about the app); the Django app turns them into system checks (`manage.py check`), the
Flask extension and the ASGI middleware give each once per process as a `SecEventsWarning`, and `secevents
doctor` prints them. Never raises.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ._config import caller_stacklevel, get_config, unkeyed_message
from ._errors import warn_once

if TYPE_CHECKING:
    from ._config import Config

__all__ = [
    "Finding",
    "config_findings",
    "dogstatsd_unreachable",
    "report_once",
    "report_startup_findings",
    "start_due_probe",
]

_PROBE_TIMEOUT: Final = 0.05


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing to tell the user: a stable `id` (`hash_key.missing`...) and the message, with the fix."""

    id: str
    message: str


def config_findings(
    cfg: Config | None = None, *, behind_proxy: str | None = None, probe: bool = True
) -> list[Finding]:
    """The findings about `cfg` (default: the configuration in force).

    Args:
        cfg: the configuration to look at.
        behind_proxy: what shows the app runs behind a proxy (a framework setting, a `ProxyFix`), if anything.
        probe: check that a DogStatsD agent on this host answers (a datagram to a loopback port, or the
            socket file); off, only what needs no I/O is found.
    """
    cfg = cfg if cfg is not None else get_config()
    found: list[Finding] = []
    if not cfg.privacy.keyed and "hash" in cfg.privacy.modes.values():
        found.append(Finding("hash_key.missing", unkeyed_message(cfg.env)))
    if cfg.metrics is None and cfg.metrics_name == "auto":
        found.append(
            Finding(
                "metrics.off",
                "graffer_secevents: metrics are off: the datadog package is not installed, so no "
                "secevents.* metric is sent and monitors from `secevents monitors` would never fire; "
                'pip install "graffer-secevents[datadog]", or configure(metrics="otel"), or '
                'metrics="none" to say you know',
            )
        )
    address = getattr(cfg.metrics, "address", None)
    if probe and address is not None:
        why = dogstatsd_unreachable(address)
        if why is not None:
            found.append(
                Finding(
                    "metrics.unreachable",
                    f"graffer_secevents: no DogStatsD agent answers at {address.url} ({why}): metrics are "
                    "sent but lost; run the Datadog Agent with DogStatsD on, or set DD_DOGSTATSD_URL / "
                    "DD_AGENT_HOST to where it listens",
                )
            )
    if behind_proxy and cfg.trusted_proxies is None:
        found.append(
            Finding(
                "proxies.missing",
                f"graffer_secevents: the app runs behind a proxy ({behind_proxy}) but no trusted_proxies are "
                "configured, so every event carries the proxy's address as the client IP; set "
                'trusted_proxies="<the proxy\'s CIDR>" (SECEVENTS_TRUSTED_PROXIES)',
            )
        )
    return found


def dogstatsd_unreachable(address: object) -> str | None:
    """Why DogStatsD at `address` (a `DogStatsdAddress`) does not answer, or `None` (it does, or it cannot be
    told: a UDP agent on another host never answers either way)."""
    path = getattr(address, "socket_path", None)
    if path:
        file = str(path).split("://", 1)[-1]
        return None if os.path.exists(file) else f"{file} does not exist"
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if not host or not port:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        return f"{host} does not resolve: {exc}"
    family, kind, proto, _, target = infos[0]
    if not _is_loopback(str(target[0])):
        return None
    # On loopback, a datagram to a closed port comes back as ICMP "port unreachable": the next call on the
    # connected socket fails with ECONNREFUSED. An empty datagram is ignored by the agent.
    try:
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(_PROBE_TIMEOUT)
            sock.connect(target)
            sock.send(b"")
            sock.recv(1)
    except ConnectionRefusedError:
        return "nothing listens on that port"
    except OSError as exc:
        if exc.errno == errno.ECONNREFUSED:
            return "nothing listens on that port"
    return None


def _is_loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip in {"::1", "localhost"}


_reported_lock = threading.Lock()
_reported = False
_probe_due = False


def report_once(findings: list[Finding]) -> None:
    """Give each finding as a `SecEventsWarning`, once per process per finding."""
    level = caller_stacklevel() + 1  # the application's line (its SecurityEvents(app), its server's start)
    for finding in findings:
        # The missing key shares its flag with configure()'s own warning: said once, whoever says it first.
        key = "unkeyed-hash" if finding.id == "hash_key.missing" else f"finding:{finding.id}"
        warn_once(key, finding.message, stacklevel=level)


def report_startup_findings(*, behind_proxy: str | None = None) -> None:
    """At an integration's start-up: the findings, once per process; the agent probe is left for the first
    request (`start_due_probe`). Never raises."""
    global _reported, _probe_due  # noqa: PLW0603 - once per process
    with _reported_lock:
        if _reported:
            return
        _reported = True
    try:
        report_once(config_findings(behind_proxy=behind_proxy, probe=False))
        _probe_due = True
    except Exception:  # noqa: BLE001, S110 - telling the user must never break the app's start-up
        pass


def start_due_probe() -> None:
    """At the first request a middleware handles: the agent probe that start-up left, in a thread so that
    the request never waits on it. Never raises.

    Not at start-up: a server that loads the app and then forks its workers in C (uWSGI without
    `--lazy-apps`) does not wait for the master's threads, and a worker forked while one of them holds the
    GIL waits for it forever. The first request runs in the process that serves it.
    """
    global _probe_due  # noqa: PLW0603 - once per process
    if not _probe_due:
        return
    _probe_due = False
    try:
        threading.Thread(target=_probe_later, name="secevents-doctor", daemon=True).start()
    except Exception:  # noqa: BLE001, S110 - see report_startup_findings
        pass


def _probe_later() -> None:
    try:
        report_once([f for f in config_findings() if f.id == "metrics.unreachable"])
    except Exception:  # noqa: BLE001, S110 - see report_startup_findings
        pass


def _reset() -> None:
    """Forget that the start-up findings were given (tests only)."""
    global _reported, _probe_due  # noqa: PLW0603
    with _reported_lock:
        _reported = _probe_due = False
