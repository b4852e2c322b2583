"""`secevents rules --check`: a team's detection-rule JSON against the constraints Datadog enforces.

The constraints are those of the Terraform provider's `datadog_security_monitoring_rule` schema and Datadog's
detection-method pages (listed in docs/detection-rules.md): the rule `type`; the detection method; query
aggregations; window values from the allowed set with `evaluationWindow <= keepAlive <= maxSignalDuration`;
case statuses and conditions (`>`/`>=` comparisons of query names joined by `&&`/`||`, names that exist); the
method-specific shapes (`new_value`: one `new_value` query watching 1 to 5 fields; `impossible_travel`: one
`geo_data` query on `@network.client.geoip`); required fields; and keys nobody reads (a typo such as
`evalutionWindow` would otherwise be dropped silently).

Each `Finding` names the rule and the JSON path of the offending value.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import orjson

from .rules import SEVERITIES, WINDOWS

__all__ = ["Finding", "check_rule", "check_rules", "datadog_problems", "engine_problems", "load_rules"]

RULE_TYPES: Final = ("log_detection", "signal_correlation", "application_security", "workload_security")
METHODS: Final = (
    "threshold",
    "new_value",
    "anomaly_detection",
    "impossible_travel",
    "hardcoded",
    "third_party",
    "anomaly_threshold",
    "sequence_detection",
)
AGGREGATIONS: Final = ("count", "cardinality", "sum", "max", "new_value", "geo_data", "event_count", "none")
GEOIP_FIELD: Final = "@network.client.geoip"
MAX_NEW_VALUE_METRICS: Final = 5
MAX_CONDITION_DEPTH: Final = 32
_WINDOW_KEYS: Final = ("evaluationWindow", "keepAlive", "maxSignalDuration")
_QUERY_KEYS: Final = frozenset(
    {
        "name",
        "query",
        "aggregation",
        "groupByFields",
        "distinctFields",
        "metrics",
        "metric",
        "hasOptionalGroupByFields",
        "dataSource",
        "indexes",
        "customQueryExtension",
        "correlatedByFields",
        "defaultRuleId",
        "ruleId",
    }
)
_CASE_KEYS: Final = frozenset({"name", "status", "condition", "notifications", "actions", "customStatus"})
# Top-level keys of the API's rule JSON (what `GET /rules` returns, and what create/update take).
_RULE_KEYS: Final = frozenset(
    {
        "name",
        "message",
        "type",
        "isEnabled",
        "tags",
        "options",
        "queries",
        "cases",
        "filters",
        "hasExtendedTitle",
        "groupSignalsBy",
        "referenceTables",
        "schedulingOptions",
        "calculatedFields",
        "signalQueries",
        "thirdPartyCases",
        "complianceSignalOptions",
        "customMessage",
        "customName",
        "validate",
        "id",
        "version",
        "createdAt",
        "updatedAt",
        "creationAuthorId",
        "updateAuthorId",
        "creator",
        "updater",
        "isDefault",
        "isPartner",
        "isBeta",
        "isDeleted",
        "isDeprecated",
        "deprecationDate",
        "defaultRuleId",
        "defaultTags",
        "blocking",
        "metadata",
        "findingType",
    }
)
_OPTION_KEYS: Final = frozenset(
    {
        "detectionMethod",
        *_WINDOW_KEYS,
        "decreaseCriticalityBasedOnEnv",
        "newValueOptions",
        "impossibleTravelOptions",
        "anomalyDetectionOptions",
        "sequenceDetectionOptions",
        "thirdPartyRuleOptions",
        "hardcodedEvaluatorType",
        "complianceRuleOptions",
        "relatedSignalsFields",
    }
)
_NEW_VALUE_KEYS: Final = frozenset(
    {
        "forgetAfter",
        "learningDuration",
        "learningMethod",
        "learningThreshold",
        "instantaneousBaseline",
        "instantaneousBaselineTimeoutMinutes",
    }
)
_TRAVEL_KEYS: Final = frozenset(
    {"baselineUserLocations", "baselineUserLocationsDuration", "detectIpTransition"}
)
_TOKEN: Final = re.compile(
    r"\s*(?:(>=|>|<=|<|==|!=|&&|\|\||\(|\))|([A-Za-z_][A-Za-z0-9_]*)|([0-9]+(?:\.[0-9]+)?))"
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One constraint a rule breaks."""

    rule: str
    """The rule's `name`, else its position (`rule #2`)."""
    path: str
    """JSON path of the value, e.g. `$[1].options.keepAlive`."""
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.path}: {self.message}"


