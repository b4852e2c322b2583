"""The documentation tells the truth: generated pages are current, reference pages cover the code, every
Python example runs, every example record validates, and the site builds with ``mkdocs build --strict``."""

from __future__ import annotations

import inspect
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

import graffer_secevents as api
from graffer_secevents import CATALOG
from graffer_secevents._catalog import CATEGORIES
from graffer_secevents._metrics import DROP_REASONS, LOGIN_FAILURE_REASONS, METRIC_NAMES, TAG_KEYS
from graffer_secevents._tools.catalog_doc import HELPERS, render_markdown
from graffer_secevents._tools.cli import ValidationReport, validate_stream
from graffer_secevents._tools.monitors import build_monitors
from graffer_secevents._tools.schema import check_record, json_schema
from graffer_secevents.testing import Capture

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SRC = ROOT / "src" / "graffer_secevents"

# The pages whose examples this suite runs (the other pages' authors test their own).
RUNNABLE_PAGES = [
    "README.md",
    "docs/index.md",
    "docs/quickstart.md",
    "docs/record.md",
    "docs/privacy.md",
    "docs/metrics.md",
    "docs/configuration.md",
    "docs/migration.md",
]
_FENCE = re.compile(
    r"^(?P<marker><!-- docs-test: compile-only[^>]*-->\n)?```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.M | re.S
)


def read(page: str) -> str:
    return (ROOT / page).read_text(encoding="utf-8")


def blocks(page: str, lang: str) -> list[tuple[str, bool]]:
    """(code, compile_only) of each fenced block of ``lang`` in ``page``, in order."""
    return [
        (m.group("body"), m.group("marker") is not None)
        for m in _FENCE.finditer(read(page))
        if m.group("lang") == lang
    ]


# --- generated and reference pages ---------------------------------------------------------------------------


def test_catalog_page_matches_the_code() -> None:
    assert (DOCS / "catalog.md").read_text(encoding="utf-8") == render_markdown(), (
        "docs/catalog.md is stale: run `make catalog-doc`"
    )


def test_catalog_page_has_a_section_for_every_event_type() -> None:
    page = (DOCS / "catalog.md").read_text(encoding="utf-8")
    headings = re.findall(r"^### (\S+)$", page, re.M)
    assert headings == [
        t for category in CATEGORIES for t, spec in CATALOG.items() if spec.category == category
    ]
    assert set(headings) == set(CATALOG)


def test_helpers_table_says_which_types_each_helper_really_writes(security_events: Capture) -> None:
    """Call every typed helper in every mode and compare with the docs' helper table."""
    calls: dict[str, list[tuple[tuple[Any, ...], dict[str, Any]]]] = {
        "log_login": [
            ((1, "success"), {}),
            ((1, "success"), {"retries": 2}),
            ((None, "failure"), {"login": "x"}),
        ],
        "log_logout": [((1,), {})],
        "log_signup": [((1,), {})],
        "log_password_change": [((1,), {}), ((1, "failure"), {})],
        "log_password_reset": [((1,), {}), ((1,), {"stage": "complete"})],
        "log_mfa_challenge": [((1, "success"), {})],
        "log_account_locked": [((1,), {})],
        "log_token_created": [((1,), {})],
        "log_token_revoked": [((1,), {})],
        "log_access_denied": [((1, "/admin"), {})],
        "log_privilege_change": [((1, 2), {})],
        "log_admin_action": [((1, "disable_user"), {})],
        "log_user_created": [((1, 2), {})],
        "log_user_deleted": [((1, 2), {})],
        "log_rate_limited": [((1,), {})],
        "log_input_validation_failed": [((1,), {})],
        "log_sensitive_access": [((1, "t"), {"action": a}) for a in ("create", "read", "update", "delete")],
        "log_data_export": [((1, "t"), {})],
        "log_group_membership": [((1, 2, "g"), {}), ((1, 2, "g"), {"action": "remove"})],
        "log_account_status": [((1, 2), {"enabled": True}), ((1, 2), {"enabled": False})],
        "log_user_updated": [((1, 2), {})],
        "log_mfa_change": [((1,), {"enabled": True}), ((1,), {"enabled": False})],
        "log_impersonation": [((1, 2), {}), ((1, 2), {"stage": "end"})],
    }
    public_helpers = {name for name in api.__all__ if name.startswith("log_")}
    assert set(HELPERS) == set(calls) == public_helpers
    for helper, invocations in calls.items():
        security_events.clear()
        for args, kwargs in invocations:
            getattr(api, helper)(*args, **kwargs)
        written = tuple(dict.fromkeys(r["evt"]["type"] for r in security_events.records))
        assert written == HELPERS[helper], helper


