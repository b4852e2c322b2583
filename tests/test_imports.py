"""What importing the package pulls in: `import graffer_secevents` in a fresh interpreter imports neither
pydantic (the slow validation path only) nor opentelemetry (only when OTel is used), no structlog (only
the structlog integration may need it), and neither the stdlib's logging nor socket (the per-event path
rarely needs them). The import graph's shape (no cycle, no tooling) is
tests/test_architecture.py's.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

PACKAGE = "graffer_secevents"


def imported_after(statement: str) -> set[str]:
    """Top-level package names present in `sys.modules` after `statement`, in a fresh interpreter."""
    code = f"import sys\n{statement}\nprint(' '.join(sorted({{m.partition('.')[0] for m in sys.modules}})))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(done.stdout.split())


@pytest.fixture(scope="module")
def after_import() -> set[str]:
    return imported_after(f"import {PACKAGE}")


@pytest.mark.parametrize("heavy", ["pydantic", "opentelemetry"])
def test_importing_the_package_does_not_import(after_import: set[str], heavy: str) -> None:
    assert PACKAGE in after_import  # the probe itself works
    assert heavy not in after_import


def test_importing_the_package_does_not_import_structlog(after_import: set[str]) -> None:
    assert "structlog" not in after_import


@pytest.mark.parametrize("stdlib", ["logging", "socket"])
def test_importing_the_package_does_not_import_the_stdlib_modules_it_defers(
    after_import: set[str], stdlib: str
) -> None:
    """logging (~10 ms with traceback and tokenize) is imported by the logging output and the rare debug
    messages; socket (~3.5 ms) is replaced by `_socket`, which has the same `inet_pton`."""
    assert stdlib not in imported_after("pass")  # the bare interpreter does not import it either
    assert stdlib not in after_import


def test_a_well_typed_event_needs_no_pydantic() -> None:
    modules = imported_after(
        f"import io, {PACKAGE} as s\ns.configure(output=io.StringIO(), metrics='none')\n"
        "s.log_login('42', 'failure', reason='invalid_credentials')"
    )
    assert "pydantic" not in modules and "opentelemetry" not in modules


def test_the_structlog_integration_imports_nothing_heavy() -> None:
    modules = imported_after(f"import {PACKAGE}.integrations.structlog")
    assert "pydantic" not in modules and "opentelemetry" not in modules


@pytest.mark.parametrize(
    "statement",
    [
        f"import {PACKAGE}",
        f"import {PACKAGE}.integrations.flask, {PACKAGE}.integrations.asgi",
        f"import {PACKAGE} as s\ns.configure(output='console', metrics='none')\ns.log_login(1, 'success')",
    ],
)
def test_the_runtime_never_imports_rich(statement: str) -> None:
    """rich draws the command line's tables (_tools/terminal.py); the runtime, its integrations and the
    console output never import it."""
    assert "rich" not in imported_after(statement)


def test_the_command_lines_tables_do_import_rich() -> None:
    """The probe above can see rich: the catalog table imports it."""
    modules = imported_after(
        "from graffer_secevents._tools.terminal import catalog_table\n"
        "from graffer_secevents._tools.catalog_doc import catalog_rows\ncatalog_table(catalog_rows(), width=80)"
    )
    assert "rich" in modules