def load_rules(text: str | bytes) -> tuple[list[tuple[str, Any]], list[Finding]]:
    """Parse one rule (an object), a list of rules, or a file of several objects (one JSON value per line).

    Returns:
        `(path, rule)` pairs (`$` for a lone rule, `$[i]` in a list, `line N` for JSON lines) and
        findings for what is not JSON.

    Example:
        >>> load_rules('{"name": "x"}')
        ([('$', {'name': 'x'})], [])
    """
    try:
        whole = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        lines = [(n, line) for n, line in enumerate(raw.splitlines(), 1) if line.strip()]
        if len(lines) < 2:
            return [], [Finding("file", "$", f"not JSON: {exc}")]
        found: list[tuple[str, Any]] = []
        problems: list[Finding] = []
        for number, line in lines:
            try:
                found.append((f"line {number}: $", orjson.loads(line)))
            except orjson.JSONDecodeError as line_exc:
                problems.append(Finding("file", f"line {number}", f"not JSON: {line_exc}"))
        return found, problems
    listed = _as_list(whole)
    if listed is not None:
        return [(f"$[{i}]", rule) for i, rule in enumerate(listed)], []
    document = _as_mapping(whole)
    if document is not None and "queries" not in document:
        for key in ("rules", "data"):  # `{"rules": [...]}` as `secevents detect` reads it; the API's `data`
            inner = _as_list(document.get(key))
            if inner is not None:
                return [(f"$.{key}[{i}]", rule) for i, rule in enumerate(inner)], []
    return [("$", whole)], []


def check_rules(text: str | bytes) -> list[Finding]:
    """Every finding for the rules in `text` (see `load_rules` for the shapes it reads).

    Example:
        >>> from graffer_secevents._tools.rules import build_rules
        >>> check_rules(orjson.dumps(build_rules()))
        []
    """
    rules, findings = load_rules(text)
    if not rules and not findings:
        findings.append(Finding("file", "$", "no rules: expected a rule object or a list of rules"))
    for path, rule in rules:
        found = check_rule(rule, path=path)
        findings.extend(found if found else engine_problems(rule, path=path))
    return findings


def datadog_problems(rule: object, *, path: str = "$") -> list[Finding]:
    """What Datadog would refuse in one rule (the same checks as `rules --check`); `detect` runs these
    before the engine's own, so a rule is judged the same way by both commands."""
    return check_rule(rule, path=path)


def engine_problems(rule: object, *, path: str = "$") -> list[Finding]:
    """What the replay engine cannot evaluate in a rule Datadog accepts (a detection method, an operator,
    a search construct), as one finding naming it; empty when `secevents detect` can run the rule."""
    from .detect.compiler import compile_rule
    from .detect.errors import DetectError

    fields = _as_mapping(rule)
    if fields is None:
        return []
    name = fields.get("name")
    label = name if isinstance(name, str) and name.strip() else f"rule at {path}"
    try:
        compile_rule(fields)
    except DetectError as exc:
        text = str(exc)
        text = text.split(": ", 1)[1] if text.startswith("rule ") and ": " in text else text
        return [Finding(label, path, f"the replay engine cannot evaluate it: {text}")]
    except RecursionError:
        return [Finding(label, path, "the replay engine cannot evaluate it: nested too deep")]
    return []


def check_rule(rule: object, *, path: str = "$") -> list[Finding]:
    """The constraints one rule (API JSON, camelCase) breaks; empty when Datadog would accept it.

    Example:
        >>> for finding in check_rule({"name": "r", "message": "m", "queries": [], "cases": []}):
        ...     print(finding)
        r: $.options: required: an object, got nothing
        r: $.queries: at least one query is required
        r: $.cases: at least one case is required
    """
    fields = _as_mapping(rule)
    if fields is None:
        return [Finding(path, path, f"expected a rule object, got {_kind(rule)}")]
    name = fields.get("name")
    label = name if isinstance(name, str) and name.strip() else f"rule at {path}"
    return [Finding(label, where, message) for where, message in _problems(fields, path)]


