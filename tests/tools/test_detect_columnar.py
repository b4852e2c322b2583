"""The columnar engine (DuckDB) against the streaming engine on files: the same `Replay` and `LineCounts`
whatever the lines hold, same-instant bursts, the hand-over to the streaming engine, and the CLI."""

from __future__ import annotations

import gzip
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from detect_helpers import replay_as_dicts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graffer_secevents._tools.cli import main
from graffer_secevents._tools.detect.columnar import Unsupported, columnar_replay
from graffer_secevents._tools.detect.compiler import condition_grows
from graffer_secevents._tools.detect.engine import Engine, Replay, replay_stream, timestamp_of
from graffer_secevents._tools.detect.loading import LineCounts, read_logs

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="microseconds").replace("+00:00", "Z")


def threshold(
    query: str = "@evt.outcome:failure",
    *,
    group_by: list[str] | None = None,
    aggregation: str = "count",
    distinct: list[str] | None = None,
    metrics: list[str] | None = None,
    condition: str = "a >= 3",
    window: float = 300,
    more: list[dict[str, Any]] | None = None,
    cases: list[dict[str, Any]] | None = None,
    optional: bool = False,
) -> dict[str, Any]:
    return {
        "name": "columnar",
        "message": "m",
        "tags": ["secevents_rule:columnar"],
        "queries": [
            {
                "query": query,
                "aggregation": aggregation,
                "groupByFields": ["@usr.id"] if group_by is None else group_by,
                "distinctFields": distinct or [],
                "metrics": metrics or [],
                "hasOptionalGroupByFields": optional,
            },
            *(more or []),
        ],
        "cases": cases or [{"status": "medium", "condition": condition}],
        "options": {"evaluationWindow": window, "keepAlive": 600, "maxSignalDuration": 3600},
    }


def both(
    rules: list[dict[str, Any]], sources: list[str], *, explain: bool = True, max_delay: float = 600.0
) -> tuple[dict[str, Any], LineCounts]:
    """Both engines over the same files: the replays (as dicts) and line counts must be identical."""
    names_s: list[str] = []
    counts_s = LineCounts()

    def describe_s(ref: Any) -> str:
        return f"{names_s[ref[0]]}:{ref[1]}"

    streamed = replay_stream(
        Engine(rules, explain=explain, describe=describe_s),
        read_logs(sources, counts_s, names_s),
        max_delay=max_delay,
    )
    names_c: list[str] = []
    counts_c = LineCounts()
    columnar = columnar_replay(
        rules,
        sources,
        counts_c,
        names_c,
        describe=lambda ref: f"{names_c[ref[0]]}:{ref[1]}",
        explain=explain,
        max_delay=max_delay,
    )
    assert isinstance(columnar, Replay), columnar
    assert replay_as_dicts(columnar) == replay_as_dicts(streamed)
    assert counts_c == counts_s
    assert names_c == names_s
    return replay_as_dicts(columnar), counts_c


def line(seconds: float, user: str = "42", outcome: str = "failure", **extra: Any) -> bytes:
    record: dict[str, Any] = {
        "timestamp": iso(seconds),
        "evt": {"name": "authentication", "outcome": outcome},
        "usr": {"id": user},
    }
    record.update(extra)
    return orjson.dumps(record) + b"\n"


