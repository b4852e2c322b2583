"""A detection rule's API JSON checked and compiled into what the engine runs: queries, cases, options.

Everything the engine cannot evaluate stops here with a `DetectError` naming it, before any record is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from .errors import DetectError
from .query import Matcher, attribute_getter, compile_query

__all__ = ["SEVERITIES", "CompiledQuery", "CompiledRule", "Condition", "compile_rule", "rule_id_of"]

SEVERITIES: Final = ("info", "low", "medium", "high", "critical")
METHODS: Final = ("threshold", "new_value", "impossible_travel")
THRESHOLD_AGGREGATIONS: Final = ("count", "cardinality", "sum", "max")
GEO_METRIC: Final = "@network.client.geoip"
DAY: Final = 86400.0
_RULE_TAG: Final = "secevents_rule:"
# Rule keys that change what fires and that the engine does not implement: refused, never ignored.
_UNSUPPORTED_KEYS: Final = (
    "schedulingOptions",
    "calculatedFields",
    "referenceTables",
    "signalQueries",
    "thirdPartyCases",
    "groupSignalsBy",
)

Getter = Callable[[Mapping[str, Any]], Any]
Values = Mapping[str, float | None]
Condition = Callable[[Values], bool]


@dataclass(frozen=True)
class CompiledQuery:
    """One named query of a rule."""

    alias: str
    text: str
    matcher: Matcher
    aggregation: str
    group_by: tuple[tuple[str, Getter], ...]  # (field without '@', getter)
    optional_group_by: bool
    distinct: tuple[Getter, ...]
    metrics: tuple[Getter, ...]


@dataclass(frozen=True)
class CompiledCase:
    """One case: its name (else its condition), severity, and compiled condition (None: always)."""

    label: str
    status: str
    condition: Condition | None
    text: str


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to run."""

    rule_id: str
    name: str
    method: str
    queries: tuple[CompiledQuery, ...]
    cases: tuple[CompiledCase, ...]
    filters: tuple[tuple[str, Matcher], ...]  # ("require" | "suppress", matcher)
    window: float
    keep_alive: float
    max_duration: float
    decrease_on_env: bool
    learning: float  # new_value: seconds
    forget_after: float  # new_value: seconds
    baseline: float  # impossible_travel: seconds of learned locations, 0 = none


def _as_mapping(value: object) -> Mapping[str, Any] | None:
    """`value` as a JSON object, `None` when it is not one (rule JSON is user input: any shape)."""
    return cast("Mapping[str, Any]", value) if isinstance(value, Mapping) else None


def _as_list(value: object) -> list[object] | None:
    """`value` as a JSON array, `None` when it is not one."""
    return cast("list[object]", value) if isinstance(value, list) else None


def rule_id_of(rule: Mapping[str, Any]) -> str:
    """The id a rule carries in its `secevents_rule:<id>` tag, else its name."""
    tags = _as_list(rule.get("tags"))
    if tags is not None:
        for tag in tags:
            if isinstance(tag, str) and tag.startswith(_RULE_TAG):
                return tag[len(_RULE_TAG) :]
    name = rule.get("name")
    return name if isinstance(name, str) else "<unnamed rule>"


def compile_rule(rule: Mapping[str, Any]) -> CompiledRule | None:
    """Check one rule's API JSON and compile it; `None` for a disabled rule (`isEnabled: false`).

    Raises:
        DetectError: the rule uses something the engine cannot evaluate, or is malformed.
    """
    if not isinstance(rule, Mapping):
        raise DetectError(f"a rule must be a JSON object, got {type(rule).__name__}")
    rule_id = rule_id_of(rule)
    where = f"rule {rule_id!r}"
    try:
        return _compile(rule, rule_id, where)
    except DetectError as exc:
        if str(exc).startswith(where):
            raise
        raise DetectError(f"{where}: {exc}") from None