def test_configuration_page_documents_every_configure_argument() -> None:
    page = read("docs/configuration.md")
    documented = set(re.findall(r"^### (.+)$", page, re.M))
    documented_names = {name for heading in documented for name in re.findall(r"`(\w+)`", heading)}
    parameters = {
        name
        for name, p in inspect.signature(api.configure).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY  # not **unknown, which only exists to name typos
    }
    assert parameters - documented_names == set(), "add a `### `name`` section to docs/configuration.md"


def test_configuration_page_documents_every_environment_variable() -> None:
    page = read("docs/configuration.md")
    # Variables the core reads (integrations' framework settings, such as Django's, live on their pages).
    ours = {
        v
        for path in SRC.glob("*.py")
        for v in re.findall(r"[\"'](SECEVENTS_[A-Z0-9_]+)[\"']", path.read_text())
    }
    datadog = {
        v
        for name in ("_config.py", "_metrics/dogstatsd.py", "_metrics/backends.py")
        for v in re.findall(r"[\"'](DD_[A-Z0-9_]+)[\"']", (SRC / name).read_text())
    }
    assert {"SECEVENTS_HASH_KEY", "DD_DOGSTATSD_URL"} <= ours | datadog  # the scan itself works
    missing = sorted(v for v in ours | datadog if f"`{v}`" not in page)
    assert missing == [], "document these in docs/configuration.md"


def _schema_paths(schema: dict[str, Any]) -> set[str]:
    defs = schema["$defs"]
    paths: set[str] = set()

    def walk(node: dict[str, Any], prefix: str) -> None:
        if "$ref" in node:
            walk(defs[node["$ref"].rsplit("/", 1)[-1]], prefix)
        elif "anyOf" in node:
            for option in node["anyOf"]:
                if option.get("type") != "null":
                    walk(option, prefix)
        elif "properties" in node:
            for key, child in node["properties"].items():
                walk(child, f"{prefix}.{key}" if prefix else key)
        else:
            paths.add(prefix)

    walk(schema, "")
    return paths


def test_record_page_documents_every_key_of_the_schema() -> None:
    page = read("docs/record.md")
    paths = _schema_paths(json_schema())
    assert {"usr.id", "network.client.ip", "secevents.schema", "http.url_details.path"} <= paths
    missing = sorted(p for p in paths if f"`{p}`" not in page)
    assert missing == [], "document these keys in docs/record.md"


def test_metrics_page_shows_the_generated_queries_metrics_and_tags() -> None:
    page = read("docs/metrics.md")
    for monitor in build_monitors("auth-api", env="prod"):
        assert monitor["query"] in page, f"docs/metrics.md shows an outdated query for {monitor['name']}"
    for name in METRIC_NAMES | TAG_KEYS | LOGIN_FAILURE_REASONS | DROP_REASONS:
        assert re.search(rf"`[^`]*\b{re.escape(name)}\b[^`]*`", page), name


def test_readme_first_screen_shows_the_two_commands_then_a_five_line_example() -> None:
    first_screen = read("README.md").split("\n## ", 1)[0]
    assert first_screen.index("make demo") < first_screen.index("make test") < first_screen.index("```python")
    code, _ = blocks("README.md", "python")[0]
    assert len(code.splitlines()) <= 5


