"""`secevents verify FILE|-`: what a log of security records says about its own completeness.

Every record carries its writer's identity (`secevents.writer`, one per process and fork) and a gap-free
number (`secevents.seq`, from 1 per writer and output); a writer that stopped cleanly wrote an end record
(`secevents.end`) after its last one; a record written after a loss says how many were lost
(`secevents.dropped_before`). From those, per writer: the numbers missing (a kill -9 is not one of them:
what was queued then was never numbered; it shows as *no clean end*), numbers seen twice or out of order,
the counted drops, and whether it ended cleanly. Lines that are not JSON records are counted and listed.

With `--key` (the `integrity_key` the records were written with), each record's `secevents.chain` is
checked: an HMAC-SHA256 over the previous record's chain value of the same writer and this record's bytes up
to its chain. A record altered, deleted, reordered or inserted breaks the chain at that place.
"""

# Parsed JSON is walked as Any-typed containers; each value is checked at run time where it is used.
# pyright: reportUnknownArgumentType=false, reportUnknownVariableType=false, reportUnknownMemberType=false

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from .gates import add_allow_empty, no_records_gate

__all__ = ["Report", "WriterReport", "verify_lines"]

_CHAIN: Final = b',"chain":"'
_MAX_LISTED: Final = 20


@dataclass
class WriterReport:
    """What the records of one writer show."""

    writer: str
    records: int = 0
    first_seq: int = 0
    last_seq: int = 0
    missing: list[tuple[int, int]] = field(default_factory=list[tuple[int, int]])
    """Runs of numbers never seen, as (first, last)."""
    repeated: list[int] = field(default_factory=list[int])
    out_of_order: list[int] = field(default_factory=list[int])
    counted_drops: int = 0
    clean_end: bool = False
    chain_breaks: list[int] = field(default_factory=list[int])
    """The numbers of the records whose chain value did not match (with a key)."""
    unchained: int = 0
    """Records without a chain value (with a key)."""
    seen: set[int] = field(default_factory=set[int], repr=False)
    prev_chain: bytes = field(default=b"", repr=False)

    @property
    def missing_count(self) -> int:
        return sum(last - first + 1 for first, last in self.missing)

    def problems(self) -> bool:
        return bool(
            self.missing or self.repeated or self.out_of_order or not self.clean_end or self.chain_breaks
        ) or bool(self.unchained)

    def as_dict(self) -> dict[str, Any]:
        return {
            "writer": self.writer,
            "records": self.records,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "missing": [list(run) for run in self.missing],
            "missing_count": self.missing_count,
            "repeated": self.repeated,
            "out_of_order": self.out_of_order,
            "counted_drops": self.counted_drops,
            "clean_end": self.clean_end,
            "chain_breaks": self.chain_breaks,
            "unchained": self.unchained,
        }


@dataclass
class Report:
    """What a whole log shows: per writer, and the lines that are not records."""

    writers: dict[str, WriterReport] = field(default_factory=dict[str, WriterReport])
    unparseable: list[int] = field(default_factory=list[int])
    """Line numbers (from 1) of lines that are not JSON objects."""
    unsequenced: int = 0
    """JSON records without a writer and number (written by an older version, or by something else)."""
    lines: int = 0
    keyed: bool = False

    def ok(self) -> bool:
        return not self.unparseable and not any(w.problems() for w in self.writers.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok(),
            "lines": self.lines,
            "unparseable": len(self.unparseable),
            "unparseable_lines": self.unparseable[:_MAX_LISTED],
            "unsequenced": self.unsequenced,
            "chain_checked": self.keyed,
            "writers": [w.as_dict() for w in self.writers.values()],
        }

    def text(self) -> str:
        out: list[str] = []
        for w in self.writers.values():
            head = f"writer {w.writer}: {w.records} records, seq {w.first_seq}..{w.last_seq}"
            out.append(head)
            for first, last in w.missing[:_MAX_LISTED]:
                n = last - first + 1
                out.append(f"  missing: seq {first}..{last} ({n} record{'s' if n != 1 else ''})")
            if len(w.missing) > _MAX_LISTED:
                out.append(f"  ... and {len(w.missing) - _MAX_LISTED} more runs missing")
            if w.repeated:
                out.append(f"  seen more than once: seq {_listed(w.repeated)}")
            if w.out_of_order:
                out.append(f"  out of order: seq {_listed(w.out_of_order)}")
            if w.counted_drops:
                out.append(f"  dropped by the writer and counted (dropped_before): {w.counted_drops}")
            if self.keyed:
                if w.chain_breaks:
                    out.append(f"  chain broken at: seq {_listed(w.chain_breaks)}")
                if w.unchained:
                    out.append(f"  records without a chain value: {w.unchained}")
                if not w.chain_breaks and not w.unchained:
                    out.append("  chain: intact")
            if w.clean_end:
                out.append("  ended cleanly (end record after its last record)")
            else:
                out.append(
                    f"  no clean end after seq {w.last_seq}: still running, or killed (kill -9, OOM); "
                    "what it had queued then was never numbered and cannot be counted"
                )
        if self.unparseable:
            shown = ", ".join(str(n) for n in self.unparseable[:_MAX_LISTED])
            more = "" if len(self.unparseable) <= _MAX_LISTED else ", ..."
            out.append(f"unparseable lines: {len(self.unparseable)} (line {shown}{more})")
        if self.unsequenced:
            out.append(f"records without secevents.writer/seq: {self.unsequenced}")
        out.append(f"{self.lines} lines, {len(self.writers)} writers: " + ("OK" if self.ok() else "PROBLEMS"))
        return "\n".join(out)


