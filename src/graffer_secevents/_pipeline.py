"""The one pipeline every event goes through, top to bottom:

1. resolve the catalog row and the outcome;
2. validate and coerce the caller's input (a fast path for well-typed input, pydantic for the rest);
3. enrich: service/env/version, the request context, trace ids;
4. privacy: per-field modes, hashing, secret redaction in caller metadata;
5. render one JSON line (orjson) and write it through the private structlog logger;
6. then count it in the metrics and hand it to the trace bridges.

Lenient mode never raises into the caller: what had to be changed is listed in ``secevents.errors`` and the
record is written. Strict mode raises :class:`EventValidationError` instead, before anything is written.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, Final

import orjson

from . import _config
from ._catalog import CATALOG, EventType, OutcomeRule, Param
from ._config import Config, get_config_for_event
from ._context import _providers, provided_request
from ._context import _request as _request_var
from ._context import _user as _user_var
from ._errors import EventValidationError
from ._ip import normalize_ip
from ._limits import _SAFE_CHARS, MAX_KEY, MAX_LIST, MAX_STRING, _coerce_str, _limit_str
from ._metrics import record_dropped, record_event
from ._privacy import REDACTED, is_secret_key
from ._trace import trace_fields
from ._users import _show, _text, _user_parts, _usr

if TYPE_CHECKING:
    import pydantic

__all__ = ["SCHEMA_VERSION", "emit_event"]

SCHEMA_VERSION: Final = 1
MAX_CONTEXT_DEPTH: Final = 6
MAX_CONTEXT_ATTRIBUTES: Final = 128  # keeps the whole record under Datadog's 256 attributes
MAX_ERRORS: Final = 20
_LOGGER: Final = {"name": "graffer_secevents"}
_OUTCOMES: Final = ("success", "failure")


# --- 1. the catalog row and the outcome -------------------------------------------------------------------


def _unknown_type(evt_type: object, errors: list[str]) -> EventType:
    errors.append(f"evt.type: {_show(evt_type)} is not in the catalog (see `secevents catalog`)")
    text = evt_type if isinstance(evt_type, str) else type(evt_type).__name__
    name = "".join(c if c in _SAFE_CHARS else "_" for c in text[:64]).lower() or "unknown"
    # An unknown type is a bug in the emitting code: written as a configuration event so it is found.
    return EventType(name, "configuration", "warning", OutcomeRule.CALLER, "unknown event type")


def _resolve_outcome(spec: EventType, given: object, errors: list[str]) -> str | None:
    fixed = spec.fixed_outcome
    if fixed is not None and (given is None or (isinstance(given, str) and str.__eq__(given, fixed) is True)):
        return fixed  # the common case: a fixed outcome, confirmed or left out (str's own == only)
    rule = spec.outcome
    value = given if isinstance(given, str) and given in _OUTCOMES else None
    if given is not None and value is None:
        errors.append(f"outcome: expected 'success' or 'failure', got {_show(given)}")
    if rule is OutcomeRule.CALLER:
        if value is None and given is None and spec.type in CATALOG:
            errors.append(f"outcome: {spec.type} needs an outcome: 'success' or 'failure'")
        return value
    if rule is OutcomeRule.NONE:
        if value is not None:
            errors.append(f"outcome: {spec.type} is a detection and has no outcome; {value!r} ignored")
        return None
    fixed = rule.value
    if value is not None and value != fixed:
        errors.append(f"outcome: {spec.type} is always {fixed!r}; {value!r} ignored")
    return fixed


# --- 2. validation and coercion ---------------------------------------------------------------------------

_PY_TYPES: Final[dict[str, Any]] = {
    "str": str,
    "int": int,
    "bool": bool,
    "str_list": list[str],
    "secret_id": str | int | uuid.UUID,
}


@cache
def _params_of(spec_type: str) -> dict[str, Param]:
    return {p.name: p for p in CATALOG[spec_type].params}


@cache
def _model(spec_type: str) -> type[pydantic.BaseModel]:
    """The pydantic model of one event type's parameters, built on first use (for ill-typed input only)."""
    import pydantic  # ~0.1 s of import that well-typed events (the common case) never need

    fields: dict[str, Any] = {p.name: (_PY_TYPES[p.kind] | None, None) for p in CATALOG[spec_type].params}
    return pydantic.create_model(f"{spec_type}_params", **fields)


