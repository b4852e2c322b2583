"""The log search syntax subset detection rules use, compiled once into a matcher over one record.

Supported: `CIDR(@attr, block, ...)`,
attribute terms `@a.b:value` (bare, quoted, with `\\` escapes), wildcards `*` and `?` in
values, `@a:*` (the attribute exists), `-term` and `NOT`, `AND` / `OR` with implicit `AND`
between terms, parentheses, value groups `@a:(x OR y)`, numeric ranges `@a:[1 TO 10]` (`{}` for
exclusive bounds, `*` for an open end) and comparisons `@a:>5`, `>=`, `<`, `<=`, the reserved
attributes `service:`, `env:`, `status:` and `source:`, and free text (words and `"phrases"`
matched against `message`). Everything else is a `DetectError` naming the construct and its position.

Case: attribute values are compared case-sensitively (as Datadog does for attributes); `service`,
`env`, `status` and `source` (tags in Datadog, lower-cased at intake) and free text are not.
"""

from __future__ import annotations

import functools
import math
import re
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

from .errors import DetectError

__all__ = ["Matcher", "attribute_getter", "compile_query", "hint_is_exact", "index_hint", "text_of"]

Matcher = Callable[[Mapping[str, Any]], bool]

MAX_QUERY_CHARS: Final = 10_000
MAX_DEPTH: Final = 50
_MISSING: Final[Any] = object()
_RESERVED: Final = {
    "service": ("service",),
    "env": ("env",),
    "status": ("status",),
    "source": ("ddsource", "source"),
    "host": ("host", "hostname"),
}
_KEY_CHARS: Final = re.compile(r"[A-Za-z0-9_.\-]")
# Characters Datadog reserves: in a bare value they must be escaped with a backslash or the value quoted.
_SPECIAL: Final = frozenset('=!^~{}[]<>"“”&|:')
_KEYWORDS: Final = frozenset({"AND", "OR", "NOT"})


def _always(_record: Mapping[str, Any]) -> bool:
    return True


_RECORDING: Final[list[list[str]]] = []
_GETTER_PATHS: Final[weakref.WeakKeyDictionary[Callable[..., Any], str]] = weakref.WeakKeyDictionary()


def paths_read(query: str) -> tuple[str, ...]:
    """The attribute paths a query's matcher reads (every getter its compilation makes), for the columnar
    engine, which hands a matcher only the top-level keys these paths can reach.

    Raises:
        DetectError: as `compile_query`.
    """
    paths: list[str] = []
    _RECORDING.append(paths)
    try:
        _Parser(query).parse()
    finally:
        _RECORDING.pop()
    return tuple(dict.fromkeys(paths))


def getter_path(getter: Callable[..., Any]) -> str | None:
    """The path an `attribute_getter` reads, `None` for any other function."""
    return _GETTER_PATHS.get(getter)


def attribute_getter(path: str) -> Callable[[Mapping[str, Any]], Any]:
    """A function reading the attribute `path` (dotted, no `@`) from a nested record, else a sentinel.

    A record flattened to dotted keys (`{"network.client.ip": ...}`, some exports) is read too, at any
    level. Through an array of objects the path reaches every element, as Datadog's search does
    (`@Parameters.Name` over `"Parameters": [{"Name": ...}, ...]`): the value is then the list of what
    each element holds.
    """
    getter = _make_getter(path)
    _GETTER_PATHS[getter] = path
    for paths in _RECORDING:
        paths.append(path)
    return getter


def _make_getter(path: str) -> Callable[[Mapping[str, Any]], Any]:
    parts = tuple(path.split("."))
    if len(parts) == 1:
        (only,) = parts

        def get_one(record: Mapping[str, Any]) -> Any:
            try:
                return record[only]
            except (KeyError, TypeError, IndexError):
                return _walk(record, parts)

        return get_one
    if len(parts) == 2:
        first, second = parts

        def get_two(record: Mapping[str, Any]) -> Any:
            try:
                return record[first][second]
            except (KeyError, TypeError, IndexError):
                return _walk(record, parts)

        return get_two
    if len(parts) == 3:
        first, second, third = parts

        def get_three(record: Mapping[str, Any]) -> Any:
            try:
                return record[first][second][third]
            except (KeyError, TypeError, IndexError):
                return _walk(record, parts)

        return get_three

    def get(record: Mapping[str, Any]) -> Any:
        current: Any = record
        try:
            for part in parts:
                current = current[part]
        except (KeyError, TypeError, IndexError):
            return _walk(record, parts)
        return current

    return get


