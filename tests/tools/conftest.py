"""The detect tests' differential check: every replay the streaming engine finishes in a `test_detect*`
module is replayed again by the columnar engine (DuckDB) over the same records written as JSON lines, and
the two `Replay`s must be identical (signals as dicts with their records, counts, `best`)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from detect_helpers import replay_as_dicts

from graffer_secevents._tools.detect.columnar import columnar_replay, ineligible
from graffer_secevents._tools.detect.engine import Engine, Replay
from graffer_secevents._tools.detect.loading import LineCounts

DIFFERENTIAL = {"compared": 0, "ineligible": 0}
"""How many replays the hook compared, and how many it could not (rules the columnar engine does not take,
records JSON cannot carry, a geo lookup)."""


def _same_json(record: Any) -> bool:
    if not isinstance(record, dict):
        return False
    try:
        return bool(orjson.loads(orjson.dumps(record)) == record)
    except (TypeError, orjson.JSONEncodeError):
        return False


@pytest.fixture(autouse=True)
def columnar_differential(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    if not request.module.__name__.rsplit(".", 1)[-1].startswith("test_detect"):
        yield
        return
    original_init, original_push, original_finish = Engine.__init__, Engine.push, Engine.finish

    def init(self: Engine, rules: Any, **kwargs: Any) -> None:
        self._differential_rules = list(rules) if not isinstance(rules, Mapping) else [rules]  # type: ignore[attr-defined]
        self._differential_pushed = []  # type: ignore[attr-defined]
        original_init(self, self._differential_rules, **kwargs)  # type: ignore[attr-defined]

    def push(self: Engine, moment: float, record: Mapping[str, Any], ref: Any = None) -> None:
        self._differential_pushed.append((record, ref))  # type: ignore[attr-defined]
        original_push(self, moment, record, ref)

    def finish(self: Engine) -> Replay:
        result = original_finish(self)
        pushed: list[tuple[Any, Any]] = self._differential_pushed  # type: ignore[attr-defined]
        refs = [ref for _, ref in pushed]
        if (
            self.geo is not None
            or ineligible(result.rules, ["file"]) is not None
            or not all(_same_json(record) for record, _ in pushed)
            or len(set(map(repr, refs))) != len(refs)
        ):
            DIFFERENTIAL["ineligible"] += 1
            return result
        path = tmp_path_factory.mktemp("differential") / "records.jsonl"
        path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record, _ in pushed))
        describe = self.describe
        theirs = columnar_replay(
            self._differential_rules,  # type: ignore[attr-defined]
            [str(path)],
            LineCounts(),
            [],
            describe=lambda ref: describe(refs[ref[1] - 1]),
            explain=result.explain,
            max_delay=math.inf,
        )
        assert isinstance(theirs, Replay), theirs  # records in order (max_delay inf): never handed over
        mine = replay_as_dicts(result)
        mine["no_timestamp"] = 0  # records without a time were never pushed, so never written
        assert replay_as_dicts(theirs) == mine
        DIFFERENTIAL["compared"] += 1
        return result

    monkeypatch.setattr(Engine, "__init__", init)
    monkeypatch.setattr(Engine, "push", push)
    monkeypatch.setattr(Engine, "finish", finish)
    yield


def write_lines(path: Path, lines: list[bytes]) -> str:
    path.write_bytes(b"".join(lines))
    return str(path)
