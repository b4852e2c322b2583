"""Tables that fit the terminal, drawn with rich: the signal table (`detect`, `report`, demo), the catalog.

rich lays the columns out to the terminal's width (`COLUMNS`, else the terminal's own size, else 80). A
value is never broken in the middle: cells wrap only between values (at the spaces of `a=1, b=2`), and
when even that does not fit, the least useful columns are left out (the full timestamps become times, then
`last seen` goes; the catalog drops `evt.name`, then the category). Colour only on a terminal and never
with `NO_COLOR` (https://no-color.org): severity (`high` in red, `medium` in yellow ...) and outcome.
rich is imported here only, by the command line: the runtime never imports it
(`benchmarks/bench_import.py`, `tests/test_imports.py`).
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from rich.table import Table

    from .detect.engine import Signal

__all__ = ["catalog_table", "colour_on", "render", "signal_table_text", "terminal_width"]

SEVERITY_STYLES: Final = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}
OUTCOME_STYLES: Final = {"success": "green", "failure": "red"}


def colour_on(stream: IO[str]) -> bool:
    """Colour for `stream`: a terminal, no `NO_COLOR`, not `TERM=dumb`."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def terminal_width() -> int:
    """`COLUMNS`, else the terminal's width, else 80."""
    return shutil.get_terminal_size((80, 24)).columns


def render(renderable: Any, *, width: int, colour: bool) -> str:
    """`renderable` as text `width` columns wide, with ANSI colours when `colour`."""
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        force_terminal=colour,
        color_system="standard" if colour else None,
        no_color=not colour,
        highlight=False,
        emoji=False,
        soft_wrap=False,
    )
    console.print(renderable, crop=False)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


def safe(value: Any, limit: int = 60) -> str:
    """A record value made safe for a terminal: control characters escaped, at most `limit` characters (the
    rule `detect/report.py` follows too)."""
    from .detect.query import text_of
    from .loglines import _CONTROL

    shown = value if isinstance(value, str) else text_of(value)
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    return shown.translate(_CONTROL)


def _fits(table: Table, width: int) -> bool:
    """Whether `table` fits `width` with its no-wrap columns whole and the others at their `min_width`
    (the longest value they hold: they wrap between values, never inside one)."""
    needed = 2 * (len(table.columns) - 1)  # padding (0, 1) without edges: two spaces between columns
    for column in table.columns:
        if column.no_wrap:
            cells = [str(getattr(cell, "plain", cell)) for cell in column.cells]
            needed += max([len(str(column.header)), *(len(cell) for cell in cells)])
        else:
            needed += max(len(str(column.header)), column.min_width or 1)
    return needed <= width


def _first_fitting(builds: Sequence[Callable[[], Table]], width: int) -> Table:
    """The first table of `builds` that fits `width` with its wrapping cells wrapped between values (never
    inside one), else the last."""
    for build in builds[:-1]:
        table = build()
        if _fits(table, width):
            return table
    return builds[-1]()


def _new_table() -> Table:
    from rich.table import Table

    # No box: two spaces between columns and nothing around them, so every column counts.
    return Table(box=None, show_edge=False, pad_edge=False, padding=(0, 1), header_style="bold underline")


def signal_table_text(signals: Sequence[Signal], *, width: int | None = None, colour: bool = False) -> str:
    """The signals as a table: rule, severity, the case that matched (where it fits), group, first and last
    event, events."""
    from rich.text import Text

    width = terminal_width() if width is None else width
    if not signals:
        return "  no signals"

    longest = (
        max(len(f"{k}={safe(v, 70)}") for s in signals for k, v in s.group.items())
        if any(s.group for s in signals)
        else 1
    )

    def build(stamp: str, both: bool, case: bool = False) -> Callable[[], Table]:
        def make() -> Table:
            table = _new_table()
            table.add_column("rule", no_wrap=True)
            table.add_column("severity", no_wrap=True)
            if case:
                table.add_column("case", no_wrap=True)
            # Wraps only between values (at ", "): never narrower than its longest value.
            table.add_column("group", overflow="fold", min_width=longest)
            if both:
                table.add_column("first seen", no_wrap=True)
            table.add_column("last seen" if both else "seen", no_wrap=True)
            table.add_column("events", justify="right", no_wrap=True)
            for s in signals:
                group = ", ".join(f"{k}={safe(v, 70)}" for k, v in s.group.items()) or "-"
                cells: list[Any] = [
                    Text(safe(s.rule_id, 40)),
                    Text(s.severity, style=SEVERITY_STYLES.get(s.severity, "")),
                    *([Text(safe(s.case, 40))] if case else []),
                    Text(group),
                ]
                if both:
                    cells.append(Text(s.first_seen.strftime(stamp)))
                cells += [Text(s.last_seen.strftime(stamp)), Text(str(s.count))]
                table.add_row(*cells)
            return table

        return make

    table = _first_fitting(
        [
            build("%Y-%m-%d %H:%M:%SZ", True, case=True),
            build("%H:%M:%SZ", True, case=True),
            build("%Y-%m-%d %H:%M:%SZ", True),
            build("%H:%M:%SZ", True),
            build("%H:%M:%SZ", False),
        ],
        width,
    )
    return render(table, width=width, colour=colour)


def catalog_table(rows: Sequence[Sequence[str]], *, width: int | None = None, colour: bool = False) -> str:
    """The catalog (`TYPE, CATEGORY, EVT.NAME, LEVEL, OUTCOME, PARAMETERS` rows) fitted to `width`."""
    from rich.text import Text

    width = terminal_width() if width is None else width
    names: tuple[str, ...] = ("TYPE", "CATEGORY", "EVT.NAME", "LEVEL", "OUTCOME", "PARAMETERS")
    longest_param = max((len(p) for row in rows for p in row[5].split(", ")), default=1)

    def build(keep: tuple[str, ...]) -> Callable[[], Table]:
        def make() -> Table:
            table = _new_table()
            for name in keep:
                table.add_column(
                    name,
                    no_wrap=name != "PARAMETERS",
                    overflow="fold",
                    min_width=longest_param if name == "PARAMETERS" else None,
                )
            for row in rows:
                cells: dict[str, str] = dict(zip(names, row, strict=True))
                styled: list[Text] = []
                for name in keep:
                    style = OUTCOME_STYLES.get(cells[name], "") if name == "OUTCOME" else ""
                    if name == "LEVEL":
                        style = SEVERITY_STYLES.get(
                            {"warning": "medium", "critical": "high"}.get(cells[name], ""), ""
                        )
                    styled.append(Text(cells[name], style=style))
                table.add_row(*styled)
            return table

        return make

    table = _first_fitting(
        [
            build(names),
            build(("TYPE", "CATEGORY", "LEVEL", "OUTCOME", "PARAMETERS")),
            build(("TYPE", "LEVEL", "OUTCOME", "PARAMETERS")),
        ],
        width,
    )
    return render(table, width=width, colour=colour)


def stdout_colour() -> bool:
    """Whether the command's standard output gets colour."""
    return colour_on(sys.stdout)