def _compile(rule: Mapping[str, Any], rule_id: str, where: str) -> CompiledRule | None:
    if rule.get("isEnabled", True) is False:
        return None
    kind = rule.get("type", "log_detection")
    if kind != "log_detection":
        raise DetectError(f"rule type {kind!r} (only log_detection)")
    for key in _UNSUPPORTED_KEYS:
        if rule.get(key):
            raise DetectError(f"{key!r} is not supported")
    options = _mapping(rule.get("options", {}), "options")
    method = options.get("detectionMethod", "threshold")
    if method not in METHODS:
        raise DetectError(f"detectionMethod {method!r} (supported: {', '.join(METHODS)})")
    raw_queries = _as_list(rule.get("queries"))
    if raw_queries is None or not raw_queries:
        raise DetectError("no queries")
    queries = tuple(_query(q, i, method) for i, q in enumerate(raw_queries))
    aliases = [q.alias for q in queries]
    if len(set(aliases)) != len(aliases):
        raise DetectError(f"duplicate query names {aliases}")
    if method == "threshold":
        # Datadog joins the queries on the group-by *values*, position by position, whatever the attributes
        # are called (`@requestParameters.snapshotId` in one, `@responseElements.snapshotId` in another).
        sizes = {len(q.group_by) for q in queries}
        if len(sizes) > 1:
            shown = [[name for name, _ in q.group_by] for q in queries]
            raise DetectError(f"queries group by different numbers of fields {shown}: they cannot be joined")
    elif len(queries) != 1:
        raise DetectError(f"a {method} rule has exactly one query, got {len(queries)}")
    cases = _cases(rule.get("cases"), method, set(aliases))
    name = rule.get("name")
    window = _seconds(options, "evaluationWindow", None if method == "threshold" else 0.0)
    keep_alive = _seconds(options, "keepAlive", 3600.0)
    new_value = _mapping(options.get("newValueOptions", {}), "newValueOptions")
    travel = _mapping(options.get("impossibleTravelOptions", {}), "impossibleTravelOptions")
    if method == "new_value":
        if new_value.get("learningMethod", "duration") != "duration":
            raise DetectError(
                f"newValueOptions.learningMethod {new_value['learningMethod']!r} (only duration)"
            )
        if new_value.get("instantaneousBaseline"):
            raise DetectError("newValueOptions.instantaneousBaseline")
    if method == "impossible_travel" and travel.get("detectIpTransition"):
        raise DetectError("impossibleTravelOptions.detectIpTransition")
    baseline = 0.0
    if travel.get("baselineUserLocations"):
        baseline = _seconds(travel, "baselineUserLocationsDuration", 1.0) * DAY
    if method == "new_value" and new_value.get("learningMethod") == "threshold":
        raise DetectError("newValueOptions.learningMethod 'threshold' (only duration)")
    return CompiledRule(
        rule_id=rule_id,
        name=name if isinstance(name, str) else rule_id,
        method=method,
        queries=queries,
        cases=cases,
        filters=_filters(rule.get("filters")),
        window=window,
        keep_alive=keep_alive,
        max_duration=_seconds(options, "maxSignalDuration", 86400.0),
        decrease_on_env=bool(options.get("decreaseCriticalityBasedOnEnv", False)),
        learning=_seconds(new_value, "learningDuration", 0.0) * DAY,  # the API's default: 0 days
        forget_after=_seconds(new_value, "forgetAfter", 28.0) * DAY,
        baseline=baseline,
    )


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    mapping = _as_mapping(value)
    if mapping is None:
        raise DetectError(f"{what} must be an object")
    return mapping


def _seconds(options: Mapping[str, Any], key: str, default: float | None) -> float:
    value = options.get(key, default)
    if value is None:
        raise DetectError(f"options.{key} is required")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 10 * 365 * DAY:
        raise DetectError(f"{key} must be a number of seconds from 0 to ten years, got {value!r}")
    return float(value)


