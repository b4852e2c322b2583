"""The integration and client-IP pages: their Python compiles, their records validate, their claims hold."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from graffer_secevents._client_ip import _IGNORED_MESSAGE
from graffer_secevents._tools.schema import check_record

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    "docs/integrations/django.md",
    "docs/integrations/fastapi.md",
    "docs/integrations/flask.md",
    "docs/client-ip.md",
    "docs/integrations/task-queues.md",
]
FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.M | re.S)


def blocks(page: str, lang: str) -> list[str]:
    text = (ROOT / page).read_text(encoding="utf-8")
    return [m.group("body") for m in FENCE.finditer(text) if m.group("lang") == lang]


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_compile(page: str) -> None:
    for number, code in enumerate(blocks(page, "python"), 1):
        compile(code, f"{page}, python block {number}", "exec")


@pytest.mark.parametrize("page", PAGES)
def test_json_records_validate(page: str) -> None:
    for text in blocks(page, "json"):
        assert check_record(orjson.loads(text)) == []


def test_the_warning_shown_is_the_one_given() -> None:
    page = " ".join((ROOT / "docs/client-ip.md").read_text(encoding="utf-8").split())
    shown = _IGNORED_MESSAGE.format(why="no trusted proxies are configured")
    assert " ".join(shown.split()) in page


@pytest.mark.parametrize("page", PAGES[:3])
def test_quickstarts_name_the_real_import_paths(page: str) -> None:
    import importlib

    text = (ROOT / page).read_text(encoding="utf-8")
    for module, name in re.findall(r"from (graffer_secevents\.integrations\.\w+) import (\w+)", text):
        assert hasattr(importlib.import_module(module), name), (module, name)
