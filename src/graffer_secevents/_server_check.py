"""What the server did to the client address before the library saw the request.

Two defaults change what `trusted_proxies` can do, and neither is visible in the request itself:

* **uvicorn** wraps the app in its `ProxyHeadersMiddleware` unless run with `--no-proxy-headers`: for a
  peer in `--forwarded-allow-ips` (127.0.0.1 by default) it replaces `scope["client"]` with an address from
  `X-Forwarded-For`. The library then sees that address as the peer; the real one is gone. A forged header
  from a loopback peer (a sidecar, a local proxy, `curl` on the host) becomes the client IP.
* **waitress** removes `X-Forwarded-For`, `Forwarded` and the other proxy headers from every request whose
  peer is not its own `trusted_proxy` (`clear_untrusted_proxy_headers`, on by default): behind a proxy the
  library has nothing to walk, and the proxy's address is the client IP.

At the first request a middleware handles, `check_server_once` walks the call stack below it (the server's
own frames, still there while the middleware runs) once per process, and says what it found, once, as a
`SecEventsWarning`. When the server rewrites the peer, the client-IP warning that forwarding headers were
ignored is not given: it would be false (the server applied them). Never raises.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any, Final

from ._errors import SecEventsWarning, mark_warned, warn_once

__all__ = ["check_server_once", "server_findings"]

_MAX_FRAMES: Final = 100
_checked = False
server_findings: dict[str, str] = {}
"""What was found, by finding id (`server.rewrites`, `server.strips`): for tests and `secevents doctor`."""

REWRITES: Final = (
    "graffer_secevents: {server} replaces the peer address with an address from X-Forwarded-For for peers it "
    "trusts ({trusted}) before this library sees the request, so for those requests the client IP is the one "
    "{server} chose and trusted_proxies cannot check it (a forged header from such a peer is believed). Let "
    "one component decide: {fix}. See the client IP documentation."
)
STRIPS: Final = (
    "graffer_secevents: waitress removes X-Forwarded-For and Forwarded from requests whose peer is not its "
    "own trusted_proxy (clear_untrusted_proxy_headers, on by default), so trusted_proxies has no header to "
    "read and the proxy's address is recorded as the client IP; run waitress with "
    "clear_untrusted_proxy_headers=False (waitress-serve --no-clear-untrusted-proxy-headers) and let this "
    "library resolve the address. See the client IP documentation."
)


def check_server_once() -> None:
    """Look at the server's frames below the caller, once per process (see the module docstring)."""
    global _checked  # noqa: PLW0603 - once per process; a race only means looking twice
    if _checked:
        return
    _checked = True
    try:
        _inspect(sys._getframe(1))
        from ._findings import start_due_probe  # the start-up's agent probe, left for the first request

        start_due_probe()
    except Exception:  # noqa: BLE001, S110 - this is advice; a failure must never reach the request
        pass


def _inspect(frame: FrameType | None) -> None:
    for _ in range(_MAX_FRAMES):
        if frame is None:
            return
        module = frame.f_globals.get("__name__")
        if module == "uvicorn.middleware.proxy_headers" and frame.f_code.co_name == "__call__":
            hosts = getattr(frame.f_locals.get("self"), "trusted_hosts", None)
            trusted = _uvicorn_trusted(hosts)
            if not trusted:  # --forwarded-allow-ips "": the middleware is there but trusts no peer
                return
            if _under_gunicorn(frame):
                # A gunicorn worker class runs uvicorn with gunicorn's settings: uvicorn's flag is not there.
                fix = (
                    "run gunicorn with --forwarded-allow-ips='' (or FORWARDED_ALLOW_IPS='') so that its "
                    "uvicorn worker trusts no peer, and set trusted_proxies, or keep uvicorn's and set "
                    "--forwarded-allow-ips to your proxy only"
                )
            else:
                fix = (
                    "run uvicorn with --no-proxy-headers (uvicorn.run(app, proxy_headers=False)) and set "
                    "trusted_proxies, or keep uvicorn's and set --forwarded-allow-ips to your proxy only"
                )
            _found(
                "server.rewrites",
                REWRITES.format(server="uvicorn", trusted=f"--forwarded-allow-ips {trusted}", fix=fix),
            )
            return
        if module == "waitress.proxy_headers" and frame.f_code.co_name == "translate_proxy_headers":
            local = frame.f_locals
            if local.get("trusted_proxy"):
                _found(
                    "server.rewrites",
                    REWRITES.format(
                        server="waitress",
                        trusted=f"trusted_proxy={local['trusted_proxy']}",
                        fix="drop waitress's trusted_proxy and set trusted_proxies here, or keep waitress's",
                    ),
                )
            elif local.get("clear_untrusted") and _library_trusts_proxies():
                _found("server.strips", STRIPS)
            return
        frame = frame.f_back


def _uvicorn_trusted(hosts: Any) -> str:
    """The peers uvicorn trusts, as its flag would list them; `""` when it trusts none."""
    if hosts is None:
        return "127.0.0.1"
    if getattr(hosts, "always_trust", False):
        return "*"
    literals = [str(h) for h in getattr(hosts, "trusted_literals", ()) or () if str(h).strip()]
    networks = [str(n) for n in getattr(hosts, "trusted_networks", ()) or ()]
    hosts_list = [str(h) for h in getattr(hosts, "trusted_hosts", ()) or ()]
    return ",".join(sorted({*literals, *networks, *hosts_list}))


def _under_gunicorn(frame: FrameType | None) -> bool:
    """Whether a gunicorn worker class (uvicorn's `uvicorn.workers` or the `uvicorn_worker` package) runs
    this process's server: its frames are below the event loop's."""
    for _ in range(_MAX_FRAMES):
        if frame is None:
            return False
        module = frame.f_globals.get("__name__") or ""
        if module.startswith(("uvicorn.workers", "uvicorn_worker", "gunicorn.")):
            return True
        frame = frame.f_back
    return False


def _library_trusts_proxies() -> bool:
    from ._config import get_config

    return get_config().trusted_proxies is not None


def _found(finding: str, message: str) -> None:
    server_findings[finding] = message
    if finding == "server.rewrites":
        mark_warned("ignored")  # "the header was ignored" would be false: the server applied it
    warn_once(f"finding:{finding}", message, category=SecEventsWarning, stacklevel=2)


def _reset() -> None:
    """Look again at the next request (tests only)."""
    global _checked  # noqa: PLW0603
    _checked = False
    server_findings.clear()
