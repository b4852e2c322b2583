"""Each framework page's app runs as written: extracted from the Markdown, served by the server the page names
on 127.0.0.1 in a fresh process with no SECEVENTS_*/DD_* variables (as a newcomer would run it), it records
a wrong password, an unknown user and a login with the events the page describes, and replaying them
through the default detection rules raises `brute_force_success` for the account. The page's extra alone
installs every package the app imports and the server it runs."""

from __future__ import annotations

import ast
import http.cookiejar
import importlib.metadata
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from packaging.requirements import Requirement

from graffer_secevents._tools.schema import check_record
from graffer_secevents.detect import default_rules, evaluate

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
APP_BLOCK = re.compile(
    r"<!-- docs-test: (?P<kind>app \((?P<command>[^)]*)\)|django-settings) -->\n```python\n(?P<code>.*?)^```$",
    re.M | re.S,
)
WRONG_PASSWORDS = 5  # brute_force_success: 5 failures and a success for one usr.id


def page_block(page: str) -> tuple[str, str]:
    """(the command the page runs it with, the app's code) of the page's app block."""
    [match] = APP_BLOCK.finditer((ROOT / page).read_text(encoding="utf-8"))
    return match.group("command") or "", match.group("code")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def newcomer_env() -> dict[str, str]:
    """The environment of a shell that never heard of the library: no SECEVENTS_*, DD_* or test settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECEVENTS_", "DD_", "PYTEST", "COV"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["SECEVENTS_METRICS"] = "none"  # no DogStatsD agent here: nothing to send metrics to
    return env


@dataclass
class Server:
    """A server process on 127.0.0.1 whose stdout lines are collected as they arrive."""

    process: subprocess.Popen[bytes]
    base: str
    lines: list[bytes] = field(default_factory=list[bytes])

    def records(self) -> list[dict[str, Any]]:
        found = []
        for line in list(self.lines):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # the server's own output (Django's "Starting development server...")
            if isinstance(record, dict) and "evt" in record:
                found.append(record)
        return found

    def wait_for(self, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.records()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.records()


def serve(argv: list[str], cwd: Path, port: int) -> Iterator[Server]:
    process = subprocess.Popen(
        argv, cwd=cwd, env=newcomer_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    server = Server(process, f"http://127.0.0.1:{port}")
    assert process.stdout is not None and process.stderr is not None
    errors: list[bytes] = []
    readers = [
        threading.Thread(target=lambda: server.lines.extend(iter(process.stdout.readline, b"")), daemon=True),  # type: ignore[union-attr]
        threading.Thread(target=lambda: errors.extend(iter(process.stderr.readline, b"")), daemon=True),  # type: ignore[union-attr]
    ]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"{argv} did not start: {b''.join(errors).decode(errors='replace')[-3000:]}")
            time.sleep(0.1)
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for reader in readers:
            reader.join(timeout=10)
        process.stdout.close()
        process.stderr.close()


def opener() -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(jar)
    )


def call(
    open_: urllib.request.OpenerDirector, url: str, data: bytes | None = None, **headers: str
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with open_.open(request, timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
        exc.close()
        return exc.code, body


# --- how each page's app is logged into --------------------------------------------------------------------


def form_login(base: str) -> Callable[[str, str], int]:
    def login(username: str, password: str) -> int:
        data = urllib.parse.urlencode({"username": username, "password": password}).encode()
        return call(opener(), base + "/login", data)[0]

    return login


def json_login(base: str) -> Callable[[str, str], int]:
    def login(username: str, password: str) -> int:
        data = json.dumps({"username": username, "password": password}).encode()
        return call(opener(), base + "/login", data, **{"Content-Type": "application/json"})[0]

    return login


def django_admin_login(base: str) -> Callable[[str, str], int]:
    def login(username: str, password: str) -> int:
        browser = opener()
        status, page = call(browser, base + "/admin/login/?next=/admin/")
        assert status == 200, page[:500]
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token is not None
        form = {
            "username": username,
            "password": password,
            "next": "/admin/",
            "csrfmiddlewaretoken": token.group(1).decode(),
        }
        status, _ = call(
            browser,
            base + "/admin/login/?next=/admin/",
            urllib.parse.urlencode(form).encode(),
            Referer=base + "/admin/login/",
        )
        return status

    return login


# --- the pages -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    path: str
    username: str  # the page's account
    password: str
    account_id: str  # its usr.id
    login: Callable[[str], Callable[[str, str], int]]


PAGES = {
    "flask": Page(
        "docs/integrations/flask.md", "ada@example.com", "correct horse battery staple", "1001", form_login
    ),
    "fastapi": Page(
        "docs/integrations/fastapi.md", "ada@example.com", "correct horse battery staple", "1001", json_login
    ),
    "django": Page("docs/integrations/django.md", "ada", "a-password-for-ada-42", "1", django_admin_login),
}


def start_flask_or_fastapi(page: Page, tmp: Path) -> Iterator[Server]:
    command, code = page_block(page.path)
    (tmp / "app.py").write_text(code)
    argv = shlex.split(command)
    port = free_port()
    argv = [str(BIN / argv[0]), *argv[1:], "--host", "127.0.0.1", "--port", str(port)]
    yield from serve(argv, tmp, port)


def start_django(page: Page, tmp: Path) -> Iterator[Server]:
    """The page's steps: startproject, its settings, migrate, createsuperuser, runserver."""
    _, settings = page_block(page.path)
    env = newcomer_env()

    def run(*args: str, **extra: str) -> None:
        subprocess.run([*args], cwd=tmp, env={**env, **extra}, check=True, capture_output=True, timeout=120)

    run(str(BIN / "django-admin"), "startproject", "mysite", ".")
    with (tmp / "mysite" / "settings.py").open("a") as file:
        file.write("\n" + settings)
    manage = [sys.executable, "manage.py"]
    run(*manage, "migrate")
    run(
        *manage,
        "createsuperuser",
        "--noinput",
        "--username",
        page.username,
        "--email",
        "ada@example.com",
        DJANGO_SUPERUSER_PASSWORD=page.password,
    )
    port = free_port()
    yield from serve([*manage, "runserver", f"127.0.0.1:{port}", "--noreload"], tmp, port)