def _problems(rule: Mapping[str, Any], at: str) -> Iterator[tuple[str, str]]:
    for key in ("name", "message"):
        value = rule.get(key)
        if not isinstance(value, str) or not value.strip():
            yield f"{at}.{key}", f"required: a non-empty string, got {_kind(value)}"
    yield from _unknown_keys(rule, _RULE_KEYS, at)
    rule_type = rule.get("type", "log_detection")
    if rule_type not in RULE_TYPES:
        yield f"{at}.type", f"expected one of {', '.join(RULE_TYPES)}, got {rule_type!r}"
    if "isEnabled" in rule and not isinstance(rule["isEnabled"], bool):
        yield f"{at}.isEnabled", f"expected true or false, got {_kind(rule['isEnabled'])}"
    tags = rule.get("tags", [])
    if not _strings(tags):
        yield f"{at}.tags", "expected a list of strings"
    given_options = rule.get("options")
    options = _as_mapping(given_options)
    if options is None:
        yield f"{at}.options", f"required: an object, got {_kind(given_options)}"
        method: object = "threshold"
    else:
        method = options.get("detectionMethod", "threshold")
        yield from _option_problems(options, method, f"{at}.options")
    queries = _as_list(rule.get("queries")) or []
    names: set[str] = set()
    if not queries:
        yield f"{at}.queries", "at least one query is required"
    for i, query in enumerate(queries):
        yield from _query_problems(query, method, f"{at}.queries[{i}]", names, i, rule_type)
    yield from _shape_problems(queries, method, f"{at}.queries")
    cases = _as_list(rule.get("cases")) or []
    if not cases:
        yield f"{at}.cases", "at least one case is required"
    for i, case in enumerate(cases):
        yield from _case_problems(case, method, names, f"{at}.cases[{i}]", last=i == len(cases) - 1)


def _option_problems(options: Mapping[str, Any], method: object, at: str) -> Iterator[tuple[str, str]]:
    yield from _unknown_keys(options, _OPTION_KEYS, at)
    if method not in METHODS:
        yield f"{at}.detectionMethod", f"expected one of {', '.join(METHODS)}, got {method!r}"
    required = {"threshold": _WINDOW_KEYS}.get(str(method), ("keepAlive", "maxSignalDuration"))
    present: list[tuple[str, Any]] = []
    for key in _WINDOW_KEYS:
        if key not in options:
            if key in required:
                yield f"{at}.{key}", f"required for {method} rules: one of {_windows()} seconds"
            continue
        value = options[key]
        if isinstance(value, bool) or value not in WINDOWS:
            yield f"{at}.{key}", f"expected one of {_windows()} seconds, got {value!r}"
        else:
            present.append((key, value))
    for (key_a, a), (key_b, b) in itertools.pairwise(present):
        if a > b:
            yield f"{at}.{key_b}", f"{key_a} ({a}) must not exceed {key_b} ({b})"
    if method == "new_value":
        nv = _as_mapping(options.get("newValueOptions"))
        if nv is None:
            yield f"{at}.newValueOptions", "required for new_value rules: an object with forgetAfter"
        else:
            yield from _new_value_options(nv, f"{at}.newValueOptions")
    if method == "impossible_travel" and "impossibleTravelOptions" in options:
        given_travel = options["impossibleTravelOptions"]
        travel = _as_mapping(given_travel)
        if travel is None:
            yield f"{at}.impossibleTravelOptions", f"expected an object, got {_kind(given_travel)}"
        else:
            yield from _unknown_keys(travel, _TRAVEL_KEYS, f"{at}.impossibleTravelOptions")
            flag = travel.get("baselineUserLocations", False)
            if not isinstance(flag, bool):
                yield f"{at}.impossibleTravelOptions.baselineUserLocations", "expected true or false"


def _new_value_options(nv: Mapping[str, Any], at: str) -> Iterator[tuple[str, str]]:
    yield from _unknown_keys(nv, _NEW_VALUE_KEYS, at)
    if "forgetAfter" not in nv:
        yield f"{at}.forgetAfter", "required: days, 1 to 30"
    for key, low in (("forgetAfter", 1), ("learningDuration", 0)):
        if key in nv and not _whole_in(nv[key], low, 30):
            yield f"{at}.{key}", f"expected a whole number of days, {low} to 30, got {nv[key]!r}"
    if nv.get("learningMethod", "duration") not in ("duration", "threshold"):
        yield f"{at}.learningMethod", f"expected duration or threshold, got {nv['learningMethod']!r}"
    if "learningThreshold" in nv and not _whole_in(nv["learningThreshold"], 0, 1):
        yield f"{at}.learningThreshold", f"expected 0 or 1, got {nv['learningThreshold']!r}"