def _well_typed(param: Param, value: object) -> bool:
    kind = param.kind
    if kind == "str":
        return type(value) is str and len(value) <= MAX_STRING
    if kind == "int":
        return type(value) is int and -(2**63) <= value < 2**63
    if kind == "bool":
        return type(value) is bool
    if kind == "secret_id":
        return type(value) is str or type(value) is int or isinstance(value, uuid.UUID)
    return (
        type(value) is list
        and len(value) <= MAX_LIST
        and all(type(v) is str and len(v) <= MAX_STRING for v in value)
    )


def _validate_params(spec: EventType, params: Mapping[str, Any], errors: list[str]) -> dict[str, Any]:
    known = _params_of(spec.type)
    values: dict[str, Any] = {}
    well_typed = True
    for name, value in params.items():
        if value is not None:
            values[name] = value
            if well_typed and not _well_typed(known[name], value):
                well_typed = False
    if well_typed:
        return values
    import pydantic  # the slow path only; see _model

    try:
        model = _model(spec.type).model_validate(values)
        return _limit_params(known, model.model_dump(exclude_none=True), errors)
    except pydantic.ValidationError as exc:
        bad = {str(err["loc"][0]): err["msg"] for err in exc.errors() if err["loc"]}
    good = {k: v for k, v in values.items() if k not in bad}
    # The valid fields, coerced on their own (a failed validation returns no partial result).
    out: dict[str, Any] = _model(spec.type).model_validate(good).model_dump(exclude_none=True) if good else {}
    for name, value in values.items():
        if name not in bad:
            continue
        param = known[name]
        if param.kind in ("str", "secret_id"):
            out[name] = _coerce_str(value)
            errors.append(f"evt.{name}: {bad[name].lower()}; got {_show(value)}, written as text")
        elif param.kind == "str_list" and isinstance(value, (list, tuple, set, frozenset, str)):
            items = [value] if isinstance(value, str) else list(value)
            out[name] = [_coerce_str(v) for v in items]
            errors.append(f"evt.{name}: expected a list of strings, got {_show(value)}; written as text")
        else:
            errors.append(f"evt.{name}: {bad[name].lower()} ({param.kind}); got {_show(value)}, dropped")
    return _limit_params(known, out, errors)


def _limit_params(known: dict[str, Param], values: dict[str, Any], errors: list[str]) -> dict[str, Any]:
    for name, value in values.items():
        kind = known[name].kind
        if kind == "str":
            values[name] = _limit_str(f"evt.{name}", value, errors)
        elif kind == "str_list":
            items = value
            if len(items) > MAX_LIST:
                errors.append(f"evt.{name}: {len(items)} items, kept the first {MAX_LIST}")
                items = items[:MAX_LIST]
            values[name] = [_limit_str(f"evt.{name}[]", v, errors) for v in items]
        elif kind == "int" and not -(2**63) <= value < 2**63:
            errors.append(f"evt.{name}: integer out of the 64-bit range, written as text")
            values[name] = str(value)
    return values


# --- 3. enrichment -----------------------------------------------------------------------------------------

_ts_cache: list[Any] = [0, ""]


def _timestamp() -> str:
    """ISO 8601 UTC with microseconds; the date part is formatted once a second."""
    now = time.time_ns() // 1000
    second, micros = divmod(now, 1_000_000)
    cache_ = _ts_cache
    if cache_[0] != second:
        cache_[1] = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        cache_[0] = second
    return "%s%06dZ" % (cache_[1], micros)  # noqa: UP031 - measurably faster than an f-string with a spec


def _explicit_ip(ip: object, errors: list[str]) -> str | None:
    if isinstance(ip, bytes | bytearray):
        ip = bytes(ip).decode("utf-8", "replace")
    if not isinstance(ip, str):
        ip = _coerce_str(ip)  # ipaddress objects
    normalised = normalize_ip(ip)
    if normalised is None:
        errors.append(f"network.client.ip: {_show(ip)} is not an IP address, dropped")
    return normalised


