"""Rules and records from files: rule JSON (one rule, a list, or `{"rules": [...]}`) and JSON-lines logs."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, cast

from .errors import DetectError

__all__ = ["LineCounts", "from_archive", "lines_of", "load_rules", "read_logs", "read_records"]


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
    """What reading log streams found and skipped."""

    lines: int = 0
    records: int = 0
    """JSON objects read (any log: ours, CloudTrail, another service's)."""
    security: int = 0
    """Of those, the library's security records."""
    not_json: int = 0
    not_security: int = 0
    """JSON values that are not objects (an array, a number...)."""
    blank: int = 0
    files: int = 0

    @property
    def skipped(self) -> int:
        """Lines that were not log records."""
        return self.not_json + self.not_security + self.blank


def read_records(stream: IO[bytes], counts: LineCounts) -> Iterator[dict[str, Any]]:
    """Every JSON-object log record of a stream (see `read_logs`), without where each came from."""
    for record, _ref in _read_stream(stream, counts, 0):
        yield record


_GZIP_MAGIC: Final = b"\x1f\x8b"


def read_logs(
    sources: Sequence[str], counts: LineCounts, names: list[str]
) -> Iterator[tuple[dict[str, Any], tuple[int, int]]]:
    """`(record, (source index, line))` for every JSON object in `sources`, in order.

    A source is a file, `-` for stdin, or a directory (every file under it, in path order: a Datadog log
    archive's `dt=YYYYMMDD/hour=HH/archive_*.json.gz` layout is then chronological). Gzip is recognised by
    its magic bytes, so `archive_*.json.gz`, `.gz` files of any name and gzip on stdin are all read.
    A line may
    carry a prefix before its JSON (`kubectl logs --timestamps`). A line holding `{"Records": [...]}` (a
    CloudTrail file) yields each record. A Datadog archive entry (`{"_id", "date", "attributes": {...}}`)
    yields its attributes with the reserved fields beside them, as Datadog's search sees it. `names` receives
    each file's name, for the references.

    Raises:
        OSError: a file or directory cannot be read (the message names it).
    """
    for source in sources:
        for path in _expand(source):
            counts.files += 1
            index = len(names)
            names.append(path)
            if path == "-":
                yield from _read_stream(_maybe_gzip(sys.stdin.buffer), counts, index)
                continue
            with open(path, "rb", buffering=1 << 20) as raw:
                yield from _read_stream(_maybe_gzip(raw), counts, index)


def _expand(source: str) -> list[str]:
    if source == "-" or not os.path.isdir(source):
        return [source]
    found: list[str] = []
    for root, dirs, files in os.walk(source):
        dirs.sort()
        found.extend(os.path.join(root, name) for name in sorted(files) if not name.startswith("."))
    return sorted(found)


def _maybe_gzip(stream: IO[bytes]) -> IO[bytes]:
    """The stream, or its gzip content when it starts with gzip's magic bytes (`stream` is buffered: files
    are opened buffered and stdin's `buffer` is, so peeking consumes nothing)."""
    peek: Any = getattr(stream, "peek", None)
    head: bytes = bytes(peek(2)[:2]) if peek is not None else b""
    if head == _GZIP_MAGIC:
        import gzip

        return cast("IO[bytes]", gzip.GzipFile(fileobj=stream))
    return stream


def lines_of(stream: IO[bytes]) -> Iterator[bytes]:
    """Every line of `stream`, with its newline; a line longer than the reader's limit
    (`DEFAULT_MAX_LINE_BYTES`) is skipped to its end and given as `b"\\x00"` (not JSON), so that line numbers
    still count it. The one line reader of both engines.

    Raises:
        OSError: the gzip stream is broken (the message names the stream and the last whole line).
    """
    import gzip
    import zlib

    from graffer_secevents._tools.loglines import DEFAULT_MAX_LINE_BYTES

    limit = DEFAULT_MAX_LINE_BYTES
    readline = stream.readline
    number = 0
    while True:
        try:
            line = readline(limit + 1)
            if len(line) > limit and not line.endswith(b"\n"):  # longer than the limit: skip the rest
                while True:
                    more = readline(limit + 1)
                    if not more or more.endswith(b"\n"):
                        break
                line = b"\x00"
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise OSError(f"{_name(stream)}: broken gzip after line {number}: {exc}") from None
        if not line:
            return
        number += 1
        yield line


def _read_stream(
    stream: IO[bytes], counts: LineCounts, index: int
) -> Iterator[tuple[dict[str, Any], tuple[int, int]]]:
    import orjson

    from graffer_secevents._tools.loglines import _is_security_record

    loads = orjson.loads
    number = 0
    for line in lines_of(stream):
        number += 1
        counts.lines += 1
        try:
            value: object = loads(line)
        except orjson.JSONDecodeError:
            value = _object(line)
            if value is None:
                if line.strip():
                    counts.not_json += 1
                else:
                    counts.blank += 1
                continue
        if value.__class__ is not dict:
            counts.not_security += 1
            continue
        obj = cast("dict[str, Any]", value)
        if "Records" in obj:
            nested = obj["Records"]
            if isinstance(nested, list) and len(obj) <= 2:
                for record in cast("list[object]", nested):
                    if isinstance(record, dict):
                        counts.records += 1
                        yield cast("dict[str, Any]", record), (index, number)
                continue
        record = from_archive(obj) if "attributes" in obj else obj
        counts.records += 1
        if _is_security_record(record):
            counts.security += 1
        yield record, (index, number)


def _name(stream: IO[bytes]) -> str:
    return str(getattr(stream, "name", "the input"))


def _object(line: bytes) -> object | None:
    """The JSON value on a line (after any prefix before its first `{`), else None."""
    import orjson

    stripped = line.strip()
    if not stripped:
        return None
    try:
        parsed: object = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        pass
    else:
        return parsed
    start = stripped.find(b"{")
    if start <= 0:
        return None
    try:
        tail: object = orjson.loads(stripped[start:])
    except orjson.JSONDecodeError:
        return None
    return tail


_ARCHIVE_FIELDS: Final = ("host", "service", "status", "source", "message", "tags")


def from_archive(obj: dict[str, Any]) -> dict[str, Any]:
    """A Datadog log archive entry as the log Datadog's search sees: its `attributes` at the top level, with
    `host`, `service`, `status`, `source` (also as `ddsource`), `message`, `tags`, the `env` of an `env:`
    tag, and the archive's `date` as `timestamp` when the attributes carry no time. Anything else is
    returned as it is."""
    attributes = obj.get("attributes")
    if not isinstance(attributes, dict) or not ("_id" in obj or "date" in obj):
        return obj
    record: dict[str, Any] = dict(cast("dict[str, Any]", attributes))
    for key in _ARCHIVE_FIELDS:
        if key in obj and key not in record:
            record[key] = obj[key]
    if "source" in obj and "ddsource" not in record:
        record["ddsource"] = obj["source"]
    tags = obj.get("tags")
    if "env" not in record and isinstance(tags, list):
        for tag in cast("list[object]", tags):
            if isinstance(tag, str) and tag.startswith("env:"):
                record["env"] = tag[4:]
                break
    if "date" in obj and not any(key in record for key in ("timestamp", "@timestamp", "eventTime", "date")):
        record["timestamp"] = obj["date"]
    if "_id" in obj:
        record.setdefault("_id", obj["_id"])
    return record
