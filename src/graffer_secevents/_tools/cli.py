"""The `secevents` command line: `validate`, `catalog`, `schema`, `monitors`, `rules`, `detect`, `report`,
`doctor` and `demo`.

Exit statuses (the same for every command; `EXIT_STATUSES`, shown by `secevents --help` and docs/cli.md):
0 success; 1 findings (`validate` found invalid records, `detect --fail-on` a signal, `rules --check` a
problem); 2 a usage error, an unreadable file or an invalid option value (argparse's own convention); 3 the
input held no security record at all (`validate`, `detect`, `report`; `--allow-empty` accepts it), so a
gate pointed at the wrong log fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Final, Never, cast

from graffer_secevents._tools.gates import (
    _EPILOG,
    EXIT_FINDINGS,
    EXIT_NO_RECORDS,
    EXIT_OK,
    EXIT_STATUSES,
    EXIT_USAGE,
    MAX_SAME_FINDING,
    add_allow_empty,
    docs_url,
    no_records_gate,
)
from graffer_secevents._tools.loglines import (
    _CONTROL,
    DEFAULT_MAX_LINE_BYTES,
    _looks_like_record,
    _parse,
    _read_lines,
)

__all__ = [
    "EXIT_FINDINGS",
    "EXIT_NO_RECORDS",
    "EXIT_OK",
    "EXIT_USAGE",
    "ValidationReport",
    "build_parser",
    "docs_url",
    "main",
    "validate_stream",
]

PROG: Final = "secevents"
MAX_PROBLEMS_PER_RECORD: Final = 20
MAX_PROBLEM_CHARS: Final = 300


# --- validate -----------------------------------------------------------------------------------------------


@dataclass
class ValidationReport:
    """What `secevents validate` found in one or more streams."""

    files: list[str] = field(default_factory=list[str])
    lines: int = 0
    records: int = 0
    valid: int = 0
    invalid: int = 0
    coerced: int = 0
    blank: int = 0
    not_json: int = 0
    not_security: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    notes: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    unreadable: list[dict[str, str]] = field(default_factory=list[dict[str, str]])

    @property
    def ok(self) -> bool:
        """No invalid record and every file was readable."""
        return self.invalid == 0 and not self.unreadable

    def as_dict(self) -> dict[str, Any]:
        """The summary and per-line problems, as `--format json` prints them."""
        return {
            "ok": self.ok,
            "files": self.files,
            "lines": self.lines,
            "records": self.records,
            "valid": self.valid,
            "invalid": self.invalid,
            "coerced": self.coerced,
            "skipped": {"blank": self.blank, "not_json": self.not_json, "not_security": self.not_security},
            "problems": self.problems,
            "coerced_records": self.notes,
            "unreadable": self.unreadable,
        }


def _safe(text: object, limit: int = MAX_PROBLEM_CHARS) -> str:
    """Text from the input, made safe for a terminal: control characters escaped, length bounded."""
    shown = str(text)
    if len(shown) > limit:
        shown = shown[:limit] + f"… ({len(shown)} characters)"
    return shown.translate(_CONTROL)


def _evt_type_of(obj: dict[str, Any]) -> str | None:
    evt: object = obj.get("evt")
    value: object = cast("dict[str, Any]", evt).get("type") if isinstance(evt, dict) else obj.get("evt.type")
    return _safe(value, 64) if isinstance(value, str) else None


def validate_stream(
    stream: IO[bytes],
    name: str,
    report: ValidationReport,
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    strict: bool = False,
) -> None:
    """Check every security record in `stream` (JSON lines, maybe mixed with other output) into `report`.

    Each JSON object with `logger.name == "graffer_secevents"` or an `evt.type` is checked against the
    record schema and the catalog (`graffer_secevents._schema.check_record`); blank lines, non-JSON
    lines and other JSON are counted and skipped. With `strict`, a record whose input was coerced (it has
    `secevents.errors`) counts as invalid.
    """
    from .schema import check_record

    report.files.append(name)
    for number, line, oversize in _read_lines(stream, max_line_bytes):
        report.lines += 1
        if oversize is not None:
            if line.lstrip().startswith(b"{") and _looks_like_record(line):
                _add_problem(
                    report,
                    name,
                    number,
                    None,
                    [f"line of {oversize} bytes, over the {max_line_bytes}-byte limit"],
                )
            else:
                report.not_json += 1
            continue
        kind, value = _parse(line)
        if kind == "blank":
            report.blank += 1
        elif kind == "not_json":
            report.not_json += 1
        elif kind == "not_security":
            report.not_security += 1
        elif kind == "broken":
            _add_problem(report, name, number, None, [value])
        else:
            evt_type = _evt_type_of(value)
            problems = check_record(value)
            errors = _coercion_notes(value)
            if errors:
                report.coerced += 1
                report.notes.append({"file": name, "line": number, "evt_type": evt_type, "errors": errors})
                if strict and not problems:
                    problems = [f"secevents.errors: input was coerced: {'; '.join(errors)}"]
            if problems:
                _add_problem(report, name, number, evt_type, problems)
            else:
                report.records += 1
                report.valid += 1


def _coercion_notes(record: dict[str, Any]) -> list[str]:
    meta: object = record.get("secevents")
    errors: object = cast("dict[str, Any]", meta).get("errors") if isinstance(meta, dict) else None
    if not isinstance(errors, list):
        return []
    return [_safe(e) for e in cast("list[object]", errors)[:MAX_PROBLEMS_PER_RECORD]]


def _add_problem(
    report: ValidationReport, name: str, number: int, evt_type: str | None, problems: list[str]
) -> None:
    shown = [_safe(p) for p in problems[:MAX_PROBLEMS_PER_RECORD]]
    if len(problems) > MAX_PROBLEMS_PER_RECORD:
        shown.append(f"... and {len(problems) - MAX_PROBLEMS_PER_RECORD} more")
    report.records += 1
    report.invalid += 1
    report.problems.append({"file": name, "line": number, "evt_type": evt_type, "problems": shown})


def _open_input(path: str) -> tuple[IO[bytes], bool]:
    if path == "-":
        return sys.stdin.buffer, False
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory")
    return open(path, "rb"), True


def _cmd_validate(args: argparse.Namespace) -> int:
    report = ValidationReport()
    for path in args.files:
        name = "<stdin>" if path == "-" else path
        try:
            stream, owned = _open_input(path)
            try:
                validate_stream(stream, name, report, max_line_bytes=args.max_line_bytes, strict=args.strict)
            finally:
                if owned:
                    stream.close()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            report.unreadable.append({"file": name, "error": reason})
            sys.stderr.write(f"{PROG} validate: cannot read {_safe(name)}: {_safe(reason)}\n")
    if args.format == "json":
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
    elif len(report.unreadable) < len(args.files):
        _print_report(report, show_coerced=args.strict or args.verbose)
    if report.unreadable:
        return 2
    if not report.ok:
        return 1
    gate = no_records_gate("validate", report.records, args.allow_empty)
    return gate if gate is not None else 0


def _print_report(report: ValidationReport, *, show_coerced: bool) -> None:
    out = sys.stdout
    for problem in report.problems:
        where = f"{_safe(problem['file'])}:{problem['line']}: "
        prefix = f"{where}{problem['evt_type']}: " if problem["evt_type"] else where
        for text in problem["problems"]:
            out.write(f"{prefix}{text}\n")
    if show_coerced:
        for note in report.notes:
            out.write(
                f"{_safe(note['file'])}:{note['line']}: {note['evt_type']}: note: input was coerced: "
                f"{'; '.join(note['errors'])}\n"
            )
    skipped = report.blank + report.not_json + report.not_security
    summary = (
        f"{report.records} security record{'s' if report.records != 1 else ''}: "
        f"{report.valid} valid, {report.invalid} invalid"
    )
    if report.coerced:
        summary += f" ({report.coerced} with coerced input, see secevents.errors)"
    summary += (
        f"; {skipped} other line{'s' if skipped != 1 else ''} skipped ({report.not_json} not JSON, "
        f"{report.not_security} JSON but not security records, {report.blank} blank)"
    )
    if report.records == 0 and not report.unreadable:
        summary += "; no security records found"
    out.write(summary + "\n")


# --- catalog, schema, monitors, demo ------------------------------------------------------------------------


def _cmd_catalog(args: argparse.Namespace) -> int:
    from .catalog_doc import catalog_data, render_markdown

    if args.format == "json":
        sys.stdout.write(json.dumps(catalog_data(), indent=2) + "\n")
    elif args.format == "markdown":
        sys.stdout.write(render_markdown())
    else:
        from .catalog_doc import catalog_rows
        from .terminal import catalog_table, stdout_colour

        sys.stdout.write(catalog_table(catalog_rows(), colour=stdout_colour()) + "\n")
    return 0


def _cmd_schema(_args: argparse.Namespace) -> int:
    from .schema import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")
    return 0


def _cmd_monitors(args: argparse.Namespace) -> int:
    from graffer_secevents._errors import ConfigurationError

    from .monitors import build_monitors, to_terraform

    try:
        monitors = build_monitors(
            args.service,
            env=args.env,
            failure_ratio=args.failure_ratio,
            min_attempts=args.min_attempts,
            window=args.window,
            spike_count=args.spike_count,
            unknown_user_count=args.unknown_user_count,
            dropped_count=args.dropped_count,
            notify=args.notify,
        )
        if args.format == "json":
            text = json.dumps(monitors, indent=2) + "\n"
        else:
            text = to_terraform(monitors, json_syntax=args.format == "terraform-json")
    except ConfigurationError as exc:
        sys.stderr.write(f"{PROG} monitors: {exc}\n")
        return 2
    sys.stdout.write(text)
    return 0


def _cmd_rules(args: argparse.Namespace) -> int:
    from graffer_secevents._errors import ConfigurationError

    if args.check is not None:
        return _check_rules_file(args.check, as_json=args.format == "json")
    from . import dashboard, logs_metrics, rules
    from .terraform import to_hcl, to_terraform_json

    what = {"rules", "metrics", "dashboard"} if args.what == "all" else {args.what}
    try:
        built: dict[str, Any] = {}
        if "rules" in what:
            params = rules.parse_settings(args.set)
            built["rules"] = rules.build_rules(service=args.service, env=args.env, only=args.only, **params)
        if "metrics" in what:
            built["logs_metrics"] = logs_metrics.build_logs_metrics(service=args.service, env=args.env)
        if "dashboard" in what:
            built["dashboard"] = dashboard.build_dashboard(service=args.service, env=args.env)
        if args.format in (None, "json"):
            value = next(iter(built.values())) if len(built) == 1 else built
            text = json.dumps(value, indent=2, ensure_ascii=False) + "\n"
        else:
            resources = [
                *rules.rule_resources(built.get("rules", [])),
                *logs_metrics.metric_resources(built.get("logs_metrics", [])),
                *([dashboard.dashboard_resource(built["dashboard"])] if "dashboard" in built else []),
            ]
            text = to_terraform_json(resources) if args.format == "terraform-json" else to_hcl(resources)
    except ConfigurationError as exc:
        sys.stderr.write(f"{PROG} rules: {exc}\n")
        return 2
    sys.stdout.write(text)
    return 0


def _check_rules_file(path: str, *, as_json: bool) -> int:
    from .rule_check import check_rules

    name = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as stream:
                data = stream.read()
    except OSError as exc:
        sys.stderr.write(f"{PROG} rules --check: cannot read {_safe(name)}: {_safe(exc.strerror or exc)}\n")
        return 2
    findings = check_rules(data)
    if as_json:
        found = [{"rule": f.rule, "path": f.path, "message": f.message} for f in findings]
        sys.stdout.write(json.dumps({"file": name, "ok": not findings, "findings": found}, indent=2) + "\n")
    else:
        _print_findings(name, [str(f) for f in findings])
        count = len(findings)
        verdict = f"{count} finding{'s' if count != 1 else ''}" if count else "ok"
        sys.stdout.write(f"{_safe(name)}: {verdict}\n")
    return 1 if findings else 0


def _print_findings(name: str, findings: list[str]) -> None:
    """Each finding, but findings that differ only in their line number (a binary file: every line "not
    JSON") are shown `MAX_SAME_FINDING` times, then counted."""
    import re

    seen: dict[str, int] = {}
    for finding in findings:
        shape = re.sub(r"\bline \d+", "line N", finding)
        seen[shape] = seen.get(shape, 0) + 1
        if seen[shape] <= MAX_SAME_FINDING:
            sys.stdout.write(f"{_safe(name)}: {_safe(finding)}\n")
    for shape, count in seen.items():
        if count > MAX_SAME_FINDING:
            sys.stdout.write(f"{_safe(name)}: ... and {count - MAX_SAME_FINDING} more like: {_safe(shape)}\n")


def _cmd_tail(args: argparse.Namespace) -> int:
    from .tail import main_tail

    try:
        return main_tail(args.file, args.events_only)
    except OSError as exc:
        name = "<stdin>" if args.file == "-" else args.file
        sys.stderr.write(f"{PROG} tail: cannot read {_safe(name)}: {_safe(exc.strerror or exc)}\n")
        return EXIT_USAGE


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import run_doctor

    return run_doctor(args.app, args.format, sys.stdout)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(raw=args.json)
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors also point at the documentation (sub-commands inherit it)."""

    def error(self, message: str) -> Never:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n{PROG}: see {docs_url('cli.md')}\n")


def _add_local_commands(commands: Any) -> None:
    """`tail` and `doctor`: what a developer runs on their own machine."""
    tail = commands.add_parser(
        "tail",
        help="show each security record as one readable, coloured line (kubectl logs ... | secevents tail)",
    )
    tail.add_argument("file", metavar="FILE", nargs="?", default="-", help="JSON lines (default - : stdin)")
    tail.add_argument(
        "--events-only", action="store_true", help="drop the lines that are not security records"
    )
    tail.set_defaults(handler=_cmd_tail)

    doctor = commands.add_parser(
        "doctor",
        help="show the configuration in force, where each value came from, the active integrations and "
        "what the library would warn about",
    )
    doctor.add_argument("--app", metavar="MODULE", default=None, help="import this module first (your app)")
    doctor.add_argument("--format", choices=("text", "json"), default="text")
    doctor.set_defaults(handler=_cmd_doctor)


def build_parser() -> argparse.ArgumentParser:
    """The `secevents` argument parser (one sub-command per action)."""
    from graffer_secevents import __version__

    parser = _Parser(
        prog=PROG,
        description="Check, list and monitor the security events of graffer_secevents.",
        epilog=_EPILOG.format(url=docs_url()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s (graffer_secevents) {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.set_defaults(command_parsers=commands.choices)  # each command's parser, for its usage errors

    validate = commands.add_parser(
        "validate",
        help="check security records in JSON-lines logs against the schema and the catalog",
        description="Read JSON lines (files or - for stdin; other log lines are counted and skipped) and "
        "check every security record against the record schema and the event catalog. Exit status 1 when a "
        "record is invalid, 2 when a file cannot be read, else 0.",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="a file of JSON lines, or - for stdin")
    validate.add_argument("--format", choices=("text", "json"), default="text", help="output (default text)")
    validate.add_argument(
        "--strict",
        action="store_true",
        help="also count records whose input was coerced (they carry secevents.errors) as invalid",
    )
    validate.add_argument(
        "-v", "--verbose", action="store_true", help="also list records whose input was coerced"
    )
    validate.add_argument(
        "--max-line-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_LINE_BYTES,
        metavar="N",
        help=f"longer lines are not read into memory (default {DEFAULT_MAX_LINE_BYTES})",
    )
    add_allow_empty(validate)
    validate.set_defaults(handler=_cmd_validate)

    catalog = commands.add_parser(
        "catalog",
        help="list every event type",
        description="List every event type with its category, evt.name, level, outcome rule and parameters.",
    )
    catalog.add_argument(
        "--format", choices=("table", "json", "markdown"), default="table", help="output (default table)"
    )
    catalog.set_defaults(handler=_cmd_catalog)

    schema = commands.add_parser("schema", help="print the JSON Schema of a security record")
    schema.set_defaults(handler=_cmd_schema)

    monitors = commands.add_parser(
        "monitors",
        help="generate Datadog monitors for a service's login metrics",
        description="Datadog monitors on secevents.login.attempts and secevents.dropped: failed-login ratio, "
        "failure spike, failures against unknown accounts, dropped events. JSON bodies for "
        "POST /api/v1/monitor, or Terraform datadog_monitor resources.",
    )
    monitors.add_argument("--service", required=True, help="the service tag (DD_SERVICE) to watch")
    monitors.add_argument("--env", default=None, help="the env tag to scope to (default: every env)")
    monitors.add_argument(
        "--format",
        choices=("json", "terraform", "terraform-json"),
        default="json",
        help="output (default json)",
    )
    monitors.add_argument(
        "--failure-ratio",
        type=float,
        default=0.2,
        metavar="R",
        help="critical ratio, 0 < R < 1 (default 0.2)",
    )
    monitors.add_argument(
        "--min-attempts", type=int, default=20, metavar="N", help="attempts needed before the ratio alerts"
    )
    monitors.add_argument(
        "--window", default="last_15m", help="evaluation window, last_<n>m|h|d|w (default last_15m)"
    )
    monitors.add_argument(
        "--spike-count", type=int, default=100, metavar="N", help="failed logins in the window (default 100)"
    )
    monitors.add_argument(
        "--unknown-user-count",
        type=int,
        default=50,
        metavar="N",
        help="failed logins to accounts that do not exist (default 50)",
    )
    monitors.add_argument(
        "--dropped-count", type=int, default=1, metavar="N", help="dropped events in the window (default 1)"
    )
    monitors.add_argument(
        "--notify",
        action="extend",
        nargs="+",
        default=[],
        metavar="HANDLE",
        help="notification handles, e.g. @slack-security @pagerduty-auth (repeatable)",
    )
    monitors.set_defaults(handler=_cmd_monitors)

    rules = commands.add_parser(
        "rules",
        help="generate Cloud SIEM detection rules, log-based metrics and a dashboard, or check rule JSON",
        description="Detection rules derived from the event catalog (see detection-rules.md in the "
        "documentation), log-based "
        "metrics and a review dashboard, as Datadog API JSON, datadog_* Terraform (HCL) or Terraform JSON. "
        "With --check FILE, validate rule JSON (one rule, a list, or one rule per line) against the "
        "constraints Datadog enforces: exit 1 on findings, 2 on a usage error.",
    )
    rules.add_argument(
        "--format",
        choices=("json", "terraform", "terraform-json"),
        default=None,
        help="output (default json; with --check, text unless json is asked for)",
    )
    rules.add_argument("--service", default=None, help="scope every query to this service and tag with it")
    rules.add_argument("--env", default=None, help="scope every query to this env and tag with it")
    rules.add_argument(
        "--what",
        choices=("rules", "metrics", "dashboard", "all"),
        default="rules",
        help="what to generate (default rules)",
    )
    rules.add_argument(
        "--only", action="append", default=None, metavar="RULE", help="generate only this rule (repeatable)"
    )
    rules.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="RULE.PARAM=VALUE",
        help="override a rule parameter, e.g. brute_force.failures=20 (repeatable)",
    )
    rules.add_argument("--check", metavar="FILE", default=None, help="validate rule JSON (- for stdin)")
    rules.set_defaults(handler=_cmd_rules)

    _add_local_commands(commands)  # tail, doctor

    demo = commands.add_parser(
        "demo",
        help="serve the example shop on 127.0.0.1, attack it, show each event and the signals it raises",
    )
    demo.add_argument("--json", action="store_true", help="print the records as JSON lines (for jq, files)")
    demo.set_defaults(handler=_cmd_demo)

    from .detect.commands import add_commands as add_detect_commands
    from .verify import add_verify_command

    add_detect_commands(commands)  # `detect` and `report`
    add_verify_command(commands)  # `verify`
    return parser


def _unknown_arguments(
    parsers: dict[str, argparse.ArgumentParser], command: str, unknown: list[str]
) -> Never:
    """A usage error from the command's own parser (its usage, not the top level's), with the closest option
    of that command for each misspelt one (`--fial-on` -> `--fail-on`)."""
    import difflib
    import re

    sub = parsers[command]
    options = re.findall(r"--?[\w-]+", sub.format_usage())
    shown: list[str] = []
    for arg in unknown:
        close = difflib.get_close_matches(arg.split("=", 1)[0], options, n=1, cutoff=0.6)
        shown.append(f"{arg} (did you mean {close[0]}?)" if arg.startswith("-") and close else arg)
    sub.error("unrecognized arguments: " + " ".join(shown))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `secevents` console script; returns the exit status."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _unknown_arguments(args.command_parsers, args.command, unknown)
    try:
        result: int = args.handler(args)
        sys.stdout.flush()
        if result == EXIT_USAGE:
            sys.stderr.write(f"{PROG}: see {docs_url('cli.md')} ({EXIT_STATUSES})\n")
    except BrokenPipeError:
        # The reader went away (`secevents catalog | head`): no traceback, and none at interpreter exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