def test_every_kind_of_line_is_read_as_the_streaming_reader_reads_it(tmp_path: Path) -> None:
    lines = [
        line(0),
        b"\n",
        b"   \n",
        b"not json at all\n",
        b"2026-01-01T00:00:01Z stdout F " + line(1),  # a kubectl prefix
        b"[1, 2]\n",
        b'{"timestamp": "' + iso(2).encode() + b'", "evt": {"outcome": "failure"}, "usr": {"id": "42"}}\r\n',
        # a repeated key: orjson keeps the last (DuckDB's paths would read the first)
        b'{"usr": {"id": "7"}, "timestamp": "' + iso(3).encode() + b'", "evt": {"outcome": "failure"}, '
        b'"usr": {"id": "42"}}\n',
        b'{"timestamp": "' + iso(4).encode() + b'", "evt": {"outcome": "failure"}, "usr": {"id": "42"}, '
        b'"x": NaN}\n',  # orjson refuses NaN: not JSON
        b'{"timestamp": "' + iso(5).encode() + b'", "evt": {"outcome": "failure"}, "usr": {"id": "42"},}\n',
        b'{"timestamp": "'
        + iso(6).encode()
        + b'", "evt": {"outcome": "failure"}, "usr": {"id": "\xc3\xa9"}}\n',
        b'{"timestamp": "' + iso(7).encode() + b'", "evt": {"outcome": "failure"}, "usr": {"id": "\xff"}}\n',
        b'{"timestamp": "'
        + iso(8).encode()
        + b'", "evt": {"outcome": "failure"}, "usr": {"id": "\\u00e9"}}\n',
        b'{"timestamp": "'
        + iso(9).encode()
        + b'", "evt": {"outcome": "failure"}, "n": 123456789012345678901}\n',
        b'{"timestamp": 1767225610, "evt": {"outcome": "failure"}, "usr": {"id": "42"}}\n',  # epoch seconds
        b'{"timestamp": 1767225611000, "evt": {"outcome": "failure"}, "usr": {"id": "42"}}\n',  # epoch ms
        b'{"@timestamp": "2026-01-01T00:00:12+00:00", "evt": {"outcome": "failure"}, "usr": {"id": "42"}}\n',
        b'{"timestamp": "2026-02-30T00:00:00Z", "evt": {"outcome": "failure"}, "usr": {"id": "42"}}\n',
        b'{"timestamp": "2026-01-01T00:00:13.123456789Z", "evt": {"outcome": "failure"}, "usr": {"id": "42"}}\n',
        b'{"Records": [' + line(14).strip() + b", " + line(15).strip() + b"]}\n",  # CloudTrail
        b'{"_id": "x", "date": "' + iso(16).encode() + b'", "tags": ["env:prod"], '
        b'"attributes": {"evt": {"outcome": "failure"}, "usr": {"id": "42"}}}\n',  # a Datadog archive entry
        b'{"evt.outcome": "failure", "usr.id": "42", "timestamp": "'
        + iso(17).encode()
        + b'"}\n',  # flattened
        b'{"evt": {"outcome": "failure"}, "usr": {"id": "42"}}\n',  # no time
        b"[" * 3000 + b"]" * 3000 + b"\n",
        line(18)[:-1],  # no final newline
    ]
    path = tmp_path / "mixed.log"
    path.write_bytes(b"".join(lines))
    result, counts = both([threshold(window=60)], [str(path)])
    assert counts.blank == 2 and counts.not_json >= 3 and counts.not_security >= 1
    assert result["no_timestamp"] >= 2
    assert result["signals"], "the rule fires: the test proves signals, not only counts"


def test_a_file_duckdb_reads_itself_hands_its_special_lines_to_the_same_reader(tmp_path: Path) -> None:
    """Every line starts with `{`: DuckDB reads the file (line number = row); CloudTrail, archive, broken,
    NaN and repeated-key lines still go through `loading`'s code."""
    lines = [
        line(0),
        b'{"Records": [' + line(1).strip() + b", " + line(2).strip() + b"]}\n",
        b'{"_id": "x", "date": "' + iso(3).encode() + b'", "attributes": {"evt": {"outcome": "failure"}, '
        b'"usr": {"id": "42"}}}\n',
        b'{"broken": } }\n',
        b'{"timestamp": "' + iso(4).encode() + b'", "evt": {"outcome": "failure"}, "x": NaN}\n',
        b'{"usr": {"id": "7"}, "timestamp": "' + iso(5).encode() + b'", "evt": {"outcome": "failure"}, '
        b'"usr": {"id": "42"}}\n',
        line(6),
        line(7)[:-1],
    ]
    path = tmp_path / "plain.log"
    path.write_bytes(b"".join(lines))
    result, counts = both([threshold(window=60)], [str(path)])
    assert counts.lines == 8 and counts.records == 7 and counts.not_json == 2
    [signal] = result["signals"]
    assert signal["records"][:3] == [f"{path}:1", f"{path}:2", f"{path}:3"]


