"""`secevents report`: what a security reviewer looks at first, drawn in the terminal.

Login attempts over time per outcome (one sparkline row per outcome over equal time buckets), the top
failing IPs and accounts, denied requests, and the signals the rules raised. Every value from the records is
made terminal-safe (control characters escaped, length bounded) before it is printed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from graffer_secevents._tools.loglines import _CONTROL

from .engine import Signal, timestamp_of
from .query import attribute_getter, is_missing, text_of

__all__ = ["describe_signal", "explain_lines", "fit_lines", "render_report", "signal_table"]

BLOCKS: Final = " ▁▂▃▄▅▆▇█"
BUCKETS: Final = 48
TOP: Final = 5
_STEPS: Final = (
    0.1,
    0.2,
    0.5,
    1,
    5,
    10,
    30,
    60,
    300,
    600,
    900,
    1800,
    3600,
    6 * 3600,
    12 * 3600,
    86400,
    7 * 86400,
)
_OUTCOMES: Final = ("success", "failure")

_EVT_NAME = attribute_getter("evt.name")
_EVT_TYPE = attribute_getter("evt.type")
_OUTCOME = attribute_getter("evt.outcome")
_IP = attribute_getter("network.client.ip")
_USR_ID = attribute_getter("usr.id")
_USR_LOGIN = attribute_getter("usr.login")
_PATH = attribute_getter("http.url_details.path")
_ROUTE = attribute_getter("http.route")
_RESOURCE = attribute_getter("evt.resource")


def safe(value: Any, limit: int = 60) -> str:
    """A record value made safe for a terminal: control characters escaped, at most `limit` characters."""
    shown = value if isinstance(value, str) else text_of(value)
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    return shown.translate(_CONTROL)


def _label(value: Any) -> str | None:
    return None if is_missing(value) else safe(value)


def sparkline(counts: Sequence[int], peak: int) -> str:
    """One block character per count, scaled to `peak` (a zero stays blank, any non-zero shows)."""
    if peak <= 0:
        return " " * len(counts)
    top = len(BLOCKS) - 1
    return "".join(BLOCKS[0] if n == 0 else BLOCKS[max(1, math.ceil(n * top / peak))] for n in counts)


def _step(span: float, buckets: int = BUCKETS) -> float:
    for step in _STEPS:
        if span / step <= buckets:
            return step
    return _STEPS[-1]


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds:g} s"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _attempts(logins: list[tuple[float, str]], width: int | None = None) -> list[str]:
    if not logins:
        return ["  no login attempts"]
    start = min(t for t, _ in logins)
    end = max(t for t, _ in logins)
    # As many columns as the terminal has room for: "  failure  │" (12) before, "│ 12345" (7) after.
    step = _step(end - start, BUCKETS if width is None else max(10, width - 20))
    origin = math.floor(start / step) * step
    buckets = int((end - origin) // step) + 1
    rows: dict[str, list[int]] = {outcome: [0] * buckets for outcome in _OUTCOMES}
    for moment, outcome in logins:
        rows.setdefault(outcome, [0] * buckets)[int((moment - origin) // step)] += 1
    peak = max(max(row) for row in rows.values())
    lines = [f"  {_when(origin)} → {_when(origin + buckets * step)}, one column per {_duration(step)}"]
    for outcome, row in rows.items():
        lines.append(f"  {outcome:<8} │{sparkline(row, peak)}│ {sum(row)}")
    lines.append(f"  (the tallest column is {peak} attempt{'s' if peak != 1 else ''})")
    return lines


def _top(counter: Counter[str], extra: Mapping[str, set[str]] | None, noun: str) -> list[str]:
    if not counter:
        return ["  none"]
    rows = counter.most_common(TOP)
    peak = rows[0][1]
    width = max(len(name) for name, _ in rows)
    lines: list[str] = []
    for name, count in rows:
        bar = "█" * max(1, round(20 * count / peak))
        more = ""
        if extra is not None:
            n = len(extra[name])
            more = f"  ({n} {noun if n != 1 else noun[:-1]})"
        lines.append(f"  {name:<{width}}  {count:>5}  {bar}{more}")
    if len(counter) > TOP:
        lines.append(f"  … and {len(counter) - TOP} more")
    return lines


def signal_table(signals: Sequence[Signal]) -> list[str]:
    """The signals as aligned text rows: rule, severity, the case that matched, group key, first and last
    event, event count."""
    if not signals:
        return ["  no signals"]
    head = ("rule", "severity", "case", "group", "first seen", "last seen", "events")
    rows = [
        (
            safe(s.rule_id, 40),
            s.severity,
            safe(s.case, 40),
            safe(", ".join(f"{k}={v}" for k, v in s.group.items()) or "-", 70),
            s.first_seen.strftime("%Y-%m-%d %H:%M:%SZ"),
            s.last_seen.strftime("%Y-%m-%d %H:%M:%SZ"),
            str(s.count),
        )
        for s in signals
    ]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    last = len(head) - 1
    return [
        "  "
        + "  ".join(
            cell.ljust(widths[i]) if i < last else cell.rjust(widths[i]) for i, cell in enumerate(row)
        )
        for row in [head, *rows]
    ]


def describe_signal(signal: Signal) -> str:
    """One line naming a signal: rule, severity, group."""
    group = ", ".join(f"{k}={safe(v)}" for k, v in signal.group.items()) or "(no group-by)"
    return f"{safe(signal.rule_id, 80)} [{signal.severity}] {group}"


def explain_lines(signals: Sequence[Signal], indent: str = "  ") -> list[str]:
    """Per signal, why it fired (`Signal.explain`): the case, each query's value when it opened, what was new
    or how far the user travelled, and the contributing records; terminal-safe."""
    lines: list[str] = []
    for signal in signals:
        lines.append("")
        lines.append(f"{indent}{describe_signal(signal)}")
        lines.extend(f"{indent}  {safe(line, 2000)}" for line in signal.explain())
    return lines


def fit_lines(lines: list[str], width: int | None) -> list[str]:
    """`lines` wrapped between words to `width` columns (continuations indented under their line)."""
    if width is None:
        return lines
    import textwrap

    out: list[str] = []
    for line in lines:
        if len(line) <= width:
            out.append(line)
            continue
        indent = " " * (len(line) - len(line.lstrip()) + 2)
        out.extend(textwrap.wrap(line, width, subsequent_indent=indent, break_on_hyphens=False) or [line])
    return out


def _signals(signals: Sequence[Signal], width: int | None, colour: bool) -> list[str]:
    from graffer_secevents._tools.terminal import signal_table_text

    if width is None:
        return signal_table(signals)
    return signal_table_text(signals, width=width, colour=colour).splitlines()


def render_report(
    records: Iterable[Mapping[str, Any]],
    signals: Sequence[Signal],
    *,
    width: int | None = None,
    colour: bool = False,
) -> str:
    """The whole report as text, one section per question a reviewer asks first.

    `width`: the terminal's columns (the chart uses them; the signal table fits them), `colour`: ANSI
    colours in the signal table.
    """
    logins: list[tuple[float, str]] = []
    failing_ips: Counter[str] = Counter()
    ip_accounts: dict[str, set[str]] = {}
    failing_accounts: Counter[str] = Counter()
    account_ips: dict[str, set[str]] = {}
    denied_ips: Counter[str] = Counter()
    denied_paths: Counter[str] = Counter()
    for record in records:
        moment = timestamp_of(record)
        if _EVT_TYPE(record) == "authz_fail":
            denied_ips[_label(_IP(record)) or "(no IP)"] += 1
            where = _label(_ROUTE(record)) or _label(_PATH(record)) or _label(_RESOURCE(record))
            denied_paths[where or "(unknown)"] += 1
        if _EVT_NAME(record) != "authentication" or moment is None:
            continue
        outcome = _label(_OUTCOME(record)) or "unknown"
        logins.append((moment, outcome))
        if outcome != "failure":
            continue
        ip = _label(_IP(record)) or "(no IP)"
        account = _label(_USR_ID(record)) or _label(_USR_LOGIN(record)) or "(no account)"
        failing_ips[ip] += 1
        ip_accounts.setdefault(ip, set()).add(account)
        failing_accounts[account] += 1
        account_ips.setdefault(account, set()).add(ip)
    sections = [
        ("Login attempts over time", _attempts(logins, width)),
        ("Top failing IPs (failed logins)", _top(failing_ips, ip_accounts, "accounts")),
        ("Top failing accounts (failed logins)", _top(failing_accounts, account_ips, "IPs")),
        ("Denied requests by IP", _top(denied_ips, None, "")),
        ("Denied requests by route or resource", _top(denied_paths, None, "")),
        (
            f"Signals ({len(signals)})",
            _signals(signals, width, colour) + (fit_lines(explain_lines(signals), width) if signals else []),
        ),
    ]
    out: list[str] = []
    for title, lines in sections:
        out.append(title)
        out.extend(lines)
        out.append("")
    return "\n".join(out)
