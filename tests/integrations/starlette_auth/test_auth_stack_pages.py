"""The Flask-Security, fastapi-users and Starlette-auth pages: their Python compiles, their imports are real,
and each names the oldest tested release that pyproject.toml declares."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PAGES = {  # page: the extra whose lower bound it must name (None: part of another extra)
    "docs/integrations/flask-security.md": ("flask-security", "flask-security-too"),
    "docs/integrations/fastapi-users.md": ("fastapi-users", "fastapi-users"),
    "docs/integrations/starlette-auth.md": None,
}
FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.M | re.S)


def text(page: str) -> str:
    return (ROOT / page).read_text(encoding="utf-8")


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_compile_and_import_real_names(page: str) -> None:
    for number, match in enumerate(FENCE.finditer(text(page)), 1):
        if match.group("lang") == "python":
            compile(match.group("body"), f"{page}, block {number}", "exec")
    found = re.findall(
        r"from (graffer_secevents\.integrations\.\w+) import \(?\s*([\w,\s]+?)\)?\n", text(page)
    )
    assert found
    for module, names in found:
        for name in (n.strip() for n in names.split(",")):
            if name:
                assert hasattr(importlib.import_module(module), name), (module, name)


@pytest.mark.parametrize("page", [p for p, extra in PAGES.items() if extra])
def test_the_page_names_the_oldest_tested_release(page: str) -> None:
    extra, package = PAGES[page]  # type: ignore[misc]
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][extra]
    [bound] = [d.split(">=")[1] for d in declared if d.lower().startswith(package)]
    assert f"{bound}**" in text(page), (page, bound)