def _walk(record: Mapping[str, Any], parts: tuple[str, ...]) -> Any:
    """The slow path of a getter: dotted keys at any level and arrays of objects, iteratively (a value
    nested thousands deep costs a loop, never the interpreter's recursion limit)."""
    found: list[Any] = []
    through_array = False
    stack: list[tuple[Any, int]] = [(record, 0)]
    end = len(parts)
    while stack:
        value, i = stack.pop()
        if i == end:
            found.append(value)
            continue
        if isinstance(value, Mapping):
            mapping = cast("Mapping[str, Any]", value)
            if parts[i] in mapping:
                stack.append((mapping[parts[i]], i + 1))
            for j in range(i + 2, end + 1):  # a dotted key at this level: {"client.ip": ...}
                joined = ".".join(parts[i:j])
                if joined in mapping:
                    stack.append((mapping[joined], j))
        elif isinstance(value, list):
            through_array = True
            stack.extend((item, i) for item in reversed(cast("list[object]", value)))
    if not found:
        return _MISSING
    if len(found) == 1 and not through_array:
        return found[0]
    flat: list[Any] = []
    for item in found:
        if isinstance(item, list):
            flat.extend(cast("list[object]", item))
        else:
            flat.append(item)
    return flat


def is_missing(value: Any) -> bool:
    """Whether `value` is the getter's "absent" sentinel or JSON null."""
    return value is _MISSING or value is None


