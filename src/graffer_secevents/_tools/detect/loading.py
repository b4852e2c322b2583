"""Rules and records from files: rule JSON (one rule, a list, or `{"rules": [...]}`) and JSON-lines logs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from .errors import DetectError

__all__ = ["LineCounts", "load_rules", "read_records"]


def load_rules(path_or_json: str | os.PathLike[str] | Mapping[str, Any] | list[Any]) -> list[dict[str, Any]]:
    """Rules from a JSON file, JSON text or parsed JSON: one rule object, a list of them, or an object whose
    `rules` (or `data`, as the API lists them) is that list.

    Raises:
        DetectError: the text is not JSON or not rules.
        OSError: the file cannot be read.
    """
    if isinstance(path_or_json, Mapping | list):
        data: Any = path_or_json
        where = "the rules given"
    else:
        text = os.fspath(path_or_json)
        if text.lstrip().startswith(("{", "[")):
            where = "the rule JSON"
        else:
            where = text
            text = Path(text).read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DetectError(f"{where}: not valid JSON ({exc})") from None
    if isinstance(data, Mapping):
        document = cast("Mapping[str, Any]", data)
        for key in ("rules", "data"):
            if isinstance(document.get(key), list):
                data = document[key]
                break
        else:
            data = [document]
    rules = cast("list[object]", data) if isinstance(data, list) else None
    if rules is None or not all(isinstance(rule, Mapping) for rule in rules):
        raise DetectError(f"{where}: expected a rule object or a list of rule objects")
    return [dict(cast("Mapping[str, Any]", rule)) for rule in rules]


@dataclass
class LineCounts:
    """What reading a log stream skipped."""

    lines: int = 0
    records: int = 0
    not_json: int = 0
    not_security: int = 0
    blank: int = 0

    @property
    def skipped(self) -> int:
        """Lines that were not security records."""
        return self.not_json + self.not_security + self.blank


def read_records(stream: IO[bytes], counts: LineCounts) -> Iterator[dict[str, Any]]:
    """The security records of a JSON-lines stream mixed with other output, as `secevents validate` reads
    it (a prefix before the JSON is tolerated); everything else is counted in `counts` and skipped."""
    from graffer_secevents._tools.loglines import DEFAULT_MAX_LINE_BYTES, _parse, _read_lines

    for _number, line, oversize in _read_lines(stream, DEFAULT_MAX_LINE_BYTES):
        counts.lines += 1
        if oversize is not None:
            counts.not_json += 1
            continue
        kind, value = _parse(line)
        if kind == "record":
            counts.records += 1
            yield value
        elif kind == "blank":
            counts.blank += 1
        elif kind == "not_security":
            counts.not_security += 1
        else:
            counts.not_json += 1