def _http_fields(ctx: Any, errors: list[str]) -> dict[str, Any]:
    http: dict[str, Any] = {}
    # Integrations bind short strings; anything else is coerced and noted by _text.
    if (method := ctx.method) is not None:
        ok = type(method) is str and 0 < len(method) <= MAX_STRING
        http["method"] = method if ok else _text("http", "method", method, errors)
    if (path := ctx.path) is not None:
        ok = type(path) is str and 0 < len(path) <= MAX_STRING
        http["url_details"] = {"path": path if ok else _text("http.url_details", "path", path, errors)}
    if (route := ctx.route) is not None:
        ok = type(route) is str and 0 < len(route) <= MAX_STRING
        http["route"] = route if ok else _text("http", "route", route, errors)
    if (agent := ctx.user_agent) is not None:
        ok = type(agent) is str and 0 < len(agent) <= MAX_STRING
        http["useragent"] = agent if ok else _text("http", "useragent", agent, errors)
    if (request_id := ctx.request_id) is not None:
        ok = type(request_id) is str and 0 < len(request_id) <= MAX_STRING
        http["request_id"] = request_id if ok else _text("http", "request_id", request_id, errors)
    if (status := ctx.status_code) is not None:
        http["status_code"] = status if type(status) is int else _text("http", "status_code", status, errors)
    return http


# --- 4. caller metadata ------------------------------------------------------------------------------------