def text_of(value: Any) -> str:
    """A record value as the text Datadog would index: `true`/`false` for booleans, digits for numbers;
    objects and arrays as canonical JSON (bounded, whatever their depth)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return canonical(value)
    return str(value)


MAX_KEY_CHARS: Final = 256


class _Piece(str):
    """Literal JSON text queued by `canonical` (a `str` subclass so it is never taken for a value)."""

    __slots__ = ()


def canonical(value: Any) -> str:
    """`value` as sorted-key JSON text, built without recursion; past `MAX_KEY_CHARS` characters the text is
    cut and a digest of the whole follows, so distinct values stay distinct and the text stays short."""
    import hashlib
    import json

    out: list[str] = []
    stack: list[Any] = [value]
    size = 0
    digest = hashlib.blake2b(digest_size=12)
    while stack:
        item = stack.pop()
        if item.__class__ is _Piece:
            piece = str(item)
        elif isinstance(item, Mapping):
            mapping = cast("Mapping[object, object]", item)
            keys = sorted(mapping, key=str)
            stack.append(_Piece("}"))
            for n, key in enumerate(reversed(keys)):
                stack.append(mapping[key])
                stack.append(_Piece(json.dumps(str(key)) + ":"))
                if n < len(keys) - 1:
                    stack.append(_Piece(","))
            piece = "{"
        elif isinstance(item, list | tuple):
            items = cast("list[Any]", item)
            stack.append(_Piece("]"))
            for n, element in enumerate(reversed(items)):
                stack.append(element)
                if n < len(items) - 1:
                    stack.append(_Piece(","))
            piece = "["
        elif isinstance(item, str | int | float | bool) or item is None:
            try:
                piece = json.dumps(item)
            except (ValueError, OverflowError):
                piece = json.dumps(str(item))
        else:
            piece = json.dumps(str(item))
        digest.update(piece.encode("utf-8", "surrogatepass"))
        if size < MAX_KEY_CHARS:
            out.append(piece)
        size += len(piece)
    text = "".join(out)
    if size <= MAX_KEY_CHARS:
        return text
    return f"{text[:MAX_KEY_CHARS]}…#{digest.hexdigest()}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:  # an integer beyond a double: compares as an infinity of its sign
            return math.inf if value > 0 else -math.inf
    return None


# --- value tests (what one attribute value must satisfy) ---------------------------------------------------

ValueTest = Callable[[Any], bool]


def _equals(text: str, *, fold: bool) -> ValueTest:
    wanted = text.lower() if fold else text
    try:
        as_number: float | None = float(text)
    except ValueError:
        as_number = None
    if as_number is not None and not math.isfinite(as_number):
        as_number = None

    def test(value: Any) -> bool:
        if value.__class__ is str:
            return (value.lower() if fold else value) == wanted
        number = _number(value)
        if number is not None:
            return as_number is not None and number == as_number
        shown = text_of(value)
        return (shown.lower() if fold else shown) == wanted

    if as_number is None and not fold:
        _set_hint(test, frozenset({text}), exact=True)
    return test


# --- index hints: which exact values a matcher needs, so candidates come from an index, not a scan ---------

_HINT: Final = "_secevents_hint"
_EXACT: Final = "_secevents_exact"


def _set_hint(function: Callable[..., bool], hint: Any, *, exact: bool) -> None:
    setattr(function, _HINT, hint)
    setattr(function, _EXACT, exact)


def _hint_of(function: Callable[..., bool]) -> Any:
    return getattr(function, _HINT, None)


Hint = tuple[tuple[str, frozenset[str]], ...]


def index_hint(matcher: Matcher) -> Hint | None:
    """Pairs of (attribute path, values): every record the matcher accepts has, for each pair, one of these
    exact texts (`text_of`) at that attribute (an element of it, for an array); `None` when no such
    statement holds. The engine intersects the index entries the pairs name instead of scanning."""
    hint = _hint_of(matcher)
    return cast("Hint", hint) if isinstance(hint, tuple) else None


def hint_is_exact(function: Callable[..., bool]) -> bool:
    """Whether the function accepts exactly what its hint describes (the engine then need not call it)."""
    return getattr(function, _EXACT, False) is True


def _wildcard(pattern: str, *, fold: bool) -> ValueTest:
    glob = Glob(pattern, fold=fold)
    return lambda value: glob.fullmatch(text_of(value))


class Glob:
    """A `*`/`?` pattern matched without backtracking: the pieces between stars are found left to right,
    each at its leftmost place (`str.find`, or a quantifier-free regex when it holds `?`), which is
    correct for globs and costs about the value's length times the pattern's, whatever the pattern
    (`*a*a*a*a*b` over 1,000 characters is one pass per piece, not 1,000^4 attempts)."""

    __slots__ = ("fold", "head", "middle", "star", "tail")

    def __init__(self, pattern: str, *, fold: bool) -> None:
        self.fold = fold
        pieces: list[list[tuple[str, bool]]] = [[]]  # per star-separated piece: (char, is_any_one)
        escaped = False
        for char in pattern:
            if escaped:
                pieces[-1].append((char, False))
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == "*":
                pieces.append([])
            elif char == "?":
                pieces[-1].append(("", True))
            else:
                pieces[-1].append((char.lower() if fold else char, False))
        self.star = len(pieces) > 1
        compiled = [_Segment(piece) for piece in pieces]
        self.head = compiled[0]
        self.tail = compiled[-1] if self.star else None
        self.middle = tuple(compiled[1:-1])

    def fullmatch(self, text: str) -> bool:
        if self.fold:
            text = text.lower()
        head = self.head
        if not self.star:
            return head.size == len(text) and head.at(text, 0)
        tail = self.tail
        assert tail is not None
        end = len(text) - tail.size
        if head.size > end or not head.at(text, 0) or not tail.at(text, end):
            return False
        pos = head.size
        for piece in self.middle:
            found = piece.find(text, pos, end)
            if found < 0:
                return False
            pos = found + piece.size
        return True

    def search_word(self, text: str) -> bool:
        """Whether some whitespace-separated word of `text` (trimmed of punctuation at its ends, or not)
        matches the whole pattern."""
        for word in text.split():
            if self.fullmatch(word):
                return True
            trimmed = word.strip(_PUNCTUATION)
            if trimmed != word and trimmed and self.fullmatch(trimmed):
                return True
        return False


_PUNCTUATION: Final = "\"'`.,;:!?()[]{}<>"


class _Segment:
    """Fixed-length text with optional `?` positions: `at` tests one place, `find` the leftmost."""

    __slots__ = ("literal", "regex", "size")

    def __init__(self, piece: list[tuple[str, bool]]) -> None:
        self.size = len(piece)
        if any(any_one for _, any_one in piece):
            self.literal: str | None = None
            body = "".join("." if any_one else re.escape(char) for char, any_one in piece)
            self.regex: re.Pattern[str] | None = re.compile(body, re.DOTALL)
        else:
            self.literal = "".join(char for char, _ in piece)
            self.regex = None

    def at(self, text: str, pos: int) -> bool:
        if self.literal is not None:
            return text.startswith(self.literal, pos)
        assert self.regex is not None
        return self.regex.match(text, pos) is not None

    def find(self, text: str, start: int, end: int) -> int:
        """The leftmost place in `text[start:end]` where the piece fits whole, else -1."""
        if self.literal is not None:
            return text.find(self.literal, start, end)
        assert self.regex is not None
        found = self.regex.search(text, start, end)
        return found.start() if found is not None else -1


def _wildcard_regex(pattern: str) -> str:
    out: list[str] = []
    escaped = False
    for char in pattern:
        if escaped:
            out.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(re.escape(char))
    return "".join(out)


def _compare(operator: str, bound: float) -> ValueTest:
    def test(value: Any) -> bool:
        number = _number(value)
        if number is None:
            return False
        if operator == ">":
            return number > bound
        if operator == ">=":
            return number >= bound
        if operator == "<":
            return number < bound
        return number <= bound

    return test


def _range(low: float | None, high: float | None, *, inclusive: bool) -> ValueTest:
    def test(value: Any) -> bool:
        number = _number(value)
        if number is None:
            return False
        if low is not None and (number < low if inclusive else number <= low):
            return False
        return not (high is not None and (number > high if inclusive else number >= high))

    return test


def _on_attribute(getter: Callable[[Mapping[str, Any]], Any], test: ValueTest, path: str = "") -> Matcher:
    def match(record: Mapping[str, Any]) -> bool:
        value = getter(record)
        if value is _MISSING or value is None:
            return False
        if isinstance(value, list):
            return any(item is not None and test(item) for item in cast("list[object]", value))
        return test(value)

    values = _hint_of(test)
    if path and isinstance(values, frozenset):
        _set_hint(match, ((path, values),), exact=hint_is_exact(test))
    return match


def _exists(getters: tuple[Callable[[Mapping[str, Any]], Any], ...]) -> Matcher:
    def match(record: Mapping[str, Any]) -> bool:
        return any(not is_missing(get(record)) for get in getters)

    return match


def _any_of(
    getters: tuple[Callable[[Mapping[str, Any]], Any], ...], test: ValueTest, path: str = ""
) -> Matcher:
    if len(getters) == 1:
        return _on_attribute(getters[0], test, path)
    matchers = tuple(_on_attribute(get, test) for get in getters)
    return lambda record: any(m(record) for m in matchers)


def _free_text(pattern: str, *, phrase: bool) -> Matcher:
    """Free text against `message`: a phrase or plain word as a whole-word, case-insensitive search; a word
    with wildcards against each word of the message (linear, see `Glob`)."""
    get = attribute_getter("message")
    if not phrase and _has_wildcard(pattern):
        glob = Glob(pattern, fold=True)

        def match_words(record: Mapping[str, Any]) -> bool:
            message = get(record)
            return isinstance(message, str) and glob.search_word(message)

        return match_words
    body = re.escape(pattern) if phrase else _wildcard_regex(pattern)
    regex = re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)

    def match(record: Mapping[str, Any]) -> bool:
        message = get(record)
        return isinstance(message, str) and regex.search(message) is not None

    return match


# --- the parser ---------------------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the query text; each parse method returns a compiled matcher."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def fail(self, what: str, pos: int | None = None) -> DetectError:
        at = self.pos if pos is None else pos
        shown = self.text if len(self.text) <= 200 else self.text[:200] + "…"
        return DetectError(f"{what} at position {at} of query {shown!r}")

    # lexical helpers

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def keyword(self) -> str | None:
        """The keyword (AND, OR, NOT) at the cursor, if a whole word."""
        for word in _KEYWORDS:
            end = self.pos + len(word)
            if self.text.startswith(word, self.pos) and (
                end == len(self.text) or self.text[end] in " \t\r\n()"
            ):
                return word
        if self.text.startswith("&&", self.pos) or self.text.startswith("||", self.pos):
            raise self.fail(f"operator {self.text[self.pos : self.pos + 2]!r} (use AND / OR)")
        return None

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"nesting deeper than {MAX_DEPTH}")

    # grammar

    def parse(self) -> Matcher:
        self.skip_space()
        if self.pos == len(self.text):
            return _always
        matcher = self.or_expr(closing=False)
        self.skip_space()
        if self.pos < len(self.text):
            raise self.fail(f"unexpected {self.peek()!r}")
        return matcher

    def or_expr(self, *, closing: bool) -> Matcher:
        parts = [self.and_expr(closing=closing)]
        while True:
            self.skip_space()
            if self.keyword() != "OR":
                break
            self.pos += 2
            parts.append(self.and_expr(closing=closing))
        if len(parts) == 1:
            return parts[0]
        branches = tuple(parts)

        either = _any_matcher(branches)

        hints = [index_hint(m) for m in branches]
        singles = [h[0] for h in hints if h is not None and len(h) == 1]
        paths = {path for path, _ in singles}
        if len(singles) == len(hints) and len(paths) == 1:
            union = frozenset[str]().union(*(values for _, values in singles))
            _set_hint(either, ((paths.pop(), union),), exact=all(hint_is_exact(m) for m in branches))
        return either

    def and_expr(self, *, closing: bool) -> Matcher:
        parts = [self.unary()]
        while True:
            self.skip_space()
            if self.pos == len(self.text) or (closing and self.peek() == ")"):
                break
            if self.peek() == ")":
                raise self.fail("unbalanced ')'")
            word = self.keyword()
            if word == "OR":
                break
            if word == "AND":
                self.pos += 3
            parts.append(self.unary())
        if len(parts) == 1:
            return parts[0]
        branches = tuple(parts)

        both = _all_matcher(branches)

        hints = tuple(pair for h in (index_hint(m) for m in branches) if h is not None for pair in h)
        if hints:
            _set_hint(both, hints, exact=all(hint_is_exact(m) for m in branches))
        return both

    def unary(self) -> Matcher:
        self.skip_space()
        start = self.pos
        negate = False
        if self.keyword() == "NOT":
            self.pos += 3
            negate = True
        elif self.peek() == "-":
            self.pos += 1
            if self.peek() == "" or self.peek().isspace():
                raise self.fail("'-' with nothing to negate", start)
            negate = True
        if negate:
            self.enter()
            inner = self.unary()
            self.depth -= 1
            return lambda record: not inner(record)
        return self.primary()

    def primary(self) -> Matcher:
        self.skip_space()
        char = self.peek()
        if char == "":
            raise self.fail("missing term at end of query")
        if char == "(":
            start = self.pos
            self.pos += 1
            self.enter()
            inner = self.or_expr(closing=True)
            self.depth -= 1
            self.skip_space()
            if self.peek() != ")":
                raise self.fail("unclosed '('", start)
            self.pos += 1
            return inner
        if char == ")":
            raise self.fail("unbalanced ')'")
        if char in '"“”':
            return _free_text(self.quoted(), phrase=True)
        if self.keyword() is not None:
            raise self.fail(f"{self.keyword()} without a term")
        if self.text.startswith("CIDR(", self.pos):
            return self.cidr()
        return self.term()

    def cidr(self) -> Matcher:
        """`CIDR(@attr, 10.0.0.0/8, 2001:db8::/32)`: the attribute is an address inside one of the blocks."""
        import ipaddress

        start = self.pos
        end = self.text.find(")", start)
        if end < 0:
            raise self.fail("unclosed 'CIDR('", start)
        args = [arg.strip() for arg in self.text[start + 5 : end].split(",")]
        if len(args) < 2 or not args[0].startswith("@") or len(args[0]) < 2:
            raise self.fail("CIDR() takes an @attribute and at least one block: CIDR(@a, 10.0.0.0/8)", start)
        blocks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for arg in args[1:]:
            try:
                blocks.append(ipaddress.ip_network(arg, strict=False))
            except ValueError:
                raise self.fail(f"CIDR() block {arg!r} is not an address block", start) from None
        self.pos = end + 1
        networks = tuple(blocks)

        def inside(value: Any) -> bool:
            if not isinstance(value, str) or len(value) > 64:
                return False
            try:
                address = ipaddress.ip_address(value.strip())
            except ValueError:
                return False
            return any(address.version == net.version and address in net for net in networks)

        return _any_of((attribute_getter(args[0][1:]),), inside)

    def term(self) -> Matcher:
        start = self.pos
        key_end = self.pos
        if self.peek() == "@":
            key_end += 1
        while key_end < len(self.text) and _KEY_CHARS.match(self.text[key_end]):
            key_end += 1
        if key_end < len(self.text) and self.text[key_end] == ":" and key_end > start:
            key = self.text[start:key_end]
            self.pos = key_end + 1
            return self.attribute(key, start)
        if self.peek() == "@":
            raise self.fail("attribute term without ':value'", start)
        word = self.bare_value(start)
        if word == "*":
            return _always
        return _free_text(word, phrase=False)

    def attribute(self, key: str, start: int) -> Matcher:
        if key.startswith("@"):
            path = key[1:]
            if not path or path.startswith(".") or path.endswith(".") or ".." in path:
                raise self.fail(f"malformed attribute name {key!r}", start)
            getters: tuple[Callable[[Mapping[str, Any]], Any], ...] = (attribute_getter(path),)
            fold = False
        elif key in _RESERVED:
            getters = tuple(attribute_getter(name) for name in _RESERVED[key])
            fold = True
        else:
            raise self.fail(
                f"tag or attribute {key + ':'!r} (only @attributes and service:, env:, status:, source:, "
                "host: are supported; tags are not in the records)",
                start,
            )
        char = self.peek()
        if char == "" or char.isspace():
            raise self.fail(f"{key}: without a value", start)
        if char == "*" and self._value_ends(self.pos + 1):
            self.pos += 1
            return _exists(getters)
        return _any_of(getters, self.value_test(fold), key[1:] if key.startswith("@") else "")

    def _value_ends(self, pos: int) -> bool:
        return pos >= len(self.text) or self.text[pos].isspace() or self.text[pos] == ")"

    def value_test(self, fold: bool) -> ValueTest:
        char = self.peek()
        start = self.pos
        if char in '"“”':
            return _equals(self.quoted(), fold=fold)
        if char == "(":
            self.pos += 1
            self.enter()
            test = self.value_or(fold)
            self.depth -= 1
            self.skip_space()
            if self.peek() != ")":
                raise self.fail("unclosed '(' in a value group", start)
            self.pos += 1
            return test
        if char in "[{":
            return self.range_value()
        if char in "<>":
            operator = char
            self.pos += 1
            if self.peek() == "=":
                operator += "="
                self.pos += 1
            bound = self.number(self.bare_value(self.pos), start)
            if bound is None:
                raise self.fail(f"comparison {operator} needs a number", start)
            return _compare(operator, bound)
        text = self.bare_value(start)
        if _has_wildcard(text):
            return _wildcard(text, fold=fold)
        return _equals(_unescape(text), fold=fold)

    def value_or(self, fold: bool) -> ValueTest:
        parts = [self.value_and(fold)]
        while True:
            self.skip_space()
            if self.keyword() != "OR":
                break
            self.pos += 2
            parts.append(self.value_and(fold))
        if len(parts) == 1:
            return parts[0]
        branches = tuple(parts)

        def either(value: Any) -> bool:
            return any(t(value) for t in branches)

        hints = [_hint_of(t) for t in branches]
        if all(isinstance(h, frozenset) for h in hints):
            _set_hint(either, frozenset().union(*hints), exact=all(hint_is_exact(t) for t in branches))
        return either

    def value_and(self, fold: bool) -> ValueTest:
        parts = [self.value_unary(fold)]
        while True:
            self.skip_space()
            char = self.peek()
            if char in ("", ")"):
                break
            word = self.keyword()
            if word == "OR":
                break
            if word == "AND":
                self.pos += 3
            parts.append(self.value_unary(fold))
        if len(parts) == 1:
            return parts[0]
        branches = tuple(parts)
        return lambda value: all(t(value) for t in branches)

    def value_unary(self, fold: bool) -> ValueTest:
        self.skip_space()
        start = self.pos
        if self.keyword() == "NOT" or self.peek() == "-":
            self.pos += 3 if self.peek() == "N" else 1
            if self.peek() == "" or self.peek().isspace() or self.peek() == ")":
                raise self.fail("negation with nothing to negate", start)
            self.enter()
            inner = self.value_unary(fold)
            self.depth -= 1
            return lambda value: not inner(value)
        if self.peek() == "":
            raise self.fail("unclosed '(' in a value group")
        if self.peek() == ")":
            raise self.fail("empty value in a value group")
        if self.keyword() is not None:
            raise self.fail(f"{self.keyword()} without a value")
        return self.value_test(fold)

    def range_value(self) -> ValueTest:
        start = self.pos
        inclusive = self.peek() == "["
        closer = "]" if inclusive else "}"
        end = self.text.find(closer, self.pos)
        if end < 0:
            raise self.fail(f"unclosed range (no {closer!r})", start)
        body = self.text[self.pos + 1 : end].split()
        if len(body) != 3 or body[1] != "TO":
            raise self.fail("range not of the form [low TO high]", start)
        low = None if body[0] == "*" else self.number(body[0], start)
        high = None if body[2] == "*" else self.number(body[2], start)
        if (low is None and body[0] != "*") or (high is None and body[2] != "*"):
            raise self.fail("range with a non-numeric bound", start)
        self.pos = end + 1
        return _range(low, high, inclusive=inclusive)

    def number(self, text: str, start: int) -> float | None:
        try:
            value = float(text)
        except ValueError:
            return None
        if not math.isfinite(value):
            raise self.fail(f"non-finite number {text!r}", start)
        return value

    def quoted(self) -> str:
        start = self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if char in '"“”':
                self.pos += 1
                return "".join(out)
            out.append(char)
            self.pos += 1
        raise self.fail("unclosed quote", start)

    def bare_value(self, start: int) -> str:
        """A bare word up to whitespace or an unescaped parenthesis; escapes are kept for the caller."""
        begin = self.pos
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\":
                if self.pos + 1 == len(self.text):
                    raise self.fail("trailing backslash")
                self.pos += 2
                continue
            if char.isspace() or char in "()":
                break
            if char in _SPECIAL:
                raise self.fail(f"unescaped {char!r} in a value (escape it with \\ or quote the value)")
            self.pos += 1
        if self.pos == begin:
            raise self.fail("empty value", start)
        return self.text[begin : self.pos]


def _all_matcher(parts: tuple[Matcher, ...]) -> Matcher:
    if len(parts) == 2:
        first, second = parts
        return lambda record: first(record) and second(record)
    return lambda record: all(m(record) for m in parts)


def _any_matcher(parts: tuple[Matcher, ...]) -> Matcher:
    if len(parts) == 2:
        first, second = parts
        return lambda record: first(record) or second(record)
    return lambda record: any(m(record) for m in parts)


def _has_wildcard(text: str) -> bool:
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "*?":
            return True
    return False


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text, flags=re.DOTALL)


@functools.lru_cache(maxsize=1024)
def compile_query(query: str) -> Matcher:
    """Compile a log search query into a function telling whether one record matches it.

    Args:
        query: log search syntax, e.g. `@evt.type:authn_login_fail -@usr.exists:true`.

    Returns:
        A matcher, called with one record (a nested dict as the library writes it).

    Raises:
        DetectError: on syntax outside the supported subset, naming the construct and its position.
    """
    if not isinstance(query, str):
        raise DetectError(f"a query must be a string, got {type(query).__name__}")
    if len(query) > MAX_QUERY_CHARS:
        raise DetectError(f"query longer than {MAX_QUERY_CHARS} characters")
    return _Parser(query).parse()