@pytest.fixture(scope="module", params=sorted(PAGES))
def page_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Page, list[dict[str, Any]]]]:
    """The page's app, served, after a wrong password (5 times), an unknown user and the right password."""
    page = PAGES[request.param]
    tmp = tmp_path_factory.mktemp(request.param)
    start = start_django if request.param == "django" else start_flask_or_fastapi
    for server in start(page, tmp):
        login = page.login(server.base)
        statuses = [login(page.username, f"wrong-{n}") for n in range(WRONG_PASSWORDS)]
        statuses.append(login("nobody@example.org", "whatever"))
        statuses.append(login(page.username, page.password))
        records = server.wait_for(WRONG_PASSWORDS + 2)
        assert len(records) == WRONG_PASSWORDS + 2, (statuses, server.lines)
        yield page, records


def test_a_wrong_password_names_the_existing_account(page_run: tuple[Page, list[dict[str, Any]]]) -> None:
    page, records = page_run
    for record in records[:WRONG_PASSWORDS]:
        assert record["evt"]["type"] == "authn_login_fail"
        assert record["evt"]["reason"] == "invalid_credentials"
        assert record["usr"]["exists"] is True
        assert record["usr"]["id"] == page.account_id  # never the hashed login: the account's own id
        assert record["network"]["client"]["ip"] == "127.0.0.1"


def test_an_unknown_user_is_a_failure_for_an_account_that_does_not_exist(
    page_run: tuple[Page, list[dict[str, Any]]],
) -> None:
    _, records = page_run
    unknown = records[WRONG_PASSWORDS]
    assert unknown["evt"]["type"] == "authn_login_fail" and unknown["usr"]["exists"] is False
    assert unknown["evt"]["reason"] == "unknown_user"
    assert unknown["usr"]["id"].startswith("anon_")  # the hashed login
    assert "nobody@example.org" not in orjson.dumps(unknown).decode()


def test_the_login_is_a_success_for_the_account(page_run: tuple[Page, list[dict[str, Any]]]) -> None:
    page, records = page_run
    success = records[-1]
    assert success["evt"]["type"] == "authn_login_success"
    assert success["usr"]["id"] == page.account_id
    assert success["http"]["method"] == "POST" and len(success["http"]["request_id"]) == 32
    assert all(check_record(record) == [] for record in records)


def test_replaying_the_records_raises_brute_force_success_for_the_account(
    page_run: tuple[Page, list[dict[str, Any]]],
) -> None:
    page, records = page_run
    signals = evaluate(default_rules(), records)
    assert [s.group for s in signals if s.rule_id == "brute_force_success"] == [{"usr.id": page.account_id}]


# --- the page's extra installs everything it needs ----------------------------------------------------------

EXTRA = re.compile(r'pip install "graffer-secevents\[(?P<extra>[\w,-]+)\]"')
SERVERS = {"flask": "flask", "uvicorn": "uvicorn", "django-admin": "django", "python": None}


