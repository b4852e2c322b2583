# ruff: noqa: S608 - the SQL is built from column names this module makes and literals quoted by _sql_text
"""The columnar path of `secevents detect`: the same `Replay` as the streaming engine, computed with DuckDB.

Exact by construction, not by re-implementation:

- **Reading.** DuckDB reads an uncompressed file starting with `{` itself, with every thread: its rows keep
  the file's order (`preserve_insertion_order`), so row `rowid` is line `rowid + 1`, which is checked by the
  rows accounting for every byte of the file. Other files (gzip, CR line ends, not UTF-8...) Python reads as
  `loading.read_logs` does (line numbers, over-long lines, gzip, directories). A line that is one plain JSON
  object (starts with `{`, ends with `}`, valid UTF-8, no
  CloudTrail `Records`, no archive `attributes`) goes to DuckDB as it is; every other line goes through
  `loading`'s own code and its records (re-serialised by orjson) join the others. DuckDB hands back to the
  same Python code every line its JSON reading might read differently from orjson: invalid for it, a
  repeated top-level key (orjson keeps the last, DuckDB's paths the first), `NaN`/`Infinity`, trailing
  commas, exponents, integers of 19 digits or more, surrogate escapes, deep nesting.
- **Semantics on distinct values.** DuckDB extracts, per record, the JSON text of each top-level key a
  rule can read (for `@a.b.c`: `a`, `a.b`, `a.b.c`, the flattened spellings the getters also read). Per
  role (a rule's queries and filters, one query's group-by, one query's aggregated field, the date
  attributes, the security-record test) Python runs the real matcher, `_group_key`, `_contribution`,
  `timestamp_of` and `_is_security_record` once per distinct projection, rebuilt as a small dict: a getter
  reading only those keys gets the same value from it as from the whole record.
- **Order.** The streaming engine replays in (time, read order); when a record is more than `max_delay`
  behind an earlier one (the only case where records could be late) the caller replays with the streaming
  engine instead.
- **Windows in SQL.** Per rule and group-by key, each counted contribution is a row ordered by (time,
  read order, query). The streaming window after record r holds the group's contributions newer than the
  cutoff (`t_r - window`; a window of 0: the same instant) pushed up to r: a ROWS frame from the first row
  past the cutoff to the last row of r (same-instant later records excluded, as the stream has not pushed
  them yet). Aggregates per query: count, count of distinct values, max. Without `--explain`, windows are
  computed only for the groups whose values over all their events hold a case: Datadog's conditions
  compare a query with `>` or `>=` only, so they grow with the values, and a window's count, distinct
  count and maximum never exceed the whole group's. The cases are the rule's compiled
  conditions, run in Python on each distinct tuple of values, and the hits go, in order, to the real
  `_Signals`, which opens, folds, escalates and closes signals as the streaming engine does.

Rules it does not compute (`streamed`): other than threshold, `sum` (the stream's running float total is
not an SQL sum), a window shorter than a millisecond; the streaming engine replays them over the same files
afterwards, into the same `Replay`. Not eligible at all (`Unsupported`, the caller streams): no rule it
computes, a geo lookup the rules need, stdin.

Narrowing: a role whose function reads `@usr.exists` is given the top-level key `usr`, which differs on
every account by its `id`; with more than `_NARROW_FROM` distinct projections, each object is first cut
down in SQL to the members the role's paths can reach (`_narrow_sql`), so the function runs once per
distinct narrowed projection.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

from .compiler import CompiledQuery, CompiledRule, compile_rule, condition_grows
from .engine import (
    _DATE_KEYS,
    _ENV,
    Replay,
    _contribution,
    _group_key,
    _needs_geo,
    _passes,
    _required,
    _Signals,
    check_and_compile,
    timestamp_of,
)
from .loading import LineCounts, _expand, _maybe_gzip, _read_stream, lines_of
from .query import getter_path, paths_read

if TYPE_CHECKING:
    import duckdb

__all__ = ["Unsupported", "available", "columnar_replay", "ineligible", "streamed"]

AGGREGATIONS: Final = ("count", "cardinality", "max")
_MIN_WINDOW: Final = 1e-3
_SECURITY_KEYS: Final = ("logger", "evt", "logger.name", "evt.type")
# What DuckDB's JSON reader accepts and orjson refuses or reads otherwise: such lines go to Python. Each
# pattern starts with one literal byte, which RE2 finds with memchr; one pattern starting with a class of
# three bytes made RE2 step its automaton over every byte, at 2.3 times the cost of these four.
_ODD_VALUE: Final = (
    r"[-+]?(?:[Nn][Aa][Nn]|[Ii][Nn][Ff])"  # NaN, Infinity
    r"|-?[0-9]+(?:\.[0-9]*)?[eE]"  # a number with an exponent (1e400)
    r"|-?[0-9]{19}"  # an integer beyond 64 bits
)
_SUSPICIOUS: Final = (
    rf":\s*(?:{_ODD_VALUE})",
    rf"\[\s*(?:{_ODD_VALUE})",
    rf",\s*(?:[\]}}]|{_ODD_VALUE})",  # and trailing commas
    r"\\[uU][dD][89a-fA-F]",  # surrogate escapes
)
"""Conservative: a string holding `:1e5` sends its line to Python too, which costs time, never exactness."""
_PLAIN_KEY: Final = re.compile(r"[A-Za-z0-9_@-]+")
_CSV: Final = (
    "delim = '\x01', quote = '', escape = '', header = false, auto_detect = false, new_line = '\\n', "
    "compression = 'none', max_line_size = 8388608, buffer_size = 33554432"
)
"""One VARCHAR per line, as it is."""
_DEEP: Final = 1000
"""A line with more `{` and `[` than this goes to Python: it may be nested beyond orjson's depth limit
(1024), which DuckDB does not have."""
_ISO_UTC: Final = (
    r'"[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]'
    r'(\.[0-9]{3}|\.[0-9]{6})?Z"'
)
_EXACT_US: Final = 2**53


@dataclass(frozen=True)
class Unsupported:
    """The columnar path does not apply (the reason, for `--engine columnar`'s note)."""

    reason: str


def available() -> bool:
    """Whether DuckDB can be imported (`pip install 'graffer-secevents[detect-scale]'`)."""
    import importlib.util

    return importlib.util.find_spec("duckdb") is not None


def _top_keys(path: str) -> list[str]:
    """The top-level keys a getter for `path` can read: `a`, `a.b`, `a.b.c` for `a.b.c`."""
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@dataclass
class _Plan:
    """One eligible rule: the top-level keys of each role."""

    rule: CompiledRule
    match_keys: list[str]
    group_keys: list[list[str]]
    value_keys: list[list[str]]
    match_paths: list[str]


def _compiled(rules: Iterable[Mapping[str, Any]]) -> list[tuple[CompiledRule, Mapping[str, Any]]]:
    given: Iterable[Any] = [rules] if isinstance(rules, Mapping) else rules
    raw = [cast("Mapping[str, Any]", r) for r in given]
    check_and_compile(raw)  # the streaming engine's checks and messages
    pairs: list[tuple[CompiledRule, Mapping[str, Any]]] = []
    for one in raw:
        compiled = compile_rule(one)
        if compiled is not None:
            pairs.append((compiled, one))
    return pairs


def ineligible(
    rules: Sequence[CompiledRule], sources: Sequence[str], *, geo_given: bool = False
) -> str | None:
    """Why the columnar path cannot replay these rules over these sources, `None` when it can: when at
    least one rule is one it computes (`streamed` says which others the streaming engine replays
    alongside)."""
    if any(source == "-" for source in sources):
        return "stdin cannot be read twice (the columnar path may hand over to the streaming engine)"
    if geo_given and _needs_geo(list(rules)):
        return "the rules read GeoIP attributes added from a lookup"
    reasons = [streamed(rule) for rule in rules]
    if reasons and all(reason is not None for reason in reasons):
        return reasons[0] if len(reasons) == 1 else f"no rule it computes ({reasons[0]}, ...)"
    return None


def streamed(rule: CompiledRule) -> str | None:
    """Why the columnar engine leaves `rule` to the streaming engine, `None` when it computes it."""
    if rule.method != "threshold":
        return f"rule {rule.rule_id!r} uses the {rule.method} method (columnar: threshold rules)"
    for query in rule.queries:
        if query.aggregation not in AGGREGATIONS:
            kinds = ", ".join(AGGREGATIONS)
            return f"rule {rule.rule_id!r} aggregates with {query.aggregation} (columnar: {kinds})"
    if 0 < rule.window < _MIN_WINDOW:
        return f"rule {rule.rule_id!r} has a window under {_MIN_WINDOW} s"
    return None


def _plan(rule: CompiledRule, raw: Mapping[str, Any]) -> _Plan:
    match: list[str] = []
    read: list[str] = []
    for query in rule.queries:
        for path in paths_read(query.text):
            match.extend(_top_keys(path))
            read.append(path)
    filters = raw.get("filters")
    if isinstance(filters, list):
        for item in cast("list[object]", filters):
            text = cast("Mapping[str, Any]", item).get("query", "") if isinstance(item, Mapping) else ""
            for path in paths_read(text if isinstance(text, str) else ""):
                match.extend(_top_keys(path))
                read.append(path)
    groups: list[list[str]] = []
    values: list[list[str]] = []
    for query in rule.queries:
        groups.append(sorted({k for name, _ in query.group_by for k in _top_keys(name)}))
        keys: set[str] = set()
        for get in (*query.distinct, *query.metrics):
            found = getter_path(get)
            if found is None:  # pragma: no cover - every compiled getter is an attribute_getter
                raise RuntimeError("a getter without a path")
            keys.update(_top_keys(found))
        values.append(sorted(keys))
    return _Plan(rule, sorted(set(match)), groups, values, sorted(set(read)))


@dataclass
class ColumnarResult:
    replay: Replay
    counts: LineCounts


def columnar_replay(
    rules: Iterable[Mapping[str, Any]],
    sources: Sequence[str],
    counts: LineCounts,
    names: list[str],
    *,
    describe: Callable[[Any], str],
    explain: bool = False,
    max_delay: float = 600.0,
    geo_given: bool = False,
    threads: int | None = None,
    memory_limit: str = "2GB",
) -> Replay | Unsupported:
    """Replay threshold `rules` over `sources` as `replay_stream(Engine(rules), read_logs(sources))` would,
    with DuckDB; `Unsupported` when it cannot (then `counts` and `names` are left as they were given).
    The rules it does not compute (`streamed`) are replayed by the streaming engine over the same sources
    afterwards, and both replays make one.
    DuckDB uses `threads` (default: every CPU) and at most `memory_limit`, beyond which it spills to a
    temporary directory removed afterwards.

    Raises:
        DetectError: a rule Datadog would refuse or the engine cannot evaluate (as the streaming engine).
        OSError: a file cannot be read.
        ImportError: DuckDB is not installed.
    """
    pairs = _compiled(rules)
    compiled = [rule for rule, _ in pairs]
    reason = ineligible(compiled, sources, geo_given=geo_given)
    if reason is not None:
        return Unsupported(reason)
    import duckdb

    plans = [_plan(rule, raw) for rule, raw in pairs if streamed(rule) is None]
    others = [raw for rule, raw in pairs if streamed(rule) is not None]
    mine = LineCounts()
    named = len(names)
    with tempfile.TemporaryDirectory(prefix="secevents-columnar-") as tmp:
        con = duckdb.connect(config={"threads": threads or os.cpu_count() or 1})
        try:
            con.execute("SET temp_directory = ?", [os.path.join(tmp, "spill")])
            con.execute("SET preserve_insertion_order = false")
            con.execute(f"SET memory_limit = '{memory_limit}'")
            run = _Run(con, tmp, plans, mine, names, describe, explain, max_delay)
            result = run.replay(sources)
        except duckdb.Error as exc:  # DuckDB itself failed (out of disk for spilling...): say so, stream
            result = Unsupported(f"DuckDB failed ({type(exc).__name__}: {str(exc)[:200]})")
        except BaseException:
            del names[named:]
            raise
        finally:
            con.close()
    if isinstance(result, Unsupported):
        del names[named:]
        return result
    if others:
        _stream_the_others(result, others, sources, describe=describe, explain=explain, max_delay=max_delay)
    for field in ("lines", "records", "security", "not_json", "not_security", "blank", "files"):
        setattr(counts, field, getattr(counts, field) + getattr(mine, field))
    result.rules = compiled
    return result


def _stream_the_others(
    result: Replay,
    rules: list[Mapping[str, Any]],
    sources: Sequence[str],
    *,
    describe: Callable[[Any], str],
    explain: bool,
    max_delay: float,
) -> None:
    """The streaming engine's replay of `rules` over `sources`, added to `result`. The sources are read
    again in the same order, so a record's reference (file index, line) names the same line."""
    from .engine import Engine, replay_stream
    from .loading import read_logs

    theirs = replay_stream(
        Engine(rules, explain=explain, describe=describe),
        read_logs(sources, LineCounts(), []),
        max_delay=max_delay,
    )
    result.signals.extend(theirs.signals)
    result.signals.sort(key=lambda s: (s.first_seen, s.rule_id, sorted(s.group.items())))
    result.geo_unresolved += theirs.geo_unresolved
    result.best.update(theirs.best)


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _json_path(key: str) -> str:
    return "$." + '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Run:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        tmp: str,
        plans: list[_Plan],
        counts: LineCounts,
        names: list[str],
        describe: Callable[[Any], str],
        explain: bool,
        max_delay: float,
    ) -> None:
        self.con = con
        self.tmp = tmp
        self.plans = plans
        self.counts = counts
        self.names = names
        self.describe = describe
        self.explain = explain
        self.max_delay = max_delay
        keys: dict[str, None] = {}
        for key in ("timestamp", *(k for path in _DATE_KEYS for k in _top_keys(path)), "env"):
            keys[key] = None
        for key in _SECURITY_KEYS:
            keys[key] = None
        for plan in plans:
            for key in (*plan.match_keys, *(k for g in plan.group_keys for k in g)):
                keys[key] = None
            for group in plan.value_keys:
                for key in group:
                    keys[key] = None
        self.keys = list(keys)
        self.column = {key: f"c{i}" for i, key in enumerate(self.keys)}
        self.time_keys = list(dict.fromkeys(k for path in _DATE_KEYS for k in _top_keys(path)))
        self.made = 0
        setting = con.execute("SELECT current_setting('threads')").fetchone()
        self.threads = int(setting[0]) if setting else 1
        self.paths = "[" + ", ".join(_sql_text(_json_path(k)) for k in self.keys) + "]"
        self.parts: list[tuple[str, str]] = []
        """The parsed lines: (table, SELECT of seq, f, n, ok, x, j), one per file DuckDB read itself and
        one of the lines Python wrote for it."""
        self.string_columns: dict[str, str] = {}
        self.string_sql: dict[str, str] = {}
        for plan in plans:
            for query in plan.rule.queries:
                wanted = [name for name, _ in query.group_by]
                if query.aggregation == "cardinality" and len(query.distinct) == 1:
                    wanted.append(getter_path(query.distinct[0]) or "")
                for path in wanted:
                    sql = self._plain_string_sql(path) if path not in self.string_columns else None
                    if sql is not None:
                        name = self.string_columns[path] = f"s{len(self.string_columns)}"
                        self.string_sql[name] = sql
        self.maps: dict[tuple[Any, ...], str] = {}
        # Python-read records: (seq, file, line, json, security)
        self.extra: list[tuple[int, int, int, str, bool]] = []

    # --- reading -------------------------------------------------------------------------------------

    def read(self, sources: Sequence[str]) -> str:
        """Read every line; plain object lines go to a file for DuckDB (`seq \\x01 file \\x01 line \\x01
        json`), the others through `loading`'s code into `self.extra`."""
        import orjson

        counts = self.counts
        out_path = os.path.join(self.tmp, "lines.txt")
        seq = 0
        extra = self.extra
        dumps = orjson.dumps
        with open(out_path, "wb", buffering=1 << 20) as out:
            write = out.write
            for source in sources:
                for path in _expand(source):
                    counts.files += 1
                    index = len(self.names)
                    self.names.append(path)
                    lines = self._direct(path, index, seq)
                    if lines:  # DuckDB read the file itself: line n is row n
                        counts.lines += lines
                        seq += lines
                        continue
                    with open(path, "rb", buffering=1 << 20) as raw:
                        for number, line in enumerate(lines_of(_maybe_gzip(raw)), 1):
                            body = line[:-1] if line[-1:] == b"\n" else line
                            if (
                                body[:1] == b"{"
                                and body[-1:] == b"}"
                                and b"\r" not in body
                                and b"\x01" not in body
                                and b'"Records"' not in body
                                and b'"attributes"' not in body
                                and (body.isascii() or _utf8(body))
                            ):
                                counts.lines += 1
                                write(b"%d\x01%d\x01%d\x01" % (seq << _SUB, index, number))
                                write(body)
                                write(b"\n")
                                seq += 1
                                continue
                            self._python_line(line, index, number, seq << _SUB, counts, dumps, extra)
                            seq += 1
        self.next_seq = seq
        return out_path

    def _direct(self, path: str, index: int, first: int) -> int:
        """Let DuckDB read a file itself (in parallel) when it starts with `{`: the number of lines, or 0
        (nothing read) when DuckDB cannot read it line for line. Its rows keep the file's order
        (`preserve_insertion_order`), so row `rowid` is line `rowid + 1`, which holds when the rows account
        for every byte of the file (a line DuckDB skipped or split would not). Which lines are plain
        `{...}` objects is decided afterwards, for every line alike."""
        import duckdb

        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            if handle.read(1) != b"{":
                return 0
            handle.seek(-1, os.SEEK_END)
            ends_with_newline = handle.read(1) == b"\n"
        con = self.con
        table = f"part{index}"
        con.execute("SET preserve_insertion_order = true")
        try:
            source = f"read_csv({_sql_text(path)}, {_CSV}, columns = {{'j': 'VARCHAR'}})"
            con.execute(f"CREATE TEMP TABLE {table} AS {self._parse(source, '')}")
            row = con.execute(f"SELECT count(*), sum(b + 1) FROM {table}").fetchone()
        except duckdb.Error:  # not UTF-8, a line beyond DuckDB's limit...: the reader below decides
            row = None
        finally:
            con.execute("SET preserve_insertion_order = false")
        if row is None or not row[0] or row[1] != size + (0 if ends_with_newline else 1):
            con.execute(f"DROP TABLE IF EXISTS {table}")
            return 0
        self.parts.append(
            (table, f"SELECT ({first} + rowid) * {1 << _SUB} AS seq, {index} AS f, rowid + 1 AS n, ok, x, j")
        )
        return int(row[0])

    def _parse(self, source: str, carried: str) -> str:
        """A SELECT that parses each line `j` of `source` once, in the reading pipeline (in parallel, keeping
        the order): `ok` when it is one plain JSON object DuckDB reads as orjson does, `x` its projected
        top-level keys, `j` kept only when not `ok` (Python reads that line), `b` its bytes. `carried`:
        columns of `source` to keep (`seq, f, n, `)."""
        from graffer_secevents._tools.loglines import DEFAULT_MAX_LINE_BYTES

        brackets = "length(j) - length(replace(replace(j, '{', ''), '[', ''))"
        deep = f"(CASE WHEN strlen(j) > {_DEEP} THEN {brackets} > {_DEEP} ELSE false END)"
        odd = " AND ".join(f"NOT regexp_matches(j, {_sql_text(p)})" for p in _SUSPICIOUS)
        return f"""
            WITH v AS (
                SELECT {carried}j, j LIKE '{{%}}' AND NOT contains(j, '"Records"')
                       AND NOT contains(j, '"attributes"') AND NOT contains(j, chr(13))
                       AND strlen(j) <= {DEFAULT_MAX_LINE_BYTES}
                       AND {odd} AND NOT {deep} AS clean
                FROM {source}),
            k AS (SELECT {carried}j, CASE WHEN clean THEN try(json_keys(j)) END AS keys,
                         CASE WHEN clean THEN try(json_extract(j, {self.paths})) END AS x FROM v),
            o AS (SELECT {carried}j, x,
                         coalesce(len(keys) = len(list_distinct(keys)) AND x IS NOT NULL, false) AS ok FROM k)
            SELECT {carried}ok, CASE WHEN ok THEN x END AS x, CASE WHEN NOT ok THEN j END AS j,
                   coalesce(strlen(j), 0) AS b
            FROM o"""

    @staticmethod
    def _python_line(
        line: bytes,
        index: int,
        number: int,
        seq: int,
        counts: LineCounts,
        dumps: Callable[[Any], bytes],
        extra: list[tuple[int, int, int, str, bool]],
    ) -> int:
        """One line through `loading`'s own code (prefixes, CloudTrail, archives, anything else)."""
        from graffer_secevents._tools.loglines import _is_security_record

        for record, _ref in _read_stream(io.BytesIO(line), counts, index):
            extra.append((seq, index, number, dumps(record).decode(), _is_security_record(record)))
            seq += 1
        return seq

    # --- the replay ----------------------------------------------------------------------------------

    def replay(self, sources: Sequence[str]) -> Replay | Unsupported:
        path = self.read(sources)
        con = self.con

        if os.path.getsize(path):
            source = (
                f"read_csv({_sql_text(path)}, {_CSV}, "
                "columns = {'seq': 'BIGINT', 'f': 'INTEGER', 'n': 'BIGINT', 'j': 'VARCHAR'})"
            )
            con.execute(f"CREATE TEMP TABLE written AS {self._parse(source, 'seq, f, n, ')}")
            self.parts.append(("written", "SELECT seq, f, n, ok, x, j"))
        parts = [f"{select} FROM {table}" for table, select in self.parts] or [
            "SELECT NULL::BIGINT AS seq, NULL::INTEGER AS f, NULL::BIGINT AS n, false AS ok, "
            "NULL::JSON[] AS x, NULL::VARCHAR AS j WHERE false"
        ]
        con.execute(f"CREATE TEMP VIEW parsed AS {' UNION ALL '.join(parts)}")
        self._python_lines()
        self._records(self.paths)
        if self._out_of_order():
            return Unsupported(f"records more than --max-delay ({self.max_delay:g} s) out of order")
        result = Replay(explain=self.explain)
        row = con.execute(
            "SELECT count(*) FILTER (WHERE t IS NOT NULL), count(*) FILTER (WHERE t IS NULL), "
            "count(*) FILTER (WHERE sec) FROM recs"
        ).fetchone()
        assert row is not None
        result.records, result.no_timestamp = int(row[0]), int(row[1])
        self.counts.records += int(row[0]) + int(row[1]) - len(self.extra)
        self.counts.security += int(row[2]) - sum(1 for e in self.extra if e[4])
        for plan in self.plans:
            _RuleRun(self, plan, result).run()
        result.signals.sort(key=lambda s: (s.first_seen, s.rule_id, sorted(s.group.items())))
        return result

    def _python_lines(self) -> None:
        """The lines DuckDB might read otherwise than orjson: through `loading`'s code (one line yields at
        most one record: a CloudTrail or archive line never took the plain path)."""
        import orjson

        from graffer_secevents._tools.loglines import DEFAULT_MAX_LINE_BYTES

        rows = self.con.execute("SELECT seq, f, n, j FROM parsed WHERE NOT ok ORDER BY seq").fetchall()
        for seq, index, number, text in rows:
            here = LineCounts()
            line = (
                b"\x00"
                if text is not None and len(text.encode()) > DEFAULT_MAX_LINE_BYTES
                else (text or "").encode()
            )
            self._python_line(line + b"\n", index, number, seq, here, orjson.dumps, self.extra)
            self.counts.records += here.records
            self.counts.security += here.security
            self.counts.not_json += here.not_json
            self.counts.not_security += here.not_security
            self.counts.blank += here.blank

    def _records(self, paths: str) -> None:
        con = self.con
        extra = self.extra
        con.execute("CREATE TEMP TABLE extra (seq BIGINT, f INTEGER, n BIGINT, j VARCHAR, sec BOOLEAN)")
        if extra:
            con.execute(
                "INSERT INTO extra SELECT unnest($1::BIGINT[]), unnest($2::INTEGER[]), unnest($3::BIGINT[]), "
                "unnest($4::VARCHAR[]), unnest($5::BOOLEAN[])",
                [
                    [e[0] for e in extra],
                    [e[1] for e in extra],
                    [e[2] for e in extra],
                    [e[3] for e in extra],
                    [e[4] for e in extra],
                ],
            )
        columns = ", ".join(
            f"coalesce(x[{i + 1}]::VARCHAR, '') AS {self.column[k]}" for i, k in enumerate(self.keys)
        )
        ts = self.column["timestamp"]
        fast = (
            f"CASE WHEN regexp_full_match({ts}, {_sql_text(_ISO_UTC)}) THEN "
            f"epoch_us(try_cast(substr({ts}, 2, length({ts}) - 3) AS TIMESTAMP)) END"
        )
        strings = "".join(f", {sql} AS {name}" for name, sql in self.string_sql.items())
        con.execute(
            f"""CREATE TEMP TABLE proj_t AS
            SELECT * EXCLUDE (us), CASE WHEN abs(us) < {_EXACT_US}
                   THEN CAST(us AS DOUBLE) / CAST(1000000 AS DOUBLE) END AS t_fast
            FROM (SELECT *, {fast} AS us{strings} FROM (
                SELECT seq, f, n, sec, {columns} FROM (
                    SELECT seq, f, n, NULL::BOOLEAN AS sec, x FROM parsed WHERE ok
                    UNION ALL SELECT seq, f, n, sec, json_extract(j, {paths}) AS x FROM extra)))"""
        )
        con.execute("DROP VIEW parsed; DROP TABLE extra")
        for table, _ in self.parts:
            con.execute(f"DROP TABLE {table}")
        time_cols = [self.column[k] for k in self.time_keys]

        def moment(record: dict[str, Any]) -> float | None:
            return timestamp_of(record)

        t_map = self.distinct("proj_t", self.time_keys, moment, "DOUBLE", where="t_fast IS NULL")

        def security(record: dict[str, Any]) -> bool:
            from graffer_secevents._tools.loglines import _is_security_record

            return _is_security_record(record)

        s_map = self.distinct("proj_t", list(_SECURITY_KEYS), security, "BOOLEAN", where="sec IS NULL")
        t_join = " AND ".join(f"p.{c} = tm.{c}" for c in time_cols)
        s_join = " AND ".join(f"p.{self.column[k]} = sm.{self.column[k]}" for k in _SECURITY_KEYS)
        con.execute(
            f"""CREATE TEMP TABLE recs AS
            SELECT p.* EXCLUDE (t_fast, sec), coalesce(p.t_fast, tm.v) AS t, coalesce(p.sec, sm.v) AS sec
            FROM proj_t p LEFT JOIN {t_map} tm ON p.t_fast IS NULL AND {t_join}
            LEFT JOIN {s_map} sm ON p.sec IS NULL AND {s_join}"""
        )
        con.execute("DROP TABLE proj_t")

    def distinct(
        self,
        table: str,
        keys: list[str],
        function: Callable[[dict[str, Any]], Any],
        sql_type: str,
        *,
        where: str = "true",
        cache: tuple[Any, ...] | None = None,
        paths: Sequence[str] = (),
    ) -> str:
        """A table of each distinct projection of `keys` in `table` (the columns) and `v`: `function` of
        the projection rebuilt as a record (its keys that are present, parsed by orjson).

        `paths`: what `function` reads. When there are many distinct projections, each object is first
        narrowed to the members those paths can reach (`_narrow_sql`) and `function` runs once per distinct
        narrowed projection (`@usr.exists` reads `usr`, whose `id` makes it differ on every account)."""
        con = self.con
        cols = [self.column[k] for k in keys]
        if cache is not None and cache in self.maps:
            return self.maps[cache]
        name = f"d{self.made}"
        self.made += 1
        if cache is not None:
            self.maps[cache] = name
        if not cols:
            con.execute(f"CREATE TEMP TABLE {name} AS SELECT $1::{sql_type} AS v", [function({})])
            return name
        select = ", ".join(cols)
        narrowed: dict[str, str] = {}
        for key, column in zip(keys, cols, strict=True):
            remainders = _remainders(key, paths)
            if remainders and () not in remainders:
                narrowed[column] = _narrow_sql(column, remainders)
        if not narrowed:
            self._map(name, keys, cols, f"{table} WHERE {where}", function, sql_type)
            return name
        con.execute(f"CREATE OR REPLACE TEMP TABLE dd AS SELECT DISTINCT {select} FROM {table} WHERE {where}")
        count = con.execute("SELECT count(*) FROM dd").fetchone()
        if not count or count[0] <= _NARROW_FROM:
            self._map(name, keys, cols, "dd", function, sql_type)
            return name
        picks = ", ".join(f"{narrowed.get(c, c)} AS m{i}" for i, c in enumerate(cols))
        con.execute(f"CREATE OR REPLACE TEMP TABLE dn AS SELECT *, {picks} FROM dd")
        narrow = [f"m{i}" for i in range(len(cols))]
        self._map("dm", keys, narrow, "dn", function, sql_type)
        con.execute(
            f"CREATE TEMP TABLE {name} AS SELECT {', '.join('dn.' + c for c in cols)}, dm.v "
            f"FROM dn JOIN dm ON {_on('dn', 'dm', narrow)}"
        )
        con.execute("DROP TABLE dm; DROP TABLE dn")
        return name

    def _map(
        self,
        name: str,
        keys: list[str],
        cols: list[str],
        source: str,
        function: Callable[[dict[str, Any]], Any],
        sql_type: str,
    ) -> None:
        """`name`: the distinct `cols` of `source` (a table, with its WHERE clause if any; the texts of
        `keys`) and `v`, `function` of each."""
        import orjson

        loads = orjson.loads
        rows = self.con.execute(f"SELECT DISTINCT {', '.join(cols)} FROM {source}").fetchall()
        results: list[Any] = []
        for row in rows:
            record = {key: loads(text) for key, text in zip(keys, row, strict=True) if text}
            results.append(function(record))
        params: list[Any] = (
            [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in cols]
        )
        params.append(results)
        unnest = ", ".join(f"unnest(${i + 1}::VARCHAR[]) AS {c}" for i, c in enumerate(cols))
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} AS "
            f"SELECT {unnest}, unnest(${len(cols) + 1}::{sql_type}[]) AS v",
            params,
        )

    def plain_string(self, path: str, prefix: str) -> str | None:
        """The column holding `_plain_string_sql(path)`, `None` when the path has none."""
        name = self.string_columns.get(path)
        return None if name is None else prefix + name

    def _plain_string_sql(self, path: str) -> str | None:
        """SQL for the string an attribute getter returns from `record[a][b][c]` (path `a.b.c`), NULL when
        that is not a string reached straight down (then the getter's other readings may apply: Python
        decides). Exact: the first key's JSON text (minified by DuckDB) names each deeper key of the path
        once, so no repeated key can make DuckDB's path (first) and orjson (last) disagree."""
        parts = path.split(".")
        if not all(_PLAIN_KEY.fullmatch(part) for part in parts) or parts[0] not in self.column:
            return None
        column = f"nullif({self.column[parts[0]]}, '')"
        if len(parts) == 1:
            return f"CASE WHEN json_type({column}) = 'VARCHAR' THEN json_extract_string({column}, '$') END"
        where = "$." + ".".join(f'"{part}"' for part in parts[1:])
        once = " AND ".join(
            f"length({column}) - length(replace({column}, '\"{part}\":', '')) = {len(part) + 3}"
            for part in parts[1:]
        )
        return (
            f"CASE WHEN {once} AND json_type({column}, '{where}') = 'VARCHAR' "
            f"THEN json_extract_string({column}, '{where}') END"
        )

    def _out_of_order(self) -> bool:
        """Whether some record is more than `max_delay` behind an earlier one: only then can the streaming
        engine find records late, so only then is its order not (time, read order)."""
        if math.isinf(self.max_delay):
            return False
        row = self.con.execute(
            """SELECT count(*) FROM (
                SELECT t, max(t) OVER (ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                       AS newest
                FROM recs WHERE t IS NOT NULL) WHERE t < newest - $1::DOUBLE""",
            [self.max_delay],
        ).fetchone()
        return bool(row and row[0])