@pytest.mark.parametrize(
    "value",
    [
        b"NaN",
        b"[NaN]",
        b"[ -Infinity]",
        b'{"y": inf}',
        b"[1, 2, ]",
        b'{"y": 1 ,\t}',
        b"1e400",
        b"[-1E5]",
        b"[1e400]",
        b'{"y":  2.5e3}',
        b"12345678901234567890123",
        b"[ -1234567890123456789]",
        b"[18446744073709551616]",
        b'"\\ud83d"',
        b'["\\uDE00"]',
    ],
)
def test_a_value_duckdb_reads_otherwise_than_orjson_sends_its_line_to_python(
    tmp_path: Path, value: bytes
) -> None:
    """Each construct DuckDB's reader accepts and orjson refuses (or may read otherwise), after every byte
    that can precede a value (`:`, `[`, `,`), in a line that the rule would count: the replay and the
    counts are the streaming engine's."""
    odd = b'{"timestamp": "' + iso(2).encode() + b'", "evt": {"outcome": "failure"}, "usr": {"id": "9"}, '
    path = tmp_path / "odd.log"
    path.write_bytes(line(0) + line(1) + odd + b'"x": ' + value + b"}\n" + line(3) + line(4))
    result, counts = both([threshold(window=60)], [str(path)])
    assert counts.lines == 5
    assert result["signals"]


@pytest.mark.parametrize(
    "odd",
    [
        b"\n",  # a blank line: a NULL row, its line number kept
        b"   \n",
        line(2)[:-1] + b"\r\n",  # a CR line end: the row keeps the CR, Python reads that line
        b'{"timestamp": "'
        + iso(2).encode()
        + b'", "usr": {"id": "4\x012"}, "evt": {"outcome": "failure"}}\n',
        b"\xef\xbb\xbf" + line(2),  # a byte-order mark inside the file
        line(2)[:-1] + b" \n",
    ],
)
def test_a_file_duckdb_reads_itself_with_an_odd_line_gives_the_same_replay(
    tmp_path: Path, odd: bytes
) -> None:
    """Whatever the odd line, DuckDB's rows must still be the file's lines (else Python reads the file)."""
    path = tmp_path / "odd.log"
    path.write_bytes(line(0) + line(1) + odd + line(3) + line(4) + line(5)[:-1])
    result, counts = both([threshold(window=60)], [str(path)])
    assert counts.lines == 6
    assert result["signals"]


def test_same_instant_bursts_are_in_the_window_only_once_pushed(tmp_path: Path) -> None:
    """Ten failures of one instant: the streaming window at the 3rd holds 3 (not the 10 a RANGE frame
    would hold), so the signal opens at the third with values a=3 and counts every later one."""
    path = tmp_path / "burst.log"
    path.write_bytes(b"".join(line(5) for _ in range(10)) + line(5, "7") + line(6))
    for window in (0, 60, 300):
        result, _ = both([threshold(window=window)], [str(path)])
        [signal] = result["signals"]
        assert signal["values"] == {"a": 3.0}
        assert signal["records"][:3] == [f"{path}:1", f"{path}:2", f"{path}:3"]
        assert signal["count"] == (10 if window == 0 else 11)  # 3 at opening, one per later hit


def test_joined_cardinality_and_max_over_gzip_and_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "archive" / "dt=20260101"
    folder.mkdir(parents=True)
    first = b"".join(line(i, str(i % 4), network={"client": {"ip": "203.0.113.7"}}) for i in range(20))
    later = b"".join(
        line(30 + i, "9", "success", network={"client": {"ip": "203.0.113.7"}}) for i in range(3)
    )
    (folder / "a.json.gz").write_bytes(gzip.compress(first))
    (folder / "b.json").write_bytes(later + line(40, "5", latency=12.5) + line(41, "5", latency=99))
    rules = [
        threshold(
            group_by=["@network.client.ip"],
            aggregation="cardinality",
            distinct=["@usr.id"],
            more=[
                {
                    "name": "ok",
                    "query": "@evt.outcome:success",
                    "aggregation": "count",
                    "groupByFields": ["@network.client.ip"],
                }
            ],
            cases=[
                {"name": "took over", "status": "high", "condition": "a >= 4 && ok >= 1"},
                {"name": "spraying", "status": "medium", "condition": "a >= 3"},
            ],
        ),
        {
            **threshold(aggregation="max", metrics=["@latency"], condition="a > 50"),
            "name": "slow",
            "tags": ["secevents_rule:slow"],
        },
    ]
    result, counts = both(rules, [str(tmp_path / "archive")])
    assert counts.files == 2
    assert {s["case"] for s in result["signals"]} == {"took over", "a > 50"}  # spraying escalated


