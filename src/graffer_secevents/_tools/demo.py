"""`secevents demo`: an attack scenario driven over HTTP through the example Flask shop.

`examples/flask_app.py` is started on a real server on 127.0.0.1 (an ephemeral port, in a background thread)
and a scripted set of clients talks to it: normal logins, a brute force on one account, a credential-stuffing
burst from one IP, a password reset, an access denied and an admin action. It ends by replaying the records
through the library's detection rules (`graffer_secevents.detect`) and printing the signals they raised: the
attacks raise them, the normal traffic does not. The demo itself plays the reverse
proxy in front of the shop: it appends each client's address to `X-Forwarded-For` and 127.0.0.1 is the one
trusted proxy, so the records show the true client IPs, and the attacker's forged `X-Forwarded-For` never
wins. The records the shop writes go to stdout, one readable line each (`--json`: the JSON lines
themselves); the steps, a summary of the metric counts and the signals go to stderr, after every record
has been delivered (`flush()`).

Each part of the story is one function in `SCENARIO` (over HTTP) and `SCENARIO_IN_PROCESS` (direct calls);
a new attack is one more function in each.

The wheel carries the example apps (`examples_path`), so an installed package runs the same scenario as a
checkout. Without Flask and Flask-Login the same story runs as direct API calls instead, and says what to
install for the HTTP version.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from http.cookiejar import CookieJar
from types import ModuleType
from typing import IO, Any

import orjson

from graffer_secevents import _api as secevents
from graffer_secevents._config import Config, configure
from graffer_secevents._console import ConsoleStream, colour_wanted
from graffer_secevents._delivery import flush
from graffer_secevents._metrics import MemoryMetrics
from graffer_secevents._types import User

from .demo_token_api import run_token_api_demo, serving
from .examples_path import example_path

__all__ = ["run_demo"]

_EXAMPLE = example_path("flask_app.py")
_TRUSTED_PROXY = ["127.0.0.1/32", "::1/128"]
_SERVICE = "demo-shop"
_ENV = "demo"


def run_demo(out: IO[str] | None = None, summary: IO[str] | None = None, *, raw: bool = False) -> int:
    """Run the scenario, then print the signals the rules raise on its records; return the record count.

    `raw`: write the JSON lines themselves to `out` rather than one readable line per record.
    """
    out_stream: IO[str] = out if out is not None else sys.stdout
    summary_stream: IO[str] = summary if summary is not None else sys.stderr
    shown: IO[str] | ConsoleStream = (
        out_stream if raw else ConsoleStream(out_stream, colour=colour_wanted(out_stream))
    )
    counted = _LineCounter(shown)
    cfg = configure(
        reset=True,  # the demo's own settings, not whatever an earlier configure() left
        service=_SERVICE,
        env=_ENV,
        version="1.0.0",
        output=counted,
        metrics="memory",
        hash_key="demo-only-key-never-in-production",
        trusted_proxies=_TRUSTED_PROXY,
        delivery="queue",  # as in production: the writer thread delivers, and the summary waits for it
    )

    def step(title: str) -> None:
        summary_stream.write(f"# {title}\n")
        summary_stream.flush()

    try:
        example = _load_example()
    except ImportError as exc:
        step(f'the HTTP demo needs Flask and Flask-Login ({exc}): pip install "graffer-secevents[flask]"')
        step("calling the API directly instead")
        _scenario_in_process(step)
    else:
        _scenario_over_http(example, step)
        run_token_api_demo(step)  # examples/django_app's simplejwt endpoint (_tools/demo_token_api.py)
    if not flush(timeout=30):
        step("some records were not delivered in time (secevents.dropped counts them)")
    _summarise(cfg, step, summary_stream)
    _print_signals(counted.records(), step, summary_stream)
    return counted.lines


class _LineCounter:
    """Passes records through to `out` and counts them."""

    def __init__(self, out: IO[str] | ConsoleStream) -> None:
        self._out = out
        self.lines = 0
        self._written: list[str] = []
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self.lines += text.count("\n")
            self._written.append(text)
        return self._out.write(text)

    def records(self) -> list[dict[str, Any]]:
        """The records written so far, parsed."""
        with self._lock:
            text = "".join(self._written)
        return [orjson.loads(line) for line in text.splitlines() if line.strip()]

    def flush(self) -> None:
        self._out.flush()


def _load_example() -> ModuleType:
    if not _EXAMPLE.is_file():
        raise ImportError("examples/flask_app.py not found")
    name = "secevents_demo_flask_app"
    spec = importlib.util.spec_from_file_location(name, _EXAMPLE)
    if spec is None or spec.loader is None:
        raise ImportError("cannot load examples/flask_app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # Flask finds the app's root path through sys.modules
    try:
        spec.loader.exec_module(module)
    except ImportError:
        del sys.modules[name]
        raise
    return module


# --- over HTTP ---------------------------------------------------------------------------------------------


class _Client:
    """One person (or bot) at one address, with its own cookies, behind the demo's reverse proxy."""

    def __init__(self, base: str, ip: str, agent: str, forged: str | None = None) -> None:
        self.base = base
        self.ip = ip
        self.agent = agent
        self.forged = forged  # what the client itself puts in X-Forwarded-For, hoping to be believed
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(CookieJar())
        )

    def call(self, method: str, path: str, form: dict[str, str] | None = None) -> int:
        # The proxy appends the address it saw; a client-written value stays on the left.
        forwarded = f"{self.forged}, {self.ip}" if self.forged else self.ip
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1
            self.base + path,
            data=data,
            method=method,
            headers={"X-Forwarded-For": forwarded, "User-Agent": self.agent},
        )
        try:
            with self._opener.open(request, timeout=10) as response:
                status: int = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
        return status

    def login(self, email: str, password: str) -> int:
        return self.call("POST", "/login", {"username": email, "password": password})