_SUB: Final = 21
"""`seq` is the line's position << 21 (+ the record's within a CloudTrail line): read order, room for any
line's records."""


def _utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_NONE: Final = float("nan")


class _RuleRun:
    """One threshold rule over `recs`: contributions, windows, cases, hits."""

    def __init__(self, run: _Run, plan: _Plan, result: Replay) -> None:
        self.run_ = run
        self.plan = plan
        self.rule = plan.rule
        self.result = result
        # One group-by field: the key is its text (scalar partitions are cheaper); else a list of texts.
        self.scalar = len(plan.rule.queries[0].group_by) == 1
        self.key_type = "VARCHAR" if self.scalar else "VARCHAR[]"

    def run(self) -> None:  # noqa: PLR0915 - one rule's SQL, step by step
        run, rule, plan, con = self.run_, self.rule, self.plan, self.run_.con
        queries = rule.queries
        from .engine import _Query

        matchers = [_Query(q.matcher) for q in queries]

        def mask(record: dict[str, Any]) -> int:
            if rule.filters and not _passes(rule, record):
                return 0
            bits = 0
            for i, m in enumerate(matchers):
                if m.matcher(record):
                    bits |= 1 << i
            return bits

        m_map = run.distinct(
            "recs", plan.match_keys, mask, "BIGINT", where="t IS NOT NULL", paths=plan.match_paths
        )
        joins = [f"LEFT JOIN {m_map} mm ON " + _on("r", "mm", [run.column[k] for k in plan.match_keys])]
        selects = ["r.t", "r.seq", "r.f", "r.n", f"r.{run.column['env']} AS env", "mm.v AS mask"]
        for q, query in enumerate(queries):
            fast = self._fast_key(query, "")
            g_map = run.distinct(
                "recs",
                plan.group_keys[q],
                functools.partial(self._group_of, query),
                self.key_type,
                where="t IS NOT NULL" + (f" AND ({fast}) IS NULL" if fast else ""),
                cache=("group", tuple(name for name, _ in query.group_by), query.optional_group_by),
                paths=[name for name, _ in query.group_by],
            )
            joins.append(
                f"LEFT JOIN {g_map} g{q} ON " + _on("r", f"g{q}", [run.column[k] for k in plan.group_keys[q]])
            )
            fast_r = self._fast_key(query, "r.")
            selects.append(f"coalesce({fast_r}, g{q}.v) AS k{q}" if fast_r else f"g{q}.v AS k{q}")
            if query.aggregation == "count":
                selects.append(f"NULL::VARCHAR AS vi{q}, NULL::DOUBLE AS vd{q}, true AS ok{q}")
                continue
            sql_type = "VARCHAR" if query.aggregation == "cardinality" else "DOUBLE"
            fast = self._fast_value(query, "")
            v_map = run.distinct(
                "recs",
                plan.value_keys[q],
                functools.partial(self._value, query),
                sql_type,
                where="t IS NOT NULL" + (f" AND ({fast}) IS NULL" if fast else ""),
                cache=(
                    "value",
                    query.aggregation,
                    tuple(getter_path(g) for g in (*query.distinct, *query.metrics)),
                ),
                paths=[getter_path(g) or "" for g in (*query.distinct, *query.metrics)],
            )
            joins.append(
                f"LEFT JOIN {v_map} v{q} ON " + _on("r", f"v{q}", [run.column[k] for k in plan.value_keys[q]])
            )
            fast_r = self._fast_value(query, "r.")
            value = f"coalesce({fast_r}, v{q}.v)" if fast_r else f"v{q}.v"
            if sql_type == "VARCHAR":
                selects.append(f"{value} AS vi{q}, NULL::DOUBLE AS vd{q}, {value} IS NOT NULL AS ok{q}")
            else:
                selects.append(f"NULL::VARCHAR AS vi{q}, {value} AS vd{q}, {value} IS NOT NULL AS ok{q}")
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE rr AS SELECT {', '.join(selects)} FROM recs r {' '.join(joins)} "
            "WHERE r.t IS NOT NULL AND mm.v <> 0"
        )
        parts = [
            f"SELECT t, seq, f, n, env, {q} AS qi, k{q} AS key, vi{q} AS vi, vd{q} AS vd FROM rr "
            f"WHERE (mask & {1 << q}) <> 0 AND k{q} IS NOT NULL AND ok{q}"
            for q in range(len(queries))
        ]
        con.execute(f"CREATE OR REPLACE TEMP TABLE u AS {' UNION ALL '.join(parts)}")
        if not self.run_.explain:
            self._prune()
        window = rule.window
        if window > 0:
            before = (
                "count(*) OVER (PARTITION BY key ORDER BY t RANGE BETWEEN UNBOUNDED PRECEDING AND "
                f"CAST({window!r} AS DOUBLE) PRECEDING)"
            )
        else:
            before = "rank() OVER (PARTITION BY key ORDER BY t) - 1"
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE w AS
            SELECT *, row_number() OVER p AS rn, {before} AS before,
                   (lead(seq) OVER p) IS DISTINCT FROM seq AS last_of_record
            FROM u WINDOW p AS (PARTITION BY key ORDER BY t, seq, qi)"""
        )
        aggregates: list[str] = []
        for q, query in enumerate(queries):
            aggregates.append(f"count(*) FILTER (WHERE qi = {q}) OVER fr AS n{q}")
            if query.aggregation == "count":
                aggregates.append(f"CAST(count(*) FILTER (WHERE qi = {q}) OVER fr AS DOUBLE) AS a{q}")
            elif query.aggregation == "cardinality":
                aggregates.append(
                    f"CAST(count(DISTINCT vi) FILTER (WHERE qi = {q}) OVER fr AS DOUBLE) AS a{q}"
                )
            else:
                aggregates.append(f"max(vd) FILTER (WHERE qi = {q}) OVER fr AS a{q}")
        joined = len(queries) > 1
        count = "count(DISTINCT seq) OVER fr" if joined else "count(*) OVER fr"
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE ev AS
            SELECT key, t, seq, f, n, env, rn, before, last_of_record, {", ".join(aggregates)},
                   min(t) OVER fr AS first, {count} AS cnt
            FROM w WINDOW fr AS (PARTITION BY key ORDER BY t, seq, qi
                                 ROWS BETWEEN (rn - 1 - before) PRECEDING AND CURRENT ROW)"""
        )
        nq = len(queries)
        values = ", ".join(f"CASE WHEN n{q} > 0 THEN a{q} END AS a{q}" for q in range(nq))
        required = () if self.run_.explain else _required(rule)
        gate = " AND ".join(f"n{q} > 0" for q in required) or "true"
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE evals AS
            SELECT key, t, seq, f, n, env, rn, before, first, cnt, {values} FROM ev
            WHERE last_of_record AND {gate}"""
        )
        if self.run_.explain:
            self._best(nq)
        self._hits(nq)

    def _prune(self) -> None:
        """Keep in `u` only the groups whose values over all their events hold a case: exact when every case
        condition grows with the values (`condition_grows`), as a window's count, distinct count and
        maximum never exceed the whole group's. Most groups of an archive never come near a threshold, so
        the windows are computed for a few. (A `NaN` maximum counts as infinite here: SQL orders it above
        every number, so a window without it has a smaller maximum.)"""
        rule = self.rule
        if any(case.condition is None or not condition_grows(case.text) for case in rule.cases):
            return
        if any(query.aggregation == "cardinality" for query in rule.queries):
            self._prune_by(exact=False)  # first by counts, which bound distinct counts from above: cheaper
        self._prune_by(exact=True)

    def _prune_by(self, *, exact: bool) -> None:
        rule, con = self.rule, self.run_.con
        nq = len(rule.queries)
        aggregates: list[str] = []
        for q, query in enumerate(rule.queries):
            if query.aggregation == "count" or (query.aggregation == "cardinality" and not exact):
                total = f"CAST(count(*) FILTER (WHERE qi = {q}) AS DOUBLE)"
            elif query.aggregation == "cardinality":
                total = f"CAST(count(DISTINCT vi) FILTER (WHERE qi = {q}) AS DOUBLE)"
            else:
                total = (
                    f"max(CASE WHEN isnan(vd) THEN 'Infinity'::DOUBLE ELSE vd END) FILTER (WHERE qi = {q})"
                )
            aggregates.append(f"CASE WHEN count(*) FILTER (WHERE qi = {q}) > 0 THEN {total} END AS a{q}")
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE totals AS SELECT key, {', '.join(aggregates)} FROM u GROUP BY key"
        )
        cols = [f"a{q}" for q in range(nq)]
        tuples = con.execute(f"SELECT DISTINCT {', '.join(cols)} FROM totals").fetchall()
        aliases = [q.alias for q in rule.queries]
        holding = [
            row
            for row in tuples
            if any(
                case.condition is not None
                and case.condition(
                    dict(zip(aliases, (None if v is None else float(v) for v in row), strict=True))
                )
                for case in rule.cases
            )
        ]
        if len(holding) == len(tuples):
            return
        params: list[Any] = [[_NONE if r[q] is None else float(r[q]) for r in holding] for q in range(nq)]
        unnest = ", ".join(f"unnest(${q + 1}::DOUBLE[]) AS a{q}" for q in range(nq))
        con.execute(f"CREATE OR REPLACE TEMP TABLE kept AS SELECT {unnest}", params)
        on = " AND ".join(f"coalesce(t.a{q}, 'NaN'::DOUBLE) = k.a{q}" for q in range(nq))
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE u AS SELECT * FROM u
            WHERE key IN (SELECT t.key FROM totals t JOIN kept k ON {on})"""
        )

    def _key(self, key: Any) -> tuple[str, ...]:
        return (key,) if self.scalar else tuple(key)

    def _group_of(self, query: CompiledQuery, record: dict[str, Any]) -> str | list[str] | None:
        key = _group_key(query, record)
        if key is None:
            return None
        return key[0] if self.scalar else list(key)

    def _value(self, query: CompiledQuery, record: dict[str, Any]) -> Any:
        counts, value = _contribution(query, record)
        if not counts:
            return None
        if query.aggregation == "cardinality":  # a text per distinct value: "s" + a string, "t" + a tuple
            if isinstance(value, str):
                return "s" + value
            return "t" + json.dumps(list(cast("tuple[str, ...]", value)))
        return value

    def _fast_key(self, query: CompiledQuery, prefix: str) -> str | None:
        """SQL for `_group_key` when every group-by value is a non-empty string read straight down its path
        (NULL otherwise: Python decides); `None` when the fields do not allow it."""
        if not query.group_by:
            return None
        texts = [self.run_.plain_string(name, prefix) for name, _ in query.group_by]
        if any(text is None for text in texts):
            return None
        parts = [f"nullif({text}, '')" for text in texts]
        if self.scalar:
            return parts[0]
        present = " AND ".join(f"{p} IS NOT NULL" for p in parts)
        return f"CASE WHEN {present} THEN list_value({', '.join(parts)}) END"

    def _fast_value(self, query: CompiledQuery, prefix: str) -> str | None:
        """SQL for `_contribution` of a cardinality over one field holding a string (NULL otherwise)."""
        if query.aggregation != "cardinality" or len(query.distinct) != 1:
            return None
        path = getter_path(query.distinct[0])
        text = self.run_.plain_string(path, prefix) if path is not None else None
        return None if text is None else f"'s' || {text}"

    def _best(self, nq: int) -> None:
        cols = ", ".join(f"max(a{q})" for q in range(nq))
        best = self.result.best[self.rule.rule_id] = {}
        aliases = [q.alias for q in self.rule.queries]
        rows = self.run_.con.execute(
            f"SELECT key, min(t), min(seq), {cols} FROM evals GROUP BY key ORDER BY 2, 3"
        ).fetchall()
        for row in rows:
            best[self._key(row[0])] = {
                alias: float(value)
                for alias, value in zip(aliases, row[3:], strict=True)
                if value is not None
            }

    def _hits(self, nq: int) -> None:
        rule = self.rule
        con = self.run_.con
        aliases = [q.alias for q in rule.queries]
        cols = [f"a{q}" for q in range(nq)]
        tuples = con.execute(f"SELECT DISTINCT {', '.join(cols)} FROM evals").fetchall()
        holding: list[tuple[Any, ...]] = []
        cases: list[int] = []
        for row in tuples:
            values = dict(zip(aliases, (None if v is None else float(v) for v in row), strict=True))
            for c, case in enumerate(rule.cases):
                if case.condition is not None and case.condition(values):
                    holding.append(row)
                    cases.append(c)
                    break
        if not holding:
            return
        params: list[Any] = [[_NONE if r[q] is None else float(r[q]) for r in holding] for q in range(nq)]
        params.append(cases)
        unnest = ", ".join(f"unnest(${q + 1}::DOUBLE[]) AS a{q}" for q in range(nq))
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE holds AS SELECT {unnest}, unnest(${nq + 1}::INTEGER[]) AS c",
            params,
        )
        on = " AND ".join(f"coalesce(e.a{q}, 'NaN'::DOUBLE) = h.a{q}" for q in range(nq))
        hits = con.execute(
            f"""SELECT e.key, e.t, e.seq, e.f, e.n, e.env, e.rn, e.before, e.first, e.cnt, h.c,
                   {", ".join("e." + c for c in cols)}
            FROM evals e JOIN holds h ON {on} ORDER BY e.t, e.seq, e.key"""
        ).fetchall()
        import orjson

        envs: dict[str, Any] = {}

        def env_of(text: str) -> Any:
            if text not in envs:
                envs[text] = _ENV({"env": orjson.loads(text)} if text else {})
            return envs[text]

        # Pass 1: which hits open a signal (the decision reads times and keys only).
        probe = _Signals(rule, self.run_.describe)
        openings: list[int] = []
        for i, hit in enumerate(hits):
            key, now, _seq, f, n, env, _rn, _before, first, cnt, c = hit[:11]

            def mark(i: int = i) -> tuple[dict[str, float], list[Any], str]:
                openings.append(i)
                return {}, [], ""

            probe.hit(self._key(key), now, c, first, cnt, env_of(env), mark, (f, n))
        refs = self._refs([hits[i] for i in openings], openings)
        signals = _Signals(rule, self.run_.describe)
        for i, hit in enumerate(hits):
            key, now, _seq, f, n, env, _rn, _before, first, cnt, c = hit[:11]
            shown = {
                alias: (float(v) if v is not None else 0.0)
                for alias, v in zip(aliases, hit[11:], strict=True)
            }

            def explain(
                i: int = i, shown: dict[str, float] = shown
            ) -> tuple[dict[str, float], list[Any], str]:
                return shown, refs.get(i, []), ""

            signals.hit(self._key(key), now, c, first, cnt, env_of(env), explain, (f, n))
        self.result.signals.extend(signals.finish())

    def _refs(self, hits: list[tuple[Any, ...]], ids: list[int]) -> dict[int, list[Any]]:
        """The contributing records of each opening hit: the window's entries sorted by time (stable by
        query then push order), deduplicated, the first `EXPLAIN_RECORDS`."""
        from .engine import EXPLAIN_RECORDS

        if not hits:
            return {}
        con = self.run_.con
        con.execute(
            "CREATE OR REPLACE TEMP TABLE openings AS SELECT unnest($1::BIGINT[]) AS oid, "
            f"unnest($2::{self.key_type}[]) AS key, unnest($3::BIGINT[]) AS lo, unnest($4::BIGINT[]) AS hi",
            [ids, [h[0] for h in hits], [h[7] + 1 for h in hits], [h[6] for h in hits]],
        )
        rows = con.execute(
            f"""SELECT oid, f, n FROM (
                SELECT oid, f, n, min(pos) AS first FROM (
                    SELECT o.oid, w.f, w.n,
                           row_number() OVER (PARTITION BY o.oid ORDER BY w.t, w.qi, w.seq) AS pos
                    FROM openings o JOIN w ON w.key = o.key AND w.rn BETWEEN o.lo AND o.hi)
                GROUP BY oid, f, n)
            QUALIFY row_number() OVER (PARTITION BY oid ORDER BY first) <= {EXPLAIN_RECORDS}
            ORDER BY oid, first"""
        ).fetchall()
        found: dict[int, list[Any]] = {}
        for oid, f, n in rows:
            found.setdefault(oid, []).append((f, n))
        return found


