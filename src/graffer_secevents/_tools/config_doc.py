"""The environment-variable table of docs/configuration.md, generated from the options table.

tests/test_config.py fails when the page's table differs from this one; paste the test's expected text.
"""

from __future__ import annotations

from typing import Any

from graffer_secevents._config import OPTIONS

__all__ = ["environment_table"]


def _default(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"`{value}`"


def environment_table() -> str:
    """The Markdown table of every option read from the environment: variable, option, default, example.

    Returns:
        The table, one row per option that has a variable, in the options table's order.
    """
    rows = [
        "| variable | `configure()` option | what | default | example |",
        "|---|---|---|---|---|",
    ]
    for opt in OPTIONS:
        if opt.env is not None:
            example = f"`{opt.example}`" if opt.example else "(a secret)"
            rows.append(f"| `{opt.env}` | `{opt.name}` | {opt.doc} | {_default(opt.default)} | {example} |")
    return "\n".join(rows) + "\n"