def _fields(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    items = _as_list(value)
    if items is None or not all(isinstance(f, str) and f for f in items):
        raise DetectError(f"{what} must be a list of attribute names")
    return cast("list[str]", items)


def _path(field: str) -> str:
    return field[1:] if field.startswith("@") else field


def default_alias(index: int) -> str:
    """The name conditions use for an unnamed query: `a`, `b`, … by position (Datadog's convention)."""
    return chr(ord("a") + index) if index < 26 else f"q{index}"


def _query(value: Any, index: int, method: str) -> CompiledQuery:
    raw = _as_mapping(value)
    if raw is None:
        raise DetectError(f"query {index} must be an object")
    alias = raw.get("name") or default_alias(index)
    if not isinstance(alias, str):
        raise DetectError(f"query {index}: name must be a string")
    text = raw.get("query", "")
    if not isinstance(text, str):
        raise DetectError(f"query {alias!r}: query must be a string")
    extension = raw.get("customQueryExtension")
    if extension is not None and not isinstance(extension, str):
        raise DetectError(f"query {alias!r}: customQueryExtension must be a string")
    if extension and extension.strip():
        # Datadog appends the extension to the query: both must hold.
        text = f"({text}) ({extension})" if text.strip() else extension
    source = raw.get("dataSource", "logs")
    if source != "logs":
        raise DetectError(f"query {alias!r}: dataSource {source!r} (only logs)")
    aggregation = raw.get("aggregation", "count")
    expected = {"new_value": ("new_value",), "impossible_travel": ("geo_data",)}.get(
        method, THRESHOLD_AGGREGATIONS
    )
    if aggregation not in expected:
        raise DetectError(
            f"query {alias!r}: aggregation {aggregation!r} in a {method} rule "
            f"(supported: {', '.join(expected)})"
        )
    group_fields = _fields(raw.get("groupByFields"), f"query {alias!r}: groupByFields")
    distinct = _fields(raw.get("distinctFields"), f"query {alias!r}: distinctFields")
    metrics = _fields(raw.get("metrics"), f"query {alias!r}: metrics")
    if not metrics and raw.get("metric"):  # the deprecated singular form, still in Datadog's own rules
        metrics = _fields([raw.get("metric")], f"query {alias!r}: metric")
    if aggregation == "cardinality" and not distinct:
        raise DetectError(f"query {alias!r}: cardinality needs distinctFields")
    if aggregation in ("sum", "max") and len(metrics) != 1:
        raise DetectError(f"query {alias!r}: {aggregation} needs exactly one metric")
    if aggregation == "new_value" and not 1 <= len(metrics) <= 5:
        raise DetectError(f"query {alias!r}: new_value watches 1 to 5 metrics")
    if aggregation == "geo_data" and metrics != [GEO_METRIC]:
        raise DetectError(f"query {alias!r}: geo_data needs metrics [{GEO_METRIC!r}], got {metrics}")
    return CompiledQuery(
        alias=alias,
        text=text,
        matcher=compile_query(text),
        aggregation=aggregation,
        group_by=tuple((_path(f), attribute_getter(_path(f))) for f in group_fields),
        optional_group_by=bool(raw.get("hasOptionalGroupByFields", False)),
        distinct=tuple(attribute_getter(_path(f)) for f in distinct),
        metrics=tuple(attribute_getter(_path(f)) for f in metrics),
    )


def _filters(raw: Any) -> tuple[tuple[str, Matcher], ...]:
    if not raw:
        return ()
    items = _as_list(raw)
    if items is None:
        raise DetectError("filters must be a list")
    out: list[tuple[str, Matcher]] = []
    for value in items:
        item = _as_mapping(value)
        action = item.get("action") if item is not None else None
        if item is None or action not in ("require", "suppress"):
            raise DetectError(f"filter action {action!r} (require or suppress)")
        out.append((action, compile_query(item.get("query", ""))))
    return tuple(out)


def _cases(raw: Any, method: str, aliases: set[str]) -> tuple[CompiledCase, ...]:
    items = _as_list(raw)
    if items is None or not items:
        raise DetectError("no cases")
    cases: list[CompiledCase] = []
    for index, value in enumerate(items):
        case = _as_mapping(value)
        if case is None:
            raise DetectError(f"case {index} must be an object")
        status = case.get("status")
        if status not in SEVERITIES:
            raise DetectError(f"case {index}: status {status!r} (one of {', '.join(SEVERITIES)})")
        text = case.get("condition") or ""
        if not isinstance(text, str):
            raise DetectError(f"case {index}: condition must be a string")
        if method != "threshold" and text.strip():
            raise DetectError(f"case {index}: a condition ({text!r}) in a {method} rule")
        if method == "threshold" and not text.strip():
            raise DetectError(f"case {index}: a threshold case needs a condition")
        condition = compile_condition(text, aliases) if text.strip() else None
        name = case.get("name")
        label = name if isinstance(name, str) and name else (text or status)
        cases.append(CompiledCase(label=label, status=status, condition=condition, text=text))
    if method != "threshold" and len(cases) > 1:
        raise DetectError(f"a {method} rule has one case, got {len(cases)}")
    return tuple(cases)


# --- case conditions: `a >= 25 && (b > 0 || c == 1)` --------------------------------------------------------

_CONDITION_TOKEN: Final = re.compile(
    r"\s*(?:(>=|<=|==|&&|\|\||[><()])|([A-Za-z_][A-Za-z0-9_]*)|(\d+(?:\.\d+)?))"
)
_COMPARE: Final[dict[str, Callable[[float, float], bool]]] = {
    ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y,
    "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y,
    "==": lambda x, y: x == y,
}


def compile_condition(text: str, aliases: set[str]) -> Condition:
    """Compile a case condition over query aliases.

    Supported: `>`, `>=`, `<`, `<=`, `==`, `&&`, `||` and parentheses, between an alias and
    a number. A comparison on a query with no event in the window for the group is false (Datadog: a
    group-by value missing from one query means the case cannot match).

    Raises:
        DetectError: any other operator (`THEN`, `!=`, arithmetic), naming it and its position, or an
            alias no query defines.
    """
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        found = _CONDITION_TOKEN.match(text, pos)
        if found is None:
            if text[pos:].strip() == "":
                break
            bad = text[pos:].lstrip()
            raise DetectError(
                f"condition {text!r}: unsupported {bad.split()[0]!r} at position {len(text) - len(bad)}"
            )
        op, name, number = found.groups()
        start = found.start(found.lastindex or 0)
        if name is not None:
            if name == "THEN" or name in ("and", "or", "not", "AND", "OR", "NOT"):
                raise DetectError(f"condition {text!r}: unsupported {name!r} at position {start}")
            tokens.append(("name", name, start))
        elif number is not None:
            tokens.append(("number", number, start))
        else:
            tokens.append(("op", op, start))
        pos = found.end()
    return _ConditionParser(text, tokens, aliases).parse()


def condition_grows(text: str) -> bool:
    """Whether a compiled condition can only turn from false to true as query values grow: every comparison
    is `alias > number`, `alias >= number`, `number < alias` or `number <= alias` (a query with no event is
    below every number), joined by `&&`, `||` and parentheses. Then a group whose values over all its
    events fail the condition fails it in every window too (a window's count, distinct count and maximum
    never exceed the whole group's)."""
    tokens = [m.group(1) or m.group(2) or m.group(3) for m in _CONDITION_TOKEN.finditer(text)]
    kinds = [
        "op" if t in _COMPARE or t in ("&&", "||", "(", ")") else "number" if t[0].isdigit() else "name"
        for t in tokens
    ]
    for i, token in enumerate(tokens):
        if token not in _COMPARE:
            continue
        if i == 0 or i + 1 >= len(tokens):
            return False
        left, right = kinds[i - 1], kinds[i + 1]
        if not (
            (left == "name" and right == "number" and token in (">", ">="))
            or (left == "number" and right == "name" and token in ("<", "<="))
        ):
            return False
    return True


class _ConditionParser:
    def __init__(self, text: str, tokens: Sequence[tuple[str, str, int]], aliases: set[str]) -> None:
        self.text = text
        self.tokens = tokens
        self.aliases = aliases
        self.i = 0
        self.depth = 0

    def fail(self, what: str) -> DetectError:
        at = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text)
        return DetectError(f"condition {self.text!r}: {what} at position {at}")

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def parse(self) -> Condition:
        condition = self.either()
        if self.i < len(self.tokens):
            raise self.fail(f"unexpected {self.peek()!r}")
        return condition

    def either(self) -> Condition:
        parts = [self.both()]
        while self.peek() == "||":
            self.i += 1
            parts.append(self.both())
        if len(parts) == 1:
            return parts[0]
        if len(parts) == 2:
            first, second = parts
            return lambda values: first(values) or second(values)
        return lambda values: any(p(values) for p in parts)

    def both(self) -> Condition:
        parts = [self.atom()]
        while self.peek() == "&&":
            self.i += 1
            parts.append(self.atom())
        if len(parts) == 1:
            return parts[0]
        if len(parts) == 2:
            first, second = parts
            return lambda values: first(values) and second(values)
        return lambda values: all(p(values) for p in parts)

    def atom(self) -> Condition:
        if self.peek() == "(":
            self.i += 1
            self.depth += 1
            if self.depth > 50:
                raise self.fail("nesting deeper than 50")
            inner = self.either()
            self.depth -= 1
            if self.peek() != ")":
                raise self.fail("missing ')'")
            self.i += 1
            return inner
        left = self.operand()
        op = self.peek()
        if op not in _COMPARE:
            raise self.fail("expected a comparison (> >= < <= ==)")
        self.i += 1
        right = self.operand()
        compare = _COMPARE[op]

        def test(values: Values) -> bool:
            x = left(values)
            y = right(values)
            return x is not None and y is not None and compare(x, y)

        return test

    def operand(self) -> Callable[[Values], float | None]:
        if self.i >= len(self.tokens):
            raise self.fail("missing operand")
        kind, text, _ = self.tokens[self.i]
        if kind == "number":
            self.i += 1
            number = float(text)
            return lambda _values: number
        if kind == "name":
            if text not in self.aliases:
                raise self.fail(f"unknown query {text!r} (queries: {', '.join(sorted(self.aliases))})")
            self.i += 1
            return lambda values: values.get(text)
        raise self.fail(f"unexpected {text!r}")