def _on(left: str, right: str, cols: list[str]) -> str:
    return " AND ".join(f"{left}.{c} = {right}.{c}" for c in cols) or "true"


_NARROW_FROM: Final = 4096
"""Distinct projections beyond which objects are narrowed first (below, it costs more than it saves)."""


def _remainders(key: str, paths: Sequence[str]) -> set[tuple[str, ...]]:
    """What each path reads inside top-level `key` (`()`: the whole value)."""
    depth = len(key.split("."))
    return {tuple(path.split(".")[depth:]) for path in paths if path == key or path.startswith(key + ".")}


_NARROW_KEY: Final = re.compile(r"[A-Za-z0-9_@.$-]+")
_NARROW_DEPTH: Final = 2
"""Levels rebuilt (deeper members are kept whole): each level repeats its text in the SQL."""


def _narrow_sql(text: str, remainders: set[tuple[str, ...]], depth: int = 0) -> str:
    """SQL for the JSON text `text` (minified by DuckDB) keeping only the members an attribute getter
    reading each remainder of path can reach: `r[0]` (then `r[1:]`) and the dotted `r[0].….r[j-1]` (then
    `r[j:]`), as `query._walk` looks them up. Exact or untouched: an object is rebuilt only when it holds no
    repeated key (DuckDB's path reads the first of two, orjson keeps the last; both compare keys decoded,
    so `"\\u0065xists"` is `exists` to both); a member kept whole is its JSON text as DuckDB gives it
    (repeated keys inside it included, for orjson to read as it would). Anything else (an array, a scalar,
    a repeated key) stays as it is, which only costs more distinct values."""
    children: dict[str, set[tuple[str, ...]]] = {}
    for rest in remainders:
        for j in range(1, len(rest) + 1):
            children.setdefault(".".join(rest[:j]), set()).add(rest[j:])
    if depth >= _NARROW_DEPTH or not all(_NARROW_KEY.fullmatch(key) for key in children):
        return text
    value = f"nullif({text}, '')"
    keys = sorted(children)
    json_paths = ", ".join("'$.\"" + key + "\"'" for key in keys)
    got = f"json_extract({value}, [{json_paths}])"
    members: list[str] = []
    for i, key in enumerate(keys):
        inner = f"{got}[{i + 1}]::VARCHAR"
        if () not in children[key]:
            inner = _narrow_sql(inner, children[key], depth + 1)
        members.append("'\"" + key + "\":' || " + inner)
    keys_of = f"json_keys({value})"
    return (
        f"CASE WHEN json_type({value}) = 'OBJECT' "
        f"AND len({keys_of}) = len(list_distinct({keys_of})) "
        f"THEN '{{' || concat_ws(',', {', '.join(members)}) || '}}' ELSE {text} END"
    )