def _listed(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:_MAX_LISTED])
    return shown + (", ..." if len(numbers) > _MAX_LISTED else "")


def verify_lines(lines: Iterable[bytes], key: bytes | None = None) -> Report:
    """Check a log, line by line (each a record as written, with or without its newline)."""
    report = Report(keyed=key is not None)
    for number, raw in enumerate(lines, 1):
        report.lines = number
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            report.unparseable.append(number)
            continue
        meta = record.get("secevents") if isinstance(record, dict) else None
        if not isinstance(record, dict):
            report.unparseable.append(number)
            continue
        writer_id = meta.get("writer") if isinstance(meta, dict) else None
        seq = meta.get("seq") if isinstance(meta, dict) else None
        if not isinstance(writer_id, str) or type(seq) is not int or not isinstance(meta, dict):
            report.unsequenced += 1
            continue
        writer = report.writers.get(writer_id)
        if writer is None:
            writer = report.writers[writer_id] = WriterReport(writer_id, first_seq=seq)
        _add(writer, seq, meta, line, key)
    for writer in report.writers.values():
        _close(writer)
    return report


def _add(writer: WriterReport, seq: int, meta: dict[str, Any], line: bytes, key: bytes | None) -> None:
    writer.records += 1
    if seq in writer.seen:
        writer.repeated.append(seq)
    elif seq < writer.last_seq:
        writer.out_of_order.append(seq)
    writer.seen.add(seq)
    writer.last_seq = max(writer.last_seq, seq)
    writer.first_seq = min(writer.first_seq, seq)
    dropped_before = meta.get("dropped_before")
    if type(dropped_before) is int and dropped_before > 0:
        writer.counted_drops += dropped_before
    writer.clean_end = meta.get("end") is True and seq == writer.last_seq
    if key is not None:
        _check_chain(writer, seq, line, key)


def _check_chain(writer: WriterReport, seq: int, line: bytes, key: bytes) -> None:
    at = line.rfind(_CHAIN)
    claimed = line[at + len(_CHAIN) : at + len(_CHAIN) + 64] if at >= 0 else b""
    if at < 0 or len(claimed) != 64 or line[at + len(_CHAIN) + 64 :] != b'"}}':
        writer.unchained += 1
        return
    body = line[:at]
    expected = hmac.digest(key, writer.prev_chain + b"\n" + body + b"}}", "sha256").hex().encode()
    if not hmac.compare_digest(expected, claimed):
        writer.chain_breaks.append(seq)
    writer.prev_chain = claimed  # one altered record breaks its own link only


def _close(writer: WriterReport) -> None:
    """The runs of numbers missing between 1 and the last one seen."""
    runs: list[tuple[int, int]] = []
    expected = 1
    for seq in sorted(writer.seen):
        if seq > expected:
            runs.append((expected, seq - 1))
        expected = seq + 1
    writer.missing = runs


# --- the command ------------------------------------------------------------------------------------------


def add_verify_command(commands: Any) -> None:
    """Register `secevents verify` on the CLI's sub-command parsers."""
    verify = commands.add_parser(
        "verify",
        help="check a log for missing, repeated, reordered or altered records, per writer",
        description="Read the records of a log (a file, or - for stdin) as written and report, per writer "
        "(secevents.writer: one per process), the sequence numbers missing, repeated or out of order, the "
        "drops the writer counted, whether it ended cleanly, and the lines that are not records. With --key "
        "(or SECEVENTS_INTEGRITY_KEY), also check each record's chain value. Exit status 0 when nothing is "
        "wrong, 1 when something is, 2 when the file cannot be read, 3 when it holds no numbered record "
        "(--allow-empty accepts that).",
    )
    verify.add_argument("file", metavar="FILE", help="a file of JSON lines, or - for stdin")
    verify.add_argument(
        "--key",
        default=None,
        help="the integrity key the records were written with (default: SECEVENTS_INTEGRITY_KEY, if set)",
    )
    verify.add_argument("--format", choices=("text", "json"), default="text", help="output (default text)")
    add_allow_empty(verify)
    verify.set_defaults(handler=_cmd_verify)


def _cmd_verify(args: Any) -> int:
    import json
    import os
    import sys

    key_text = args.key if args.key is not None else os.environ.get("SECEVENTS_INTEGRITY_KEY") or None
    key = key_text.encode("utf-8") if key_text else None
    try:
        if args.file == "-":
            report = verify_lines(sys.stdin.buffer, key)
        else:
            with open(args.file, "rb") as stream:
                report = verify_lines(stream, key)
    except OSError as exc:
        sys.stderr.write(f"secevents verify: cannot read {args.file}: {exc.strerror or exc}\n")
        return 2
    if args.format == "json":
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(report.text() + "\n")
    if not report.ok():
        return 1
    # No numbered record at all (an empty input, the wrong log): a gate fails, as validate and detect do.
    return no_records_gate("verify", len(report.writers), args.allow_empty) or 0
