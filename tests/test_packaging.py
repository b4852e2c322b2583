"""Packaging a user can trust: the license, the README's install lines, the metadata, and extras that really
install what each example imports."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
NAME = canonicalize_name(PROJECT["name"])
EXTRAS: dict[str, list[str]] = PROJECT["optional-dependencies"]


def test_the_license_file_is_the_apache_2_text_the_metadata_declares() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    assert "END OF TERMS AND CONDITIONS" in text
    assert len(re.findall(r"^\s+\d+\. ", text, re.M)) >= 9  # the nine sections, not a stub


def test_the_readme_has_an_install_line_per_extra_right_after_the_make_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first_install = readme.index("pip install graffer-secevents")
    assert readme.index("make test") < first_install < readme.index("```python")
    for extra in EXTRAS:
        assert f'pip install "graffer-secevents[{extra}]"' in readme, extra


def test_the_metadata_names_urls_frameworks_python_versions_and_os() -> None:
    assert {"Homepage", "Documentation", "Source", "Changelog", "Issues"} <= set(PROJECT["urls"])
    classifiers = set(PROJECT["classifiers"])
    assert {"Framework :: Django", "Framework :: Flask", "Framework :: FastAPI"} <= classifiers
    assert "Operating System :: OS Independent" in classifiers
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # PEP 639: the SPDX expression only


def _distributions(requirements: list[str], seen: set[str] | None = None) -> set[str]:
    """Canonical distribution names `requirements` install, following our own extras."""
    seen = set() if seen is None else seen
    found: set[str] = set()
    for text in requirements:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name == NAME:
            for extra in sorted(requirement.extras - seen):
                seen.add(extra)
                found |= _distributions(EXTRAS[extra], seen)
        else:
            found.add(name)
    return found


def _with_dependencies(names: set[str]) -> set[str]:
    """`names` and everything they require, read from the installed distributions' metadata."""
    closure = set(names)
    pending = list(names)
    while pending:
        try:
            needed = requires(pending.pop()) or []
        except PackageNotFoundError:
            continue
        for text in needed:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            name = canonicalize_name(requirement.name)
            if name not in closure:
                closure.add(name)
                pending.append(name)
    return closure


def _third_party_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    local = {"graffer_secevents", "shop"}  # the package itself; the Django example's own project
    return {n for n in names if n not in sys.stdlib_module_names and n not in local}


EXAMPLES = sorted((ROOT / "examples").rglob("*.py"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_examples_extra_installs_everything_an_example_imports(example: Path) -> None:
    installed = _with_dependencies(_distributions([*PROJECT["dependencies"], f"{NAME}[examples]"]))
    by_module = packages_distributions()
    missing = {
        module: by_module.get(module, [module])
        for module in _third_party_imports(example)
        if not {canonicalize_name(d) for d in by_module.get(module, [module])} & installed
    }
    assert missing == {}, (
        f'pip install "graffer-secevents[examples]" would not install these for {example.name}'
    )


def test_the_scan_sees_flask_login_in_the_flask_example() -> None:
    assert "flask_login" in _third_party_imports(ROOT / "examples" / "flask_app.py")
    assert "flask-login" in _distributions(EXTRAS["flask"])  # the Flask page's app imports it (issue 20)
    assert "flask-login" in _distributions([f"{NAME}[examples]"])