class _ContextSanitiser:
    """Makes caller metadata JSON-safe: secrets redacted, depth and size bounded, cycles cut."""

    __slots__ = ("count", "errors", "path")

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        self.count = 0
        self.path: set[int] = set()

    def mapping(self, data: Mapping[Any, Any], where: str, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        self.path.add(id(data))
        try:
            for key, value in list(data.items()):
                if self.count >= MAX_CONTEXT_ATTRIBUTES:
                    self.errors.append(
                        f"context: more than {MAX_CONTEXT_ATTRIBUTES} attributes, the rest dropped"
                    )
                    break
                name = key if type(key) is str else _coerce_str(key)
                if len(name) > MAX_KEY:
                    self.errors.append(f"{where}: a key of {len(name)} characters truncated to {MAX_KEY}")
                    name = name[:MAX_KEY]
                if is_secret_key(name):
                    out[name] = REDACTED
                    self.count += 1
                    continue
                out[name] = self.value(value, f"{where}.{name}", depth + 1)
        finally:
            self.path.discard(id(data))
        return out

    def value(self, value: Any, where: str, depth: int) -> Any:
        kind = type(value)
        if value is None or kind is bool or kind is float:
            self.count += 1
            return value
        if kind is str:
            self.count += 1
            return _limit_str(where, value, self.errors)
        if kind is int:
            self.count += 1
            if -(2**63) <= value < 2**63:
                return value
            return str(value)
        if isinstance(value, Mapping | list | tuple | set | frozenset):
            if id(value) in self.path:
                self.errors.append(f"{where}: a reference cycle, cut")
                self.count += 1
                return "[cycle]"
            if depth > MAX_CONTEXT_DEPTH:
                self.errors.append(
                    f"{where}: nested deeper than {MAX_CONTEXT_DEPTH} levels, flattened to text"
                )
                self.count += 1
                return _limit_str(where, _flat_text(value), self.errors)
            if isinstance(value, Mapping):
                return self.mapping(value, where, depth)
            return self.sequence(value, where, depth)
        self.count += 1
        if isinstance(value, bytes | bytearray):
            self.errors.append(f"{where}: bytes decoded as UTF-8")
        return _limit_str(where, _coerce_str(value), self.errors)

    def sequence(self, items: Any, where: str, depth: int) -> list[Any]:
        self.path.add(id(items))
        try:
            values = list(items)
            if len(values) > MAX_LIST:
                self.errors.append(f"{where}: {len(values)} items, kept the first {MAX_LIST}")
                values = values[:MAX_LIST]
            return [self.value(v, where, depth + 1) for v in values]
        finally:
            self.path.discard(id(items))


def _flat_text(value: Any) -> str:
    try:
        return orjson.dumps(value, default=_coerce_str).decode()
    except Exception:  # noqa: BLE001 - cycles and exotic values below the depth limit
        return _coerce_str(value)


# --- 5. render ---------------------------------------------------------------------------------------------


def _scrub(value: Any, errors: list[str], where: str = "") -> Any:
    """Second chance for a record orjson refused: lone surrogates and other invalid text are replaced."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            errors.append(f"{where or 'a key'}: invalid Unicode (lone surrogates) replaced")
            return value.encode("utf-8", "replace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {
            _scrub(str(k), errors, where): _scrub(v, errors, f"{where}.{k}" if where else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(v, errors, where) for v in value]
    return value


def _render(record: dict[str, Any], errors: list[str], strict: bool, evt_type: str) -> bytes:
    try:
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    except (TypeError, orjson.JSONEncodeError):
        before = len(errors)
        record = _scrub(record, errors)
        if strict:
            raise EventValidationError(
                evt_type, errors[before:] or ["the record could not be serialised"]
            ) from None
        _attach_errors(record, errors)
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE, default=_coerce_str)


def _attach_errors(record: dict[str, Any], errors: list[str]) -> None:
    shown = errors[:MAX_ERRORS]
    if len(errors) > MAX_ERRORS:
        shown.append(f"... and {len(errors) - MAX_ERRORS} more")
    record["secevents"] = {"schema": SCHEMA_VERSION, "errors": shown}


# --- the whole pipeline ------------------------------------------------------------------------------------


def build_record(  # noqa: PLR0915 - the pipeline steps 1-4, kept in one readable sequence
    cfg: Config,
    evt_type: str,
    user: object,
    outcome: object,
    ip: object,
    login: object,
    exists: object,
    target_user: object,
    params: Mapping[str, Any],
    context: Mapping[str, Any] | None,
) -> tuple[EventType, dict[str, Any], list[str], dict[str, Any]]:
    """Steps 1-4: the record as a dict, with its catalog row, the coercion notes and the validated params."""
    errors: list[str] = []
    spec = CATALOG.get(evt_type) if type(evt_type) is str else None
    if spec is None:
        spec = _unknown_type(evt_type, errors)
    resolved = _resolve_outcome(spec, outcome, errors)

    evt: dict[str, Any] = {"type": spec.type, "name": spec.name, "category": spec.category}
    if resolved is not None:
        evt["outcome"] = resolved
    values: dict[str, Any] = {}
    if params:
        if spec.type in CATALOG:
            values = _validate_params(spec, params, errors)
        else:
            context = {**params, **(context or {})}
        secret = spec.secret_params
        for name, value in values.items():
            evt[name] = cfg.privacy.hash(str(value)) if name in secret else value

    record: dict[str, Any] = {
        "timestamp": _timestamp(),
        "status": spec.level if resolved != "failure" else spec.level_for(resolved),
        "message": spec.message,
        **cfg.static,
        "logger": _LOGGER,
        "evt": evt,
    }

    request = _request_var.get()
    if request is None and _providers:  # e.g. Flask: the request's context is built at its first event
        request = provided_request()
    if user is None:
        user = request.user if request is not None and request.user is not None else _user_var.get()
    parts = _user_parts("usr", user, errors)
    if login is not None:
        parts = (parts[0], login, parts[2], parts[3])
    usr = _usr(cfg.privacy, False, parts, errors)
    if "id" not in usr and spec.login_attempt and "login" in usr and resolved == "failure":
        # Unknown accounts have no id; the processed login keeps distinct-@usr.id rules counting targets.
        usr = {"id": usr["login"], **usr}
    if exists is not None:
        if type(exists) is bool:
            usr["exists"] = exists
        else:
            errors.append(f"usr.exists: expected a boolean, got {_show(exists)}; dropped")
    if usr:
        record["usr"] = usr
    if target_user is not None:
        target = _usr(cfg.privacy, True, _user_parts("target.usr", target_user, errors), errors)
        if target:
            record["target"] = {"usr": target}

    client_ip = (
        _explicit_ip(ip, errors) if ip is not None else (request.client_ip if request is not None else None)
    )
    if client_ip is not None and (shown_ip := cfg.privacy.apply_ip(client_ip)) is not None:
        record["network"] = {"client": {"ip": shown_ip}}
    if request is not None and (http := _http_fields(request, errors)):
        record["http"] = http

    trace = trace_fields()
    if trace is not None:
        kind, ids = trace
        if kind == "dd":
            record["dd"] = ids
        else:
            record.update(ids)

    if context:
        if isinstance(context, Mapping):
            record["context"] = _ContextSanitiser(errors).mapping(context, "context", 1)
        else:
            errors.append(f"context: expected a mapping, got {type(context).__name__}; dropped")
    return spec, record, errors, values


def emit_event(
    evt_type: str,
    *,
    user: object = None,
    outcome: object = None,
    ip: object = None,
    login: object = None,
    exists: object = None,
    target_user: object = None,
    params: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
) -> None:
    """Build, write, count and bridge one event. See the module docstring for the steps."""
    cfg = _config._current or get_config_for_event()
    try:
        spec, record, errors, values = build_record(
            cfg, evt_type, user, outcome, ip, login, exists, target_user, params or {}, context
        )
        if errors:
            if cfg.strict:
                raise EventValidationError(spec.type, errors)
            _attach_errors(record, errors)
        else:
            record["secevents"] = {"schema": SCHEMA_VERSION}
        line = _render(record, errors, cfg.strict, spec.type)
    except EventValidationError:
        if cfg.strict:
            raise
        return  # unreachable: lenient mode collects notes instead of raising
    except Exception as exc:
        if cfg.strict:  # strict mode is for tests: surface our own bugs there
            raise
        spec, record, line = _fallback(evt_type, exc)
        values = {}

    _write(cfg, record["status"], line)
    if cfg.metrics is not None or cfg.bridges:
        _after_write(cfg, spec, record, values)


def _write(cfg: Config, level: str, line: bytes) -> None:
    try:
        getattr(cfg.logger, level)(line)
    except Exception as exc:  # noqa: BLE001 - a closed or full output loses this record, never the caller
        record_dropped(cfg.metrics, "write_error") if cfg.metrics is not None else None
        _warn_write_failure(exc)


def _after_write(cfg: Config, spec: EventType, record: dict[str, Any], values: Mapping[str, Any]) -> None:
    if cfg.metrics is not None:
        usr = record.get("usr")
        record_event(
            cfg.metrics,
            evt_type=spec.type,
            category=spec.category,
            outcome=record["evt"].get("outcome"),
            login_attempt=spec.login_attempt,
            reason=values.get("reason"),
            usr_exists=usr.get("exists") if usr else None,
        )
    for bridge in cfg.bridges:
        try:
            bridge(spec, record)
        except Exception:  # noqa: BLE001, S112 - bridges never break the caller (BaseException passes)
            continue


def _fallback(evt_type: object, exc: Exception) -> tuple[EventType, dict[str, Any], bytes]:
    errors: list[str] = []
    spec = CATALOG.get(evt_type) if type(evt_type) is str else None
    if spec is None:
        spec = _unknown_type(evt_type, errors)
    errors.append(f"internal_error: {type(exc).__name__} while building the event; details dropped")
    record: dict[str, Any] = {
        "timestamp": _timestamp(),
        "status": spec.level,
        "message": spec.message,
        "logger": _LOGGER,
        "evt": {"type": spec.type, "name": spec.name, "category": spec.category},
    }
    _attach_errors(record, errors)
    return spec, record, orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


_write_failures: list[int] = [0]


def _warn_write_failure(exc: Exception) -> None:
    _write_failures[0] += 1
    if _write_failures[0] == 1:
        try:
            sys.stderr.write(
                f"graffer_secevents: could not write a security event ({type(exc).__name__}: {exc}); "
                "events are being dropped and counted in secevents.dropped\n"
            )
        except Exception:  # noqa: BLE001, S110 - stderr itself may be the broken pipe
            pass


def dropped_writes() -> int:
    """How many records this process could not write (for tests and diagnostics)."""
    return _write_failures[0]