def _scenario_over_http(example: ModuleType, step: Callable[[str], None]) -> None:
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log(self, type: str, message: str, *args: Any) -> None:
            return None

    server = make_server("127.0.0.1", 0, example.create_app(), threaded=True, request_handler=QuietHandler)
    with serving(server) as base:
        step(f"examples/flask_app.py is serving on {base}; this demo is its reverse proxy")
        _drive(base, step)


BROWSER = "Mozilla/5.0 (X11; Linux x86_64) demo"
BRUTE_FORCE_ATTEMPTS = 10
"""The default brute-force rule fires at 10 failures on one account in 15 minutes."""
STUFFED_ACCOUNTS = 12
"""The default credential-stuffing rule fires at 10 distinct failing accounts from one IP."""


class _Cast:
    """The people of the story, created as the scenario needs them (one client per person and address)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self._clients: dict[str, _Client] = {}

    def client(self, name: str, ip: str, agent: str = BROWSER, forged: str | None = None) -> _Client:
        if name not in self._clients:
            self._clients[name] = _Client(self.base, ip, agent, forged)
        return self._clients[name]


def _normal_logins(cast: _Cast) -> None:
    """normal logins: ada signs in, looks at her account and signs out; grace signs in"""
    ada = cast.client("ada", "198.51.100.10")
    ada.login("ada@example.com", "correct horse battery staple")
    ada.call("GET", "/me")
    ada.call("POST", "/logout")
    cast.client("grace", "2001:db8:85a3::8a2e:370:7334").login("grace@example.com", "hopper-1906")


def _brute_force(cast: _Cast) -> None:
    """brute force: one account, many passwords, one IP (which forges X-Forwarded-For: 10.1.2.3)"""
    attacker = cast.client("attacker", "203.0.113.66", "python-requests/2.32", forged="10.1.2.3")
    for attempt in range(BRUTE_FORCE_ATTEMPTS):
        attacker.login("ada@example.com", f"guess-{attempt}")


def _credential_stuffing(cast: _Cast) -> None:
    """credential stuffing: one IP, many accounts, most unknown"""
    stuffer = cast.client("stuffer", "192.0.2.200", "curl/8.5")
    for n in range(STUFFED_ACCOUNTS):
        email = "grace@example.com" if n == 4 else f"user{n}@example.org"
        stuffer.login(email, "Summer2026!")


def _password_reset(cast: _Cast) -> None:
    """password reset"""
    cast.client("ada, later", "198.51.100.10").call(
        "POST", "/password-reset", {"username": "ada@example.com"}
    )


def _access_denied(cast: _Cast) -> None:
    """access denied: grace opens the admin page"""
    cast.client("grace", "2001:db8:85a3::8a2e:370:7334").call("GET", "/admin/users")


def _admin_action(cast: _Cast) -> None:
    """admin action: root disables grace's account"""
    root = cast.client("root", "198.51.100.1")
    root.login("root@example.com", "root-admin-pass")
    root.call("POST", "/admin/users/1002/disable")