def _closure(requirements: list[str], extras: set[str]) -> set[str]:
    """The distributions `requirements` (of graffer-secevents with `extras`) install, recursively."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    top = True
    while todo:
        batch, todo = todo, []
        for req in batch:
            env = {"extra": ""}
            if top and req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in extras):
                continue
            if not top and req.marker is not None and not req.marker.evaluate(env):
                continue
            name = req.name.lower().replace("_", "-")
            if name in seen:
                continue
            seen.add(name)
            try:
                todo.extend(Requirement(r) for r in importlib.metadata.requires(req.name) or [])
            except importlib.metadata.PackageNotFoundError:
                pass
        top = False
    return seen


def _declared(extras: set[str]) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    direct = list(project["dependencies"])
    for extra in extras:
        direct += [
            r for r in project["optional-dependencies"][extra] if not r.startswith("graffer-secevents")
        ]
    return _closure(direct, set()) | {"graffer-secevents"}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_the_pages_extra_installs_what_its_app_imports_and_runs(name: str) -> None:
    page = PAGES[name]
    text = (ROOT / page.path).read_text(encoding="utf-8")
    extras = {e for m in EXTRA.finditer(text) for e in m.group("extra").split(",")}
    assert extras, f"{page.path} names no pip install line"
    installed = _declared(extras)
    command, code = page_block(page.path)
    modules = (
        {
            (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]  # type: ignore[union-attr]
            for node in ast.walk(ast.parse(code))
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        - set(sys.stdlib_module_names)
        - {"graffer_secevents"}
    )
    owners = importlib.metadata.packages_distributions()
    needed = {owners[m][0].lower().replace("_", "-") for m in modules}
    server = SERVERS[shlex.split(command)[0]] if command else "django"
    if server:
        needed.add(server)
    assert needed <= installed, (
        f"{page.path}: pip install [{','.join(sorted(extras))}] misses {needed - installed}"
    )


def test_the_failed_login_the_page_shows_is_the_one_it_writes(
    page_run: tuple[Page, list[dict[str, Any]]],
) -> None:
    """A failed-login record shown on the page has the user the served app really writes for the same case:
    the same `usr` keys, `usr.exists` and reason, and for an existing account its own id (the Django page
    showed the hashed login as `usr.id` for `ada`, which the library never writes)."""
    page, records = page_run
    text = (ROOT / page.path).read_text(encoding="utf-8")
    shown = [orjson.loads(m) for m in re.findall(r"^```json\n(.*?)^```$", text, re.M | re.S)]
    failures = [
        r for r in shown if isinstance(r, dict) and r.get("evt", {}).get("type") == "authn_login_fail"
    ]
    for example in failures:
        exists = example["usr"]["exists"]
        [real, *_] = [
            r for r in records if r["evt"]["type"] == "authn_login_fail" and r["usr"]["exists"] is exists
        ]
        assert set(example["usr"]) == set(real["usr"]), (example["usr"], real["usr"])
        assert example["evt"].get("reason") == real["evt"].get("reason")
        if exists:
            assert example["usr"]["id"] == real["usr"]["id"] == page.account_id


# --- every page's Python blocks: what they import is what the page tells to install ----------------------------

SNIPPET_PAGES = [
    "docs/integrations/task-queues.md",
    "docs/actors.md",
    "docs/integrations/auth-stacks.md",
    "docs/integrations/allauth.md",
    "docs/integrations/django.md",
    "docs/delivery.md",
    "docs/client-ip.md",
]
ANY_FENCE = re.compile(r"^(?P<indent> *)```python\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S)
PIP_INSTALL = re.compile(r"pip install (?P<args>[^`\n]+)")
SHORT_EXTRA = re.compile(r"`\[(?P<extra>[\w-]+)\]`")  # "`[rq]`, `[arq]`" after a first full pip install line


def python_snippets(page: str) -> list[str]:
    """The page's Python blocks, those nested in a list item (indented) included, dedented."""
    text = (ROOT / page).read_text(encoding="utf-8")
    return [textwrap.dedent(m.group("body")) for m in ANY_FENCE.finditer(text)]


@pytest.mark.parametrize("page", SNIPPET_PAGES)
def test_the_pages_snippets_import_only_what_the_page_installs(page: str) -> None:
    """A newcomer copies a block after running the page's `pip install` lines: every package it imports is
    installed by an extra the page names or is itself named in a `pip install` (the taskiq block imported
    `taskiq_redis`, which the `[taskiq]` extra does not install and the page never named)."""
    text = (ROOT / page).read_text(encoding="utf-8")
    extras: set[str] = set()
    named: set[str] = set()
    for match in PIP_INSTALL.finditer(text):
        for arg in shlex.split(match.group("args")):
            requirement = Requirement(arg)
            if requirement.name == "graffer-secevents":
                extras |= requirement.extras
            else:
                named |= _closure([arg], set())
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    extras |= {m.group("extra") for m in SHORT_EXTRA.finditer(text)} & set(declared)
    installed = _declared(extras) | named
    owners = importlib.metadata.packages_distributions()
    for number, code in enumerate(python_snippets(page), 1):
        tree = ast.parse(code, f"{page}, python block {number}")  # it compiles, as pasted
        modules = {
            (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]  # type: ignore[union-attr]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            and not (isinstance(node, ast.ImportFrom) and node.level)
            for alias in node.names
        } - set(sys.stdlib_module_names)
        needed = {owners[m][0].lower().replace("_", "-") for m in modules if m in owners}
        unknown = {m for m in modules if m not in owners}
        assert not unknown, f"{page}, python block {number} imports {unknown}, which no package provides"
        assert needed <= installed, (
            f"{page}, python block {number} imports {needed - installed}: the page's pip install lines "
            f"({sorted(extras)} and {sorted(named)}) do not install it"
        )
