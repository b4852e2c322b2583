"""The docs site reads well: a repository link, the CSS that keeps identifiers whole in table cells and
lets code scroll visibly, and user pages without contributor notes or repository paths. (Checked by eye
in headless Chromium at 390, 1280 and 1920 px; this pins what made it right.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
USER_PAGES = [
    "docs/index.md",
    "docs/quickstart.md",
    "docs/cli.md",
    *(f"docs/integrations/{p}.md" for p in ("django", "flask", "fastapi")),
]


def test_the_site_links_the_repository() -> None:
    source = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Source"]
    assert CONFIG["repo_url"] == source


def test_the_extra_css_keeps_identifiers_whole_and_code_scrolling() -> None:
    [sheet] = CONFIG["extra_css"]
    css = (ROOT / "docs" / sheet).read_text()
    table_code = re.search(r"table:not\(\[class\]\) code \{([^}]*)\}", css)
    assert table_code is not None and "white-space: nowrap" in table_code.group(1)
    assert "overflow-x: auto" in css


@pytest.mark.parametrize("page", USER_PAGES)
def test_user_pages_have_no_contributor_notes_or_repository_paths(page: str) -> None:
    text = (ROOT / page).read_text()
    assert "test suite" not in text.split("\n## ", 1)[0]  # nothing about our tests before the first section
    assert not re.search(r"`(tests|examples)/", text), "a pip user has no such path"