def _query_problems(
    value: object, method: object, at: str, names: set[str], index: int, rule_type: object
) -> Iterator[tuple[str, str]]:
    query = _as_mapping(value)
    if query is None:
        yield at, f"expected a query object, got {_kind(value)}"
        return
    yield from _unknown_keys(query, _QUERY_KEYS, at)
    text = query.get("query")
    if rule_type != "signal_correlation" and (not isinstance(text, str) or not text.strip()):
        yield f"{at}.query", f"required: log search syntax, got {_kind(text)}"
    extension = query.get("customQueryExtension")
    if extension is not None and not isinstance(extension, str):
        yield f"{at}.customQueryExtension", f"expected log search syntax, got {_kind(extension)}"
    name = query.get("name")
    if name is None or name == "":
        # Unnamed queries are `a`, `b`, ... by position, as Datadog's own rules use them (`a > 0`).
        from .detect.compiler import default_alias

        names.add(default_alias(index))
    elif not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        yield f"{at}.name", f"expected a name conditions can use (letters, digits, _), got {name!r}"
    elif name in names:
        yield f"{at}.name", f"two queries are named {name!r}"
    else:
        names.add(name)
    aggregation = query.get("aggregation", "count")
    if aggregation not in AGGREGATIONS:
        yield f"{at}.aggregation", f"expected one of {', '.join(AGGREGATIONS)}, got {aggregation!r}"
    for key in ("groupByFields", "distinctFields", "metrics"):
        if key in query and not _strings(query[key]):
            yield f"{at}.{key}", "expected a list of strings"
    if aggregation == "cardinality" and not query.get("distinctFields"):
        yield f"{at}.distinctFields", "cardinality counts distinct values of distinctFields: name one"
    if aggregation in ("sum", "max") and not query.get("metrics") and not query.get("metric"):
        yield f"{at}.metrics", f"{aggregation} needs the field to aggregate in metrics"
    if "hasOptionalGroupByFields" in query and not isinstance(query["hasOptionalGroupByFields"], bool):
        yield f"{at}.hasOptionalGroupByFields", "expected true or false"
    if method == "threshold" and aggregation in ("new_value", "geo_data"):
        yield f"{at}.aggregation", f"{aggregation} belongs to a {_METHOD_OF[aggregation]} rule, not threshold"


_METHOD_OF: Final = {"new_value": "new_value", "geo_data": "impossible_travel"}


def _shape_problems(queries: Sequence[object], method: object, at: str) -> Iterator[tuple[str, str]]:
    if method not in ("new_value", "impossible_travel") or not queries:
        return
    if len(queries) != 1:
        yield at, f"a {method} rule has exactly one query, got {len(queries)}"
    query = _as_mapping(queries[0])
    if query is None:
        return
    want = "new_value" if method == "new_value" else "geo_data"
    if query.get("aggregation", "count") != want:
        yield f"{at}[0].aggregation", f"a {method} rule's query aggregates with {want}"
    metrics = query.get("metrics")
    if not metrics and isinstance(query.get("metric"), str):
        metrics = [query["metric"]]  # the deprecated singular form Datadog still reads
    watched = _as_list(metrics)
    if method == "new_value" and (watched is None or not 1 <= len(watched) <= MAX_NEW_VALUE_METRICS):
        yield f"{at}[0].metrics", f"new_value watches 1 to {MAX_NEW_VALUE_METRICS} fields in metrics"
    if method == "impossible_travel":
        if metrics != [GEOIP_FIELD]:
            yield f"{at}[0].metrics", f'impossible_travel reads metrics: ["{GEOIP_FIELD}"], got {metrics!r}'
        if not query.get("groupByFields"):
            yield f"{at}[0].groupByFields", "impossible_travel groups by the user (@usr.id or @usr.name)"