SCENARIO: tuple[Callable[[_Cast], None], ...] = (
    _normal_logins,
    _brute_force,
    _credential_stuffing,
    _password_reset,
    _access_denied,
    _admin_action,
)
"""The story over HTTP, in order; each step's docstring is its title."""

ATTACKERS = {"ip": ("203.0.113.66", "192.0.2.200"), "account": ("1001",)}
"""Who the story's attacks come from and whom they target: every signal must be about one of these."""


def _drive(base: str, step: Callable[[str], None]) -> None:
    cast = _Cast(base)
    for part in SCENARIO:
        step((part.__doc__ or part.__name__).strip())
        part(cast)


# --- without the example: the same story as direct calls --------------------------------------------------

_ADA = User(id=1001, login="ada@example.com", email="ada@example.com")
_GRACE = User(id=1002, login="grace@example.com", email="grace@example.com")
_ROOT = User(id=1, login="root@example.com")


def _scenario_in_process(step: Callable[[str], None]) -> None:
    step("normal logins")
    secevents.log_login(_ADA, "success", "198.51.100.10")
    secevents.log_logout(_ADA, "198.51.100.10")
    secevents.log_login(_GRACE, "success", "2001:db8:85a3::8a2e:370:7334")

    step("brute force: one account, many passwords, one IP")
    for attempt in range(BRUTE_FORCE_ATTEMPTS):
        reason = "account_locked" if attempt >= 5 else "invalid_credentials"
        secevents.log_login(_ADA, "failure", "203.0.113.66", login=_ADA.login, exists=True, reason=reason)
        if attempt == 4:
            secevents.log_account_locked(_ADA, "203.0.113.66", reason="maxretries")

    step("credential stuffing: one IP, many accounts, most unknown")
    for n in range(STUFFED_ACCOUNTS):
        exists = n == 4
        login = "grace@example.com" if exists else f"user{n}@example.org"
        reason = "invalid_credentials" if exists else "unknown_user"
        account = _GRACE if exists else None  # an existing account's failure names it
        secevents.log_login(account, "failure", "192.0.2.200", login=login, exists=exists, reason=reason)

    step("password reset")
    secevents.log_password_reset(None, "198.51.100.10", login=_ADA.login, exists=True)

    step("access denied")
    secevents.log_access_denied(_GRACE, "/admin/users", "2001:db8:85a3::8a2e:370:7334")

    step("admin action")
    secevents.log_login(_ROOT, "success", "198.51.100.1")
    secevents.log_admin_action(_ROOT, "disable_user", "198.51.100.1", resource="/users/1002")


def _summarise(cfg: Config, step: Callable[[str], None], summary: IO[str]) -> None:
    if not isinstance(cfg.metrics, MemoryMetrics):
        return
    totals: Counter[str] = Counter()
    for point in cfg.metrics.points:
        if point.name == "secevents.login.attempts":
            totals[",".join(point.tags)] += point.value
    step("secevents.login.attempts by tags")
    for tags, value in sorted(totals.items()):
        summary.write(f"#   {value:3d}  {tags}\n")


def _print_signals(records: list[dict[str, Any]], step: Callable[[str], None], summary: IO[str]) -> None:
    from .detect.engine import evaluate
    from .rules import build_rules
    from .terminal import colour_on, signal_table_text, terminal_width

    signals = evaluate(build_rules(service=_SERVICE, env=_ENV), records)
    step(f"signals the detection rules raise on these {len(records)} records (secevents detect)")
    table = signal_table_text(signals, width=terminal_width(), colour=colour_on(summary))
    summary.write(table + "\n")
