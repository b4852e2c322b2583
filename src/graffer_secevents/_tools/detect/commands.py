"""The `secevents detect` and `secevents report` sub-commands.

Exit status of `detect`: 0 no signal at or above `--fail-on` (or no `--fail-on`), 1 one fired, 2 a
usage error, an unreadable file or a rule the engine cannot evaluate.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from typing import IO, Any, cast

from .compiler import SEVERITIES

__all__ = ["add_commands"]

_PROG = "secevents"


def add_commands(commands: Any) -> None:
    """Register `detect` and `report` on the `secevents` sub-parser set."""
    from graffer_secevents._tools.gates import add_allow_empty

    detect = commands.add_parser(
        "detect",
        help="replay detection rules over JSON-lines logs and print the signals",
        description="Read security records (a file or - for stdin; other log lines are counted and "
        "skipped), replay Datadog detection rules over them in timestamp order and print the signals. "
        "Default rules: the library's set (secevents rules). Exit status 1 when a signal at or above "
        "--fail-on fired, 2 on a usage error, an unreadable file or a rule the engine cannot evaluate.",
    )
    _add_input(detect)
    add_allow_empty(detect)
    detect.add_argument("--format", choices=("table", "json"), default="table", help="output (default table)")
    detect.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        default=None,
        metavar="SEVERITY",
        help=f"exit 1 when a signal of this severity or higher fires ({', '.join(SEVERITIES)})",
    )
    detect.set_defaults(handler=_cmd_detect)

    report = commands.add_parser(
        "report",
        help="draw login attempts, top failing IPs and accounts, denied requests and signals",
        description="A terminal report of JSON-lines security logs: login attempts over time per outcome, "
        "the top failing IPs and accounts, denied requests, and the signals the rules raise.",
    )
    _add_input(report)
    add_allow_empty(report)
    report.set_defaults(handler=_cmd_report)


def _add_input(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a file of JSON lines, or - for stdin")
    parser.add_argument(
        "--rules",
        action="append",
        default=[],
        metavar="FILE",
        help="rule JSON (one rule, a list, or {'rules': [...]}); repeatable; default: the library's rules",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--geo",
        metavar="FILE.json",
        help='IP locations: {"203.0.113.7": {"lat": 48.85, "lon": 2.35, "country": "FR"}}',
    )
    where.add_argument(
        "--maxmind", metavar="DB", help="a MaxMind GeoIP2/GeoLite2 City database (needs [geoip])"
    )


def _fail(command: str, message: str) -> int:
    sys.stderr.write(f"{_PROG} {command}: {message}\n")
    return 2


def _load(args: argparse.Namespace, command: str) -> tuple[Any, Any, Any] | int:
    """(replay, records, line counts), or an exit status after printing why not."""
    from graffer_secevents._errors import MissingDependencyError

    from .engine import replay
    from .errors import DetectError
    from .loading import LineCounts, load_rules, read_records

    counts = LineCounts()
    try:
        rules = _rules(args.rules, load_rules)
        geo = _geo(args)
        with ExitStack() as stack:
            stream: IO[bytes] = (
                sys.stdin.buffer if args.file == "-" else stack.enter_context(open(args.file, "rb"))
            )
            records = list(read_records(stream, counts))
        result = replay(rules, records, geo=geo)
    except (DetectError, MissingDependencyError) as exc:
        return _fail(command, str(exc))
    except OSError as exc:
        return _fail(command, f"cannot read {exc.filename or args.file}: {exc.strerror or exc}")
    return result, records, counts


def _rules(paths: list[str], load_rules: Any) -> list[dict[str, Any]]:
    if not paths:
        from graffer_secevents._tools.rules import build_rules

        return build_rules()
    rules: list[dict[str, Any]] = []
    for path in paths:
        rules.extend(load_rules(path))
    return rules


def _geo(args: argparse.Namespace) -> Any:
    from .errors import DetectError
    from .geo import GeoPoint, maxmind_lookup

    if args.maxmind:
        return maxmind_lookup(args.maxmind)
    if not args.geo:
        return None
    with open(args.geo, encoding="utf-8") as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as exc:
            raise DetectError(f"{args.geo}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DetectError(f"{args.geo}: expected an object of IP -> {{lat, lon, country}}")
    entries = cast("dict[str, Any]", data)
    table: dict[str, GeoPoint] = {}
    for ip, where in entries.items():
        try:
            table[ip] = GeoPoint(
                float(where["lat"]),
                float(where["lon"]),
                str(where.get("country", "")),
                str(where.get("city", "")),
            )
        except (TypeError, KeyError, ValueError):
            raise DetectError(f"{args.geo}: {ip!r} needs numeric lat and lon") from None
    return table


def _summary(counts: Any, result: Any) -> str:
    text = (
        f"{counts.records} security records read; {counts.skipped} other lines skipped "
        f"({counts.not_json} not JSON, {counts.not_security} JSON but not security records, "
        f"{counts.blank} blank)"
    )
    if result.no_timestamp:
        text += f"; {result.no_timestamp} records without a readable timestamp skipped"
    if result.geo_unresolved:
        text += f"; {result.geo_unresolved} records whose IP the geo lookup does not know"
    return text


def _cmd_detect(args: argparse.Namespace) -> int:
    loaded = _load(args, "detect")
    if isinstance(loaded, int):
        return loaded
    result, _records, counts = loaded
    signals = result.signals
    if args.format == "json":
        body = {
            "signals": [s.as_dict() for s in signals],
            "records": counts.records,
            "skipped": {
                "not_json": counts.not_json,
                "not_security": counts.not_security,
                "blank": counts.blank,
            },
            "no_timestamp": result.no_timestamp,
            "rules": len(result.rules),
        }
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
    else:
        import textwrap

        from graffer_secevents._tools.terminal import signal_table_text, stdout_colour, terminal_width

        sys.stdout.write(signal_table_text(signals, colour=stdout_colour()) + "\n")
        summary = f"{len(signals)} signal{'s' if len(signals) != 1 else ''} from {len(result.rules)} rules; "
        sys.stdout.write(textwrap.fill(summary + _summary(counts, result), terminal_width()) + "\n")
    from graffer_secevents._tools.gates import (
        no_records_gate,  # exit status 3 (generic, in cli.py) when the input held no record
    )

    gate = no_records_gate("detect", counts.records, args.allow_empty)
    if gate is not None:
        return gate
    if args.fail_on is None:
        return 0
    floor = SEVERITIES.index(args.fail_on)
    return 1 if any(SEVERITIES.index(s.severity) >= floor for s in signals) else 0


def _cmd_report(args: argparse.Namespace) -> int:
    loaded = _load(args, "report")
    if isinstance(loaded, int):
        return loaded
    result, records, counts = loaded
    import textwrap

    from graffer_secevents._tools.gates import no_records_gate
    from graffer_secevents._tools.terminal import stdout_colour, terminal_width

    from .report import render_report

    width = terminal_width()
    sys.stdout.write(render_report(records, result.signals, width=width, colour=stdout_colour()))
    sys.stdout.write(textwrap.fill(_summary(counts, result), width) + "\n")
    gate = no_records_gate("report", counts.records, args.allow_empty)
    return gate if gate is not None else 0