def _case_problems(
    value: object, method: object, names: set[str], at: str, *, last: bool
) -> Iterator[tuple[str, str]]:
    case = _as_mapping(value)
    if case is None:
        yield at, f"expected a case object, got {_kind(value)}"
        return
    yield from _unknown_keys(case, _CASE_KEYS, at)
    status = case.get("status")
    if status not in SEVERITIES:
        yield f"{at}.status", f"required: one of {', '.join(SEVERITIES)}, got {status!r}"
    if "notifications" in case and not _strings(case["notifications"]):
        yield f"{at}.notifications", "expected a list of strings"
    condition = case.get("condition")
    if condition is None or condition == "":
        if method == "threshold":
            yield f"{at}.condition", "a threshold case needs a condition, e.g. a > 10"
        elif not last and method != "third_party":
            yield f"{at}.condition", "a case without a condition always matches: the cases after it never do"
        return
    if not isinstance(condition, str):
        yield f"{at}.condition", f"expected a string, got {_kind(condition)}"
        return
    problem = _condition_problem(condition, names)
    if problem:
        yield f"{at}.condition", problem


def _condition_problem(condition: str, names: set[str]) -> str | None:
    """Why a case condition is not `name (>|>=) number` terms joined by `&&`/`||` (with parentheses)."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    stripped = condition.rstrip()
    while pos < len(stripped):
        match = _TOKEN.match(stripped, pos)
        if match is None:
            return f"cannot read {stripped[pos:]!r} in {condition!r}"
        op, ident, number = match.groups()
        if ident == "THEN":  # Datadog's "A then B" (one case); the engine refuses it, Datadog does not
            ident, op = None, "&&"
        tokens.append(("op", op) if op else ("name", ident) if ident else ("number", number))
        pos = match.end()
    parser = _ConditionParser(tokens, names)
    try:
        parser.disjunction()
        if parser.pos != len(tokens):
            raise _BadConditionError(f"unexpected {tokens[parser.pos][1]!r}")
    except _BadConditionError as exc:
        return f"{exc} in {condition!r}"
    if parser.unknown:
        known = ", ".join(sorted(names)) or "none: name the queries"
        return f"refers to {', '.join(sorted(parser.unknown))}, not a query name (queries: {known})"
    return None


class _BadConditionError(Exception):
    pass


class _ConditionParser:
    def __init__(self, tokens: list[tuple[str, str]], names: set[str]) -> None:
        self.tokens, self.names, self.pos, self.depth = tokens, names, 0, 0
        self.unknown: set[str] = set()

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise _BadConditionError("unexpected end")
        self.pos += 1
        return token

    def disjunction(self) -> None:
        self.conjunction()
        while self._peek() == ("op", "||"):
            self.pos += 1
            self.conjunction()

    def conjunction(self) -> None:
        self.term()
        while self._peek() == ("op", "&&"):
            self.pos += 1
            self.term()

    def term(self) -> None:
        kind, text = self._take()
        if (kind, text) == ("op", "("):
            self.depth += 1
            if self.depth > MAX_CONDITION_DEPTH:
                raise _BadConditionError(f"parentheses nested deeper than {MAX_CONDITION_DEPTH}")
            self.disjunction()
            self.depth -= 1
            if self._peek() != ("op", ")"):
                raise _BadConditionError("missing ')'")
            self.pos += 1
            return
        if kind != "name":
            raise _BadConditionError(f"expected a query name, got {text!r}")
        if text not in self.names:
            self.unknown.add(text)
        op_kind, op = self._take()
        if op_kind != "op" or op not in (">", ">="):
            raise _BadConditionError(f"Datadog compares with > or >=, got {op!r}")
        if self._take()[0] != "number":
            raise _BadConditionError(f"expected a number after {text} {op}")


def _unknown_keys(obj: Mapping[str, Any], known: frozenset[str], at: str) -> Iterator[tuple[str, str]]:
    for key in obj:
        if key not in known:
            yield f"{at}.{key}", f"unknown field (Datadog reads {', '.join(sorted(known))})"


def _as_mapping(value: object) -> Mapping[str, Any] | None:
    """`value` as a JSON object (a mapping), else `None`."""
    return cast("Mapping[str, Any]", value) if isinstance(value, Mapping) else None


def _as_list(value: object) -> list[object] | None:
    """`value` as a JSON array (a list), else `None`."""
    return cast("list[object]", value) if isinstance(value, list) else None


def _strings(value: object) -> bool:
    items = _as_list(value)
    return items is not None and all(isinstance(item, str) for item in items)


def _whole_in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _windows() -> str:
    return ", ".join(map(str, WINDOWS))


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"[:80]
