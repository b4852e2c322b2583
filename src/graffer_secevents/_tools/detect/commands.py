"""The `secevents detect` and `secevents report` sub-commands.

Exit status of `detect`: 0 no signal at or above `--fail-on` (or no `--fail-on`), 1 one fired, 2 a usage
error (argparse) or an unreadable file, 3 no record to replay (`--allow-empty` accepts it), `EXIT_ERROR` (4)
when the replay could not be done: a rule Datadog would refuse or the engine cannot evaluate, a broken input,
or any unexpected failure. A crash is never status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, cast

from graffer_secevents._tools.gates import EXIT_ERROR, EXIT_USAGE

from .compiler import SEVERITIES

__all__ = ["add_commands"]

_PROG = "secevents"


def add_commands(commands: Any) -> None:
    """Register `detect` and `report` on the `secevents` sub-parser set."""
    from graffer_secevents._tools.gates import add_allow_empty

    detect = commands.add_parser(
        "detect",
        help="replay detection rules over JSON-lines logs and print the signals",
        description="Read JSON-lines logs (files, directories, gzip, a Datadog log archive, or - for stdin; "
        "any JSON log, not only security records; other lines are counted and skipped), replay Datadog "
        "detection rules over them in timestamp order and print the signals. Default rules: the library's "
        "set (secevents rules). Exit status 1 when a signal at or above --fail-on fired, 2 on a usage error, "
        f"{EXIT_ERROR} when the replay could not be done (a rule refused, an unreadable input, an internal "
        "error).",
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
    detect.add_argument(
        "--explain",
        action="store_true",
        help="per signal: the case that matched, each query's value when it opened, and the contributing "
        "records (file:line), capped",
    )
    detect.add_argument(
        "--max-delay",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how far behind a later record a record may arrive and still be replayed in order "
        "(default 600); "
        "later ones are counted as late and skipped",
    )
    detect.add_argument(
        "--engine",
        choices=("stream", "columnar", "auto"),
        default="stream",
        help="stream (default): the streaming engine; columnar: DuckDB ([detect-scale]) for threshold "
        "rules over files (else, said on stderr, the streaming engine); auto: columnar when installed and "
        "eligible; every engine gives the same signals",
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
    parser.add_argument(
        "file",
        metavar="FILE",
        nargs="+",
        help="a file of JSON lines (gzip or not), a directory of them (a Datadog log archive), "
        "or - for stdin",
    )
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


def _fail(command: str, message: str, status: int = EXIT_ERROR) -> int:
    sys.stderr.write(f"{_PROG} {command}: {_safe(message)}\n")
    return status


def _safe(text: str) -> str:
    from .report import safe

    return safe(text, 2000)


def _guarded(command: str, run: Any) -> int:
    """Run a command body; every failure becomes a message and `EXIT_ERROR`, never a traceback or status 1."""
    from graffer_secevents._errors import MissingDependencyError

    from .errors import DetectError

    try:
        return int(run())
    except (DetectError, MissingDependencyError) as exc:
        return _fail(command, str(exc))
    except OSError as exc:
        name = exc.filename or ""
        if name:  # a file that cannot be read: the usage status, worded as every command words it
            return _fail(command, f"cannot read {name}: {exc.strerror or exc}", EXIT_USAGE)
        return _fail(command, f"cannot read: {exc}")
    except (RecursionError, MemoryError) as exc:
        return _fail(command, f"gave up: {type(exc).__name__} ({exc})")
    except Exception as exc:  # noqa: BLE001 - a bug: say so, never let it look like a detection
        return _fail(command, f"internal error, please report it: {type(exc).__name__}: {exc}")


def _describer(names: list[str]) -> Any:
    def describe(ref: Any) -> str:
        index, line = cast("tuple[int, int]", ref)
        name = names[index]
        return f"{'<stdin>' if name == '-' else name}:{line}"

    return describe


def _engine(args: argparse.Namespace, names: list[str], *, explain: bool) -> Any:
    from .engine import Engine
    from .loading import load_rules

    return Engine(_rules(args.rules, load_rules), geo=_geo(args), explain=explain, describe=_describer(names))


def _columnar(args: argparse.Namespace, counts: Any, names: list[str]) -> Any:
    """The columnar engine's replay, or `None` when the streaming engine runs (`--engine stream`, DuckDB not
    installed, rules or inputs it does not take: said on stderr when `--engine columnar` asked for it)."""
    if args.engine == "stream":
        return None
    from .columnar import Unsupported, available, columnar_replay, streamed
    from .loading import load_rules

    if not available():
        if args.engine == "columnar":
            sys.stderr.write(
                f"{_PROG} detect: the columnar engine needs DuckDB (pip install "
                "'graffer-secevents[detect-scale]'); using the streaming engine\n"
            )
        return None
    _geo(args)  # a broken --geo or --maxmind is the same error whichever engine runs
    outcome = columnar_replay(
        _rules(args.rules, load_rules),
        args.file,
        counts,
        names,
        describe=_describer(names),
        explain=args.explain,
        max_delay=max(0.0, args.max_delay),
        geo_given=bool(args.geo or args.maxmind),
    )
    if isinstance(outcome, Unsupported):
        if args.engine == "columnar":
            sys.stderr.write(f"{_PROG} detect: {_safe(outcome.reason)}: using the streaming engine\n")
        return None
    if args.engine == "columnar":
        for rule in outcome.rules:
            reason = streamed(rule)
            if reason is not None:
                sys.stderr.write(f"{_PROG} detect: {_safe(reason)}: the streaming engine replays it\n")
    return outcome


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
        f"{counts.records} log records read ({counts.security} security records) from {counts.files} "
        f"file{'s' if counts.files != 1 else ''}; {counts.skipped} other lines skipped "
        f"({counts.not_json} not JSON, {counts.not_security} JSON but not an object, {counts.blank} blank)"
    )
    if result.no_timestamp:
        text += f"; {result.no_timestamp} records without a readable timestamp skipped"
    if result.late:
        text += f"; {result.late} records arriving after --max-delay skipped"
    if result.geo_unresolved:
        text += f"; {result.geo_unresolved} records whose IP the geo lookup does not know"
    return text


def _cmd_detect(args: argparse.Namespace) -> int:
    return _guarded("detect", lambda: _detect(args))


def _detect(args: argparse.Namespace) -> int:
    from .engine import replay_stream
    from .loading import LineCounts, read_logs

    counts = LineCounts()
    names: list[str] = []
    result = _columnar(args, counts, names)
    if result is None:
        engine = _engine(args, names, explain=args.explain)
        result = replay_stream(
            engine, read_logs(args.file, counts, names), max_delay=max(0.0, args.max_delay)
        )
    signals = result.signals
    if args.format == "json":
        body = {
            "signals": [s.as_dict() for s in signals],
            "records": counts.records,
            "security_records": counts.security,
            "files": counts.files,
            "skipped": {
                "not_json": counts.not_json,
                "not_security": counts.not_security,
                "blank": counts.blank,
            },
            "no_timestamp": result.no_timestamp,
            "late": result.late,
            "rules": len(result.rules),
        }
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
    else:
        import textwrap

        from graffer_secevents._tools.terminal import signal_table_text, stdout_colour, terminal_width

        from .report import explain_lines, fit_lines

        sys.stdout.write(signal_table_text(signals, colour=stdout_colour()) + "\n")
        if args.explain and signals:
            sys.stdout.write("\n".join(fit_lines(explain_lines(signals), terminal_width())) + "\n")
        summary = f"{len(signals)} signal{'s' if len(signals) != 1 else ''} from {len(result.rules)} rules; "
        sys.stdout.write(textwrap.fill(summary + _summary(counts, result), terminal_width()) + "\n")
    from graffer_secevents._tools.gates import no_records_gate

    # The library's rules read security records: a log without one is the wrong log. A team's own rules may
    # read any JSON log (CloudTrail...): then a log without any record is.
    found = counts.records if args.rules else counts.security
    gate = no_records_gate("detect", found, args.allow_empty)
    if gate is not None:
        return gate
    if args.fail_on is None:
        return 0
    floor = SEVERITIES.index(args.fail_on)
    return 1 if any(SEVERITIES.index(s.severity) >= floor for s in signals) else 0


def _cmd_report(args: argparse.Namespace) -> int:
    return _guarded("report", lambda: _report(args))


def _report(args: argparse.Namespace) -> int:
    import textwrap

    from graffer_secevents._tools.gates import no_records_gate
    from graffer_secevents._tools.terminal import stdout_colour, terminal_width

    from .engine import replay_stream
    from .loading import LineCounts, read_logs
    from .report import render_report

    counts = LineCounts()
    names: list[str] = []
    engine = _engine(args, names, explain=False)
    records: list[dict[str, Any]] = []

    def kept() -> Any:
        for record, ref in read_logs(args.file, counts, names):
            records.append(record)
            yield record, ref

    result = replay_stream(engine, kept())
    width = terminal_width()
    sys.stdout.write(render_report(records, result.signals, width=width, colour=stdout_colour()))
    sys.stdout.write(textwrap.fill(_summary(counts, result), width) + "\n")
    gate = no_records_gate("report", counts.security, args.allow_empty)
    return gate if gate is not None else 0