# --- examples run ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", RUNNABLE_PAGES)
def test_python_examples_run_and_write_valid_records(page: str, tmp_path: Path) -> None:
    """The page's Python blocks run in order, as a reader would paste them, in a fresh interpreter; blocks
    marked compile-only (framework settings, fragments) are compiled. What they write must validate."""
    runnable: list[str] = []
    for number, (code, compile_only) in enumerate(blocks(page, "python"), 1):
        compile(code, f"{page}, python block {number}", "exec")
        if not compile_only:
            runnable.append(code)
    if not runnable:
        return  # only compile-only blocks (framework settings, fragments): compiling them was the check
    script = tmp_path / "example.py"
    script.write_text("\n".join(runnable), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    report = ValidationReport()
    validate_stream(io.BytesIO(result.stdout), page, report)
    assert report.problems == []
    assert report.invalid == 0
    if page in {"README.md", "docs/index.md", "docs/quickstart.md"}:
        assert report.valid >= 1, result.stdout.decode()


def _compile_only_blocks_are_marked(page: str) -> list[str]:
    return [code for code, compile_only in blocks(page, "python") if compile_only]


def test_compile_only_examples_are_few_and_named() -> None:
    marked = {page: _compile_only_blocks_are_marked(page) for page in RUNNABLE_PAGES}
    assert all(len(codes) <= 3 for codes in marked.values())
    assert marked["README.md"] == []
    assert marked["docs/quickstart.md"] == []


@pytest.mark.parametrize("page", RUNNABLE_PAGES)
def test_json_examples_parse_and_example_records_validate(page: str) -> None:
    for number, (text, _) in enumerate(blocks(page, "json"), 1):
        record = orjson.loads(text)
        if isinstance(record, dict) and "logger" in record:
            assert check_record(record) == [], f"{page}, json block {number}"


# --- the site builds ------------------------------------------------------------------------------------------


def _nav_pages(nav: list[Any]) -> list[str]:
    pages: list[str] = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages.extend(_nav_pages(value) if isinstance(value, list) else [value])
    return pages


def test_docs_build_with_mkdocs_strict(tmp_path: Path) -> None:
    """``mkdocs build --strict`` (as ``make check`` runs it) on a copy of the site.

    Pages other sessions are still writing get a one-line stand-in in the copy only, so this test checks
    everything that exists today: links, anchors, the nav, and that no page is left out of it.
    """
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(DOCS, tmp_path / "docs")
    for page in _nav_pages(config["nav"]):
        stand_in = tmp_path / "docs" / page
        if not stand_in.exists():
            stand_in.parent.mkdir(parents=True, exist_ok=True)
            stand_in.write_text(f"# {page}\n\nNot written yet.\n", encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(tmp_path / "mkdocs.yml"),
            "-d",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # Material's end-of-life banner, not a build warning
    )
    assert result.returncode == 0, result.stderr
    assert not re.search(r"^(WARNING|ERROR)\b", result.stderr, re.M), result.stderr
    assert (tmp_path / "site" / "catalog" / "index.html").exists()


def test_cli_page_and_readme_name_every_command() -> None:
    """Every `secevents` subcommand is in the command table of docs/cli.md and in the README's list (both
    lacked `verify`)."""
    from graffer_secevents._tools.cli import build_parser

    commands = set(build_parser().parse_args(["catalog"]).command_parsers)
    assert {"validate", "detect", "verify", "doctor"} <= commands
    table = set(re.findall(r"^\| `secevents (\w+)", read("docs/cli.md"), re.M))
    table |= set(re.findall(r"^\| `secevents \w+`, `secevents (\w+)`", read("docs/cli.md"), re.M))
    readme = set(re.findall(r"^secevents (\w+)", read("README.md"), re.M))
    assert commands - table == set(), "missing from docs/cli.md"
    assert commands - readme == set(), "missing from the README"


def test_quickstart_names_exactly_the_core_dependencies() -> None:
    """The quickstart's "the core needs only ..." sentence lists what `pip install graffer-secevents` really
    installs (it left out `rich`)."""
    import tomllib

    from packaging.requirements import Requirement

    pyproject = tomllib.loads(read("pyproject.toml"))
    core = {Requirement(r).name for r in pyproject["project"]["dependencies"]}
    sentence = re.search(r"The core needs\s+only (.*?)\.\n", read("docs/quickstart.md"), re.S)
    assert sentence is not None
    named = set(re.findall(r"`([\w.-]+)`", sentence.group(1)))
    assert named == core


@pytest.mark.parametrize(("page", "nth"), [("README.md", 2), ("docs/index.md", 1), ("docs/quickstart.md", 1)])
def test_the_first_record_shown_has_the_keys_the_script_writes(page: str, nth: int, tmp_path: Path) -> None:
    """The record a newcomer is shown ("each call writes one line like this") has exactly the keys the page's
    script really writes for that call: the pages showed `secevents` without `writer` and `seq`."""

    def paths(value: object, prefix: str = "") -> set[str]:
        if not isinstance(value, dict):
            return {prefix}
        return {p for k, v in value.items() for p in paths(v, f"{prefix}.{k}" if prefix else str(k))}

    [(shown_text, _), *_] = blocks(page, "json")
    shown = orjson.loads(shown_text.replace("…", ""))
    script = tmp_path / "app.py"
    script.write_text("\n".join(code for code, compile_only in blocks(page, "python") if not compile_only))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECEVENTS_", "DD_", "PYTEST"))}
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, cwd=tmp_path, env=env, timeout=120, check=True
    )
    records = [orjson.loads(line) for line in result.stdout.splitlines() if line.startswith(b"{")]
    written = records[nth - 1]
    assert written["evt"]["type"] == shown["evt"]["type"]
    assert paths(shown) == paths(written), (shown, written)
    assert records[-1]["secevents"].get("end") is True  # the end record the quickstart now mentions