@pytest.mark.parametrize(
    ("condition", "grows"),
    [
        ("a >= 10", True),
        ("a > 2 && (b >= 1 || 3 <= c)", True),
        ("2 < a", True),
        ("a < 5", False),
        ("a == 3", False),
        ("a >= 1 && b <= 4", False),
        ("a > b", False),
        ("5 > a", False),
    ],
)
def test_which_conditions_only_grow_with_the_values(condition: str, grows: bool) -> None:
    assert condition_grows(condition) is grows


def test_groups_far_from_every_case_are_left_out_with_the_same_signals(tmp_path: Path) -> None:
    """1,000 accounts fail once or twice, three cross `a >= 3` in different ways (within the window, spread
    beyond it, then within it again). Without --explain the columnar engine computes windows only for the
    groups whose totals reach a case; the replay is the streaming engine's."""
    lines = [line(i * 7, str(i % 1000)) for i in range(1500)]
    lines += [line(20_000 + i, "crossed") for i in range(3)]
    lines += [line(30_000 + 400 * i, "spread") for i in range(3)]  # never 3 within 300 s
    lines += [line(40_000 + 400 * i, "late") for i in range(2)] + [line(40_500 + i, "late") for i in range(3)]
    path = tmp_path / "many.log"
    path.write_bytes(b"".join(sorted(lines, key=lambda b: orjson.loads(b)["timestamp"])))
    grown, _ = both([threshold(condition="a >= 3")], [str(path)], explain=False)
    assert sorted(s["group"]["usr.id"] for s in grown["signals"]) == ["crossed", "late"]
    joined = threshold(
        condition="a >= 3",
        more=[
            {
                "name": "b",
                "query": "@evt.outcome:failure",
                "aggregation": "count",
                "groupByFields": ["@usr.id"],
            }
        ],
        cases=[{"status": "high", "condition": "a >= 3 && b > 2"}, {"status": "low", "condition": "a >= 3"}],
    )
    both([joined], [str(path)], explain=False)
    # Datadog's checker allows only `>` and `>=` between a query and a number, so every case of a rule the
    # engine runs has a lower bound to prune by; `condition_grows` keeps any other shape whole.
    assert len(grown["signals"]) == 2


def test_a_file_read_in_parallel_keeps_every_line_number(tmp_path: Path) -> None:
    """A file of several of DuckDB's 32 MiB read buffers, read by two threads: line n is still row n.
    Line n holds account `u{n % 997}`, with a blank line and a line without a newline at the end; every
    record a signal names must be a line of its own account."""
    path = tmp_path / "big.log"
    pad = "x" * 330
    with path.open("wb") as out:
        for n in range(1, 200_001):
            if n == 1000:
                out.write(b"\n")
                continue
            record = {
                "timestamp": iso(n * 0.5),
                "evt": {"outcome": "failure"},
                "usr": {"id": f"u{n % 997}"},
                "pad": pad,
            }
            out.write(orjson.dumps(record) + (b"\n" if n < 200_000 else b""))
    assert path.stat().st_size > 2 * 32 * 2**20
    names: list[str] = []
    counts = LineCounts()
    result = columnar_replay(
        [threshold(condition="a >= 2", window=600)],
        [str(path)],
        counts,
        names,
        describe=lambda ref: f"{names[ref[0]]}:{ref[1]}",
        explain=True,
        threads=2,
    )
    assert isinstance(result, Replay)
    assert (counts.lines, counts.records, counts.blank) == (200_000, 199_999, 1)
    assert len({signal.group["usr.id"] for signal in result.signals}) == 997
    for signal in result.signals:
        account = int(signal.group["usr.id"][1:])
        numbers = [int(ref.rsplit(":", 1)[1]) for ref in signal.records]
        assert len(numbers) >= 2
        assert all(number % 997 == account for number in numbers), (signal.group, numbers)


def test_records_out_of_order_beyond_max_delay_go_to_the_streaming_engine(tmp_path: Path) -> None:
    path = tmp_path / "late.log"
    path.write_bytes(line(1000) + line(10) + line(1001))
    outcome = columnar_replay(
        [threshold()], [str(path)], LineCounts(), names := [], describe=str, max_delay=60.0
    )
    assert isinstance(outcome, Unsupported) and "out of order" in outcome.reason
    assert names == []  # left as given: the caller reads again
    both([threshold(condition="a >= 1")], [str(path)], max_delay=2000.0)  # within the delay: same replay


def test_rules_the_columnar_engine_does_not_take() -> None:
    sums = threshold(aggregation="sum", metrics=["@n"])
    new_value = threshold(aggregation="new_value", metrics=["@usr.id"])
    new_value["options"] = {
        "detectionMethod": "new_value",
        "keepAlive": 600,
        "maxSignalDuration": 3600,
        "newValueOptions": {"forgetAfter": 7},
    }
    new_value["cases"] = [{"status": "info"}]
    for rules, why in (([sums], "sum"), ([new_value], "new_value"), ([threshold()], "stdin")):
        outcome = columnar_replay(rules, ["-"] if why == "stdin" else ["f"], LineCounts(), [], describe=str)
        assert isinstance(outcome, Unsupported) and why in outcome.reason


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-02T00:00:00Z",
        "2026-03-02T23:59:59.999999Z",
        "2026-03-02T12:34:56.789Z",
        "1970-01-01T00:00:00.000001Z",
        "2255-06-05T23:47:34.740991Z",
        "1677-09-21T00:12:43.145224Z",
        "9999-12-31T23:59:59.999999Z",
        "2024-02-29T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2026-03-02T24:00:00Z",
    ],
)
def test_the_sql_time_fast_path_equals_timestamp_of(tmp_path: Path, text: str) -> None:
    path = tmp_path / "t.log"
    path.write_bytes(
        orjson.dumps({"timestamp": text, "evt": {"outcome": "failure"}, "usr": {"id": "1"}}) + b"\n"
    )
    rule = threshold(condition="a >= 1")
    result, _ = both([rule], [str(path)])
    moment = timestamp_of({"timestamp": text})
    if moment is None:
        assert result["no_timestamp"] == 1
    else:
        [signal] = result["signals"]
        assert signal["first_seen"] == datetime.fromtimestamp(moment, UTC).isoformat(
            timespec="microseconds"
        ).replace("+00:00", "Z")


def test_cli_engine_columnar_says_when_it_streams_instead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.log"
    path.write_bytes(b"".join(line(i) for i in range(5)))
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([threshold()]))
    outputs = []
    for engine in ("stream", "columnar", "auto"):
        assert (
            main(
                [
                    "detect",
                    str(path),
                    "--rules",
                    str(rules),
                    "--format",
                    "json",
                    "--explain",
                    "--engine",
                    engine,
                ]
            )
            == 0
        )
        captured = capsys.readouterr()
        assert captured.err == ""
        outputs.append(json.loads(captured.out))
    assert outputs[0] == outputs[1] == outputs[2] and outputs[0]["signals"]
    sums = tmp_path / "sums.json"
    sums.write_text(json.dumps([threshold(aggregation="sum", metrics=["@n"])]))
    assert main(["detect", str(path), "--rules", str(sums), "--engine", "columnar"]) == 0
    assert "using the streaming engine" in capsys.readouterr().err


def test_rules_the_columnar_engine_leaves_are_streamed_alongside_with_one_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The library's rule set has two rules the columnar engine does not compute (impossible travel, new
    country): it computes the other fourteen and the streaming engine replays those two over the same
    file; the output is the streaming engine's, and `--engine columnar` names the two on stderr."""
    from graffer_secevents.detect import default_rules

    def login(seconds: float, user: str, outcome: str, ip: str) -> bytes:
        kind = "authn_login_success" if outcome == "success" else "authn_login_fail"
        return line(
            seconds,
            user,
            outcome,
            logger={"name": "graffer_secevents"},
            evt={"type": kind, "name": "authentication", "category": "authentication", "outcome": outcome},
            network={"client": {"ip": ip}},
        )

    lines = [login(i, str(i % 13), "failure", f"203.0.113.{i % 3}") for i in range(60)]
    lines += [login(100 + i, "9", "success", "203.0.113.1") for i in range(3)]
    path = tmp_path / "logins.log"
    path.write_bytes(b"".join(lines))
    assert main(["detect", str(path), "--format", "json", "--engine", "stream"]) == 0
    streamed_out = capsys.readouterr()
    assert main(["detect", str(path), "--format", "json", "--engine", "columnar"]) == 0
    columnar_out = capsys.readouterr()
    assert json.loads(columnar_out.out) == json.loads(streamed_out.out)
    assert json.loads(columnar_out.out)["signals"]
    assert "'impossible_travel' uses the impossible_travel method" in columnar_out.err
    assert "'new_country' uses the new_value method" in columnar_out.err
    both(default_rules(), [str(path)])


@pytest.mark.parametrize("engine", ["stream", "columnar"])
def test_a_truncated_gzip_file_is_an_error_naming_the_file_and_the_last_whole_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], engine: str
) -> None:
    """Both engines read lines with `loading.lines_of`: a gzip file cut short is exit 4, not a shorter log."""
    packed = gzip.compress(b"".join(line(i % 50) for i in range(2000)))
    path = tmp_path / "cut.json.gz"
    path.write_bytes(packed[: len(packed) // 2])
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([threshold()]))
    assert main(["detect", str(path), "--rules", str(rules), "--engine", engine]) == 4
    err = capsys.readouterr().err
    assert f"{path}: broken gzip after line " in err
    assert "using the streaming engine" not in err  # the columnar engine read it: no hand-over hid the error


# --- random records, random eligible rules ------------------------------------------------------------------

USERS = st.sampled_from(["1", "2", "3", "", "N/A"])
TIMES = st.integers(min_value=0, max_value=40).map(lambda n: n * 15.0)


@st.composite
def a_line(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["record"] * 8 + ["blank", "junk", "prefixed", "flat", "array", "number"]))
    if kind == "blank":
        return b"\n"
    if kind == "junk":
        return b"{not json\n"
    if kind == "array":
        return b"[1]\n"
    seconds = draw(TIMES)
    record: dict[str, Any] = {"timestamp": iso(seconds)}
    if draw(st.booleans()):
        record["evt"] = {"outcome": draw(st.sampled_from(["failure", "success"]))}
    user = draw(st.one_of(USERS, st.integers(0, 3), st.none(), st.just([{"id": "1"}, {"id": "2"}])))
    if kind == "flat":
        record["usr.id"] = user
    elif isinstance(user, list):
        record["usr"] = user
    elif user is not None:
        record["usr"] = {"id": user}
    if draw(st.booleans()):
        record["n"] = draw(st.one_of(st.integers(-5, 5), st.floats(-1e3, 1e3), st.text(max_size=2)))
    if draw(st.booleans()):
        record["env"] = draw(st.sampled_from(["staging", "prod", 3]))
    text = orjson.dumps(record)
    if kind == "prefixed":
        text = b"stdout F " + text
    if kind == "number":
        return b"12\n"
    return text + b"\n"


@st.composite
def a_rule(draw: st.DrawFn) -> dict[str, Any]:
    aggregation = draw(st.sampled_from(["count", "cardinality", "max"]))
    group_by = draw(st.sampled_from([["@usr.id"], [], ["@evt.outcome"], ["@usr.id", "@evt.outcome"]]))
    rule = threshold(
        query=draw(st.sampled_from(["@evt.outcome:failure", "*", "-@usr.id:1", "@n:>0", "@usr.id:*"])),
        group_by=group_by,
        aggregation=aggregation,
        distinct=["@usr.id"] if aggregation == "cardinality" else None,
        metrics=["@n"] if aggregation == "max" else None,
        condition=draw(st.sampled_from(["a >= {n}", "a > {n}", "a > {n} || a >= 4"])).format(
            n=draw(st.integers(1, 4))
        ),
        window=draw(st.sampled_from([0, 60, 300])),
        optional=draw(st.booleans()),
    )
    if draw(st.booleans()):
        rule["queries"].append(
            {
                "name": "b",
                "query": "@evt.outcome:success",
                "aggregation": "count",
                "groupByFields": group_by,
                "hasOptionalGroupByFields": rule["queries"][0]["hasOptionalGroupByFields"],
            }
        )
        rule["cases"] = [
            {"name": "both", "status": "high", "condition": "a >= 1 && b >= 1"},
            {"name": "one", "status": "low", "condition": rule["cases"][0]["condition"]},
        ]
    rule["options"]["decreaseCriticalityBasedOnEnv"] = draw(st.booleans())
    return rule


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(a_line(), max_size=40),
    rules=st.lists(a_rule(), min_size=1, max_size=2),
    sort=st.booleans(),
)
def test_random_lines_and_rules_give_the_same_replay(
    tmp_path: Path, lines: list[bytes], rules: list[dict[str, Any]], sort: bool
) -> None:
    for index, rule in enumerate(rules):
        rule["name"] = rule["tags"][0] = f"secevents_rule:r{index}"
    if sort:
        lines = sorted(lines, key=lambda b: b[:40])
    path = tmp_path / "random.log"
    path.write_bytes(b"".join(lines))
    both(rules, [str(path)], max_delay=math.inf)
    both(rules, [str(path)], max_delay=math.inf, explain=False)  # groups pruned by their totals
    if _in_order(path, 30.0):
        both(rules, [str(path)], max_delay=30.0, explain=False)
    else:  # possibly late records: the columnar engine hands over
        outcome = columnar_replay(rules, [str(path)], LineCounts(), [], describe=str, max_delay=30.0)
        assert isinstance(outcome, Unsupported)


def _in_order(path: Path, delay: float) -> bool:
    """Whether no record is more than `delay` behind an earlier one (read as `secevents detect` reads)."""
    newest = -math.inf
    for record, _ in read_logs([str(path)], LineCounts(), []):
        moment = timestamp_of(record)
        if moment is None:
            continue
        if moment < newest - delay:
            return False
        newest = max(newest, moment)
    return True


# --- the projection is exact: a matcher or getter sees the same through the top-level keys it reads ---------

QUERIES = (
    "@evt.outcome:failure",
    "@usr.id:(1 OR 2) -@evt.outcome:success",
    "@network.client.ip:203.0.113.*",
    "CIDR(@network.client.ip, 203.0.113.0/24)",
    "@n:>2 OR @n:[-1 TO 0]",
    "login failed",
    "service:web env:prod",
    "@usr.id:* @a.b.c.d:x",
)
VALUES = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["1", "2", "x", "203.0.113.9", ""])
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["id", "outcome", "client", "ip", "b", "c", "d", "c.d"]), inner, max_size=3
        ),
    ),
    max_leaves=8,
)
RECORDS = st.dictionaries(
    st.sampled_from(
        [
            "evt",
            "usr",
            "network",
            "n",
            "message",
            "service",
            "env",
            "a",
            "a.b",
            "a.b.c",
            "evt.outcome",
            "usr.id",
            "network.client.ip",
            "other",
        ]
    ),
    VALUES,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(record=RECORDS, query=st.sampled_from(QUERIES))
def test_a_matcher_reads_only_the_top_level_keys_its_paths_reach(record: dict[str, Any], query: str) -> None:
    from graffer_secevents._tools.detect.columnar import _top_keys
    from graffer_secevents._tools.detect.query import attribute_getter, compile_query, paths_read

    paths = paths_read(query)
    keys = {key for path in paths for key in _top_keys(path)}
    projected = {key: value for key, value in record.items() if key in keys}
    assert compile_query(query)(projected) == compile_query(query)(record)
    for path in paths:
        get = attribute_getter(path)
        assert repr(get(projected)) == repr(get(record))


# --- narrowing: many distinct objects, each cut down to what the rule reads, the same replay ----------------

NESTED_QUERIES = (
    "@usr.exists:false",
    "@usr.exists:* -@usr.id:1",
    "@network.client.geoip.country.iso_code:(FR OR DE)",
    "@network.client.ip:203.0.113.* @usr.c.d:x",
    "@a.b.c.d:x OR @a.b:1",
)


def _object_text(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A JSON object as text, written by hand: members may repeat a key, spell it with an escape, be
    dotted, null, arrays of objects or nested objects."""
    members: list[bytes] = []
    for _ in range(draw(st.integers(0, 4))):
        key = draw(
            st.sampled_from(["id", "exists", "client", "ip", "geoip", "country", "iso_code", "b", "c", "d"])
        )
        key = draw(st.sampled_from([key, key, "client.ip", "geoip.country", "c.d", "b.c"]))
        spelled = json.dumps(key).encode()
        if draw(st.integers(0, 9)) == 0:
            spelled = b'"\\u00' + format(ord(key[0]), "02x").encode() + key[1:].encode() + b'"'
        if depth < 3 and draw(st.integers(0, 2)) == 0:
            value = _object_text(draw, depth + 1)
        elif depth < 3 and draw(st.integers(0, 5)) == 0:
            value = b"[" + _object_text(draw, depth + 1) + b"," + _object_text(draw, depth + 1) + b"]"
        else:
            value = json.dumps(
                draw(st.sampled_from(["1", "x", "FR", "DE", "203.0.113.9", None, False, 1, ""]))
            ).encode()
        members.append(spelled + b":" + value)
    return b"{" + b",".join(members) + b"}"


@st.composite
def a_nested_line(draw: st.DrawFn) -> bytes:
    parts = [b'"timestamp":"' + iso(draw(st.integers(0, 20)) * 10.0).encode() + b'"']
    for key in draw(st.lists(st.sampled_from(["usr", "network", "a", "a.b", "usr.exists"]), max_size=4)):
        parts.append(json.dumps(key).encode() + b":" + _object_text(draw))
    return b"{" + b",".join(parts) + b"}\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(a_nested_line(), min_size=1, max_size=30),
    query=st.sampled_from(NESTED_QUERIES),
    group_by=st.sampled_from([[], ["@usr.exists"], ["@network.client.geoip.country.iso_code"], ["@usr.c.d"]]),
    aggregation=st.sampled_from(["count", "cardinality"]),
)
def test_objects_narrowed_to_what_the_rule_reads_give_the_same_replay(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lines: list[bytes],
    query: str,
    group_by: list[str],
    aggregation: str,
) -> None:
    """Narrowing is forced from the first distinct projection (it normally starts beyond 4,096)."""
    from graffer_secevents._tools.detect import columnar

    monkeypatch.setattr(columnar, "_NARROW_FROM", 0)
    path = tmp_path / "nested.log"
    path.write_bytes(b"".join(lines))
    rule = threshold(
        query=query,
        group_by=group_by,
        aggregation=aggregation,
        distinct=["@network.client.geoip.country.iso_code"] if aggregation == "cardinality" else None,
        condition="a >= 1",
    )
    both([rule], [str(path)], max_delay=math.inf)
    both([rule], [str(path)], max_delay=math.inf, explain=False)


def test_many_accounts_read_through_a_nested_attribute_are_narrowed(tmp_path: Path) -> None:
    """6,000 accounts, `@usr.exists` read (usr differs on every account by its id): more distinct
    projections than `_NARROW_FROM`, so the matcher runs on a handful of narrowed ones; the same replay,
    with the odd objects (a repeated key, an escaped spelling, an array) left whole."""
    lines = [
        line(i * 0.5, str(i), usr={"id": str(i), "exists": i % 3 == 0, "login": f"l{i}"}) for i in range(6000)
    ]
    lines.append(
        b'{"timestamp":"'
        + iso(3001).encode()
        + b'","evt":{"outcome":"failure"},"usr":{"exists":true,"exists":false}}\n'
    )
    lines.append(
        b'{"timestamp":"'
        + iso(3002).encode()
        + b'","evt":{"outcome":"failure"},"usr":{"\\u0065xists":false,"id":"9"}}\n'
    )
    lines.append(
        b'{"timestamp":"' + iso(3003).encode() + b'","evt":{"outcome":"failure"},"usr":[{"exists":false}]}\n'
    )
    path = tmp_path / "accounts.log"
    path.write_bytes(b"".join(lines))
    rule = threshold(query="@evt.outcome:failure @usr.exists:false", group_by=[], window=300)
    result, counts = both([rule], [str(path)], explain=False)
    assert counts.records == 6003
    assert result["signals"]


def test_a_duckdb_failure_hands_over_to_the_streaming_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """DuckDB refusing its memory limit (a real DuckDB error): `Unsupported`, the names left as given, so
    the caller reads again with the streaming engine."""
    path = tmp_path / "x.log"
    path.write_bytes(b"".join(line(i) for i in range(5)))
    names: list[str] = []
    outcome = columnar_replay(
        [threshold()], [str(path)], LineCounts(), names, describe=str, memory_limit="not a size"
    )
    assert isinstance(outcome, Unsupported) and "DuckDB failed" in outcome.reason
    assert names == []
