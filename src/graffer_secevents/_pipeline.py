"""The one pipeline every event goes through, top to bottom:

1. resolve the catalog row and the outcome;
2. validate and coerce the caller's input (a fast path for well-typed input, pydantic for the rest);
3. enrich: service/env/version, the request context, trace ids; else the actor or job (`_origin`);
4. privacy: per-field modes, hashing, secret redaction in caller metadata;
5. render one JSON line (orjson) and hand it to the delivery queue (`_delivery`);
6. then count it in the metrics and hand it to the trace bridges.

Lenient mode never raises into the caller: what had to be changed is listed in `secevents.errors` and the
record is written. Strict mode raises `EventValidationError` instead, before anything is written.
"""

# The pipeline walks caller-supplied values of any type: narrowing `Any` with isinstance gives containers
# whose element types pyright calls Unknown; each element is checked at run time where it is used.
# pyright: reportUnknownArgumentType=false, reportUnknownVariableType=false

from __future__ import annotations

import contextlib
import math
import time
import uuid
from _socket import AF_INET as _AF_INET
from _socket import inet_pton as _inet_pton
from collections.abc import Iterable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, Final

import orjson

from . import _config
from ._bridges import notify_bridges
from ._catalog import CATALOG, EventType, OutcomeRule, Param
from ._config import get_config_for_event
from ._context import _providers, provided_request
from ._context import _request as _request_var
from ._context import _scope as _scope_var
from ._context import _user as _user_var
from ._delivery import deliver
from ._errors import EventValidationError
from ._fit import LINE_BUDGET, fit_line
from ._guard import guarded
from ._impersonation import _impersonator as _impersonator_var
from ._impersonation import _providers as _impersonator_providers
from ._impersonation import impersonator_usr, provided_impersonator
from ._ip import normalize_ip
from ._limits import (
    _SAFE_CHARS,
    MAX_KEY,
    MAX_LIST,
    MAX_STRING,
    _coerce_str,
    _exact,
    _in_int64,
    _int_text,
    _limit_str,
    _take,
)
from ._metadata import ContextSanitiser
from ._metrics import MetricsBackend, record_event
from ._origin import enrich_from_scope
from ._privacy import Privacy
from ._request_id import ReplacedRequestId, screen_request_id
from ._trace import trace_fields
from ._users import _full_text, _login_as_id, _show, _text, _user_parts, _usr

if TYPE_CHECKING:
    import pydantic

__all__ = ["SCHEMA_VERSION", "emit_event", "emit_unguarded"]

SCHEMA_VERSION: Final = 1
MAX_ERRORS: Final = 20
_LOGGER: Final = {"name": "graffer_secevents"}
_OUTCOMES: Final = ("success", "failure")


# --- 1. the catalog row and the outcome -------------------------------------------------------------------


def _unknown_type(evt_type: object, errors: list[str]) -> EventType:
    errors.append(f"evt.type: {_show(evt_type)} is not in the catalog (see `secevents catalog`)")
    text = evt_type if type(evt_type) is str else type(evt_type).__name__
    name = "".join(c if c in _SAFE_CHARS else "_" for c in text[:64]).lower() or "unknown"
    # An unknown type is a bug in the emitting code: written as a configuration event so it is found.
    return EventType(name, "configuration", "warning", OutcomeRule.CALLER, "unknown event type")


def _resolve_outcome(spec: EventType, given: object, errors: list[str]) -> str | None:
    if given is not None and type(given) is not str:
        given = _exact(given)  # Outcome members and other str subclasses: their own __eq__ never runs
    fixed = spec.fixed_outcome
    if fixed is not None and (given is None or (type(given) is str and given == fixed)):
        return fixed  # the common case: a fixed outcome, confirmed or left out
    rule = spec.outcome
    value = given if type(given) is str and given in _OUTCOMES else None
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

_PY_TYPES: Final[dict[str, Any]] = {"int": int, "bool": bool}


@cache
def _adapter(kind: str) -> pydantic.TypeAdapter[Any]:
    """pydantic's lax coercion for one parameter kind, built on first use (for ill-typed input only)."""
    import pydantic  # ~0.1 s of import that well-typed events (the common case) never need

    return pydantic.TypeAdapter(_PY_TYPES[kind])


def _well_typed(param: Param, value: object) -> bool:
    kind = param.kind
    if kind == "str":
        return type(value) is str and len(value) <= MAX_STRING
    if kind == "int":
        return type(value) is int and -(2**63) <= value < 2**63
    if kind == "bool":
        return type(value) is bool
    if kind == "secret_id":
        return type(value) is str or type(value) is int or type(value) is uuid.UUID
    return (
        type(value) is list
        and len(value) <= MAX_LIST
        and all(type(v) is str and len(v) <= MAX_STRING for v in value)
    )


def _validate_params(spec: EventType, params: Mapping[str, Any], errors: list[str]) -> dict[str, Any]:
    known = spec.param_map
    values: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        param = known[name]
        # A short plain string (most parameters, most of the time) is checked here without a call.
        if not (type(value) is str and param.kind == "str" and len(value) <= MAX_STRING) and not _well_typed(
            param, value
        ):
            value = _coerce_param(param, value, errors)  # noqa: PLW2901 - the coerced value replaces it
            if value is None:
                continue
        values[name] = value
    return values


def _coerce_param(param: Param, value: object, errors: list[str]) -> Any:
    """An ill-typed parameter coerced to its kind and noted; `None` when it had to be dropped."""
    where = f"evt.{param.name}"
    kind = param.kind
    if kind == "str_list":
        return _text_list(where, value, errors)
    value = _exact(value)
    got = type(value)
    if kind in {"str", "secret_id"}:
        if type(value) is str:
            return _limit_str(where, value, errors) if kind == "str" else value
        if kind == "secret_id" and (got is int or got is uuid.UUID):
            return value
        errors.append(f"{where}: expected a string, got {_show(value)}; written as text")
        text = _coerce_str(value)
        return _limit_str(where, text, errors) if kind == "str" else text
    if kind == "int" and got is int:
        errors.append(f"{where}: integer out of the 64-bit range, written as text")
        return _limit_str(where, _int_text(value), errors)  # type: ignore[arg-type]
    import pydantic  # the slow path only; see _adapter

    try:
        coerced = _adapter(kind).validate_python(value)
    except Exception as exc:  # noqa: BLE001 - pydantic's refusal, or a hostile dunder it called
        problem = exc.errors()[0]["msg"].lower() if isinstance(exc, pydantic.ValidationError) else "invalid"
        errors.append(f"{where}: {problem} ({kind}); got {_show(value)}, dropped")
        return None
    if kind == "int" and not _in_int64(coerced):
        errors.append(f"{where}: integer out of the 64-bit range, written as text")
        return _limit_str(where, _int_text(coerced), errors)
    errors.append(f"{where}: expected {kind}, got {_show(value)}; converted")
    return coerced


def _text_list(where: str, value: object, errors: list[str]) -> list[str] | None:
    """A list of strings from any iterable, read only up to `MAX_LIST` items; a lone string is one item."""
    kind = type(value)
    if issubclass(kind, str | bytes | bytearray):
        errors.append(f"{where}: expected a list of strings, got {kind.__name__}; written as one item")
        items: list[Any] = [value]
    elif issubclass(kind, Iterable) and not issubclass(kind, Mapping):
        items = _take(value, MAX_LIST, where, errors)  # type: ignore[arg-type]
    else:
        errors.append(f"{where}: expected a list of strings, got {_show(value)}; dropped")
        return None
    out: list[str] = []
    for item in items:
        text = _exact(item)
        if type(text) is not str:
            errors.append(f"{where}[]: expected a string, got {_show(item)}; written as text")
            text = _coerce_str(item)
        out.append(_limit_str(f"{where}[]", str(text), errors))
    return out


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
    if type(ip) is not str:
        ip = _coerce_str(ip)  # ipaddress objects, bytes, str subclasses
    normalised = normalize_ip(ip)
    if normalised is None:
        errors.append(f"network.client.ip: {_show(ip)} is not an IP address, dropped")
    return normalised


def _http_fields(ctx: Any, errors: list[str], privacy: Privacy, redacted: list[str]) -> dict[str, Any]:
    http: dict[str, Any] = {}
    # Integrations bind short strings; anything else is coerced and noted by _text. The path, the user agent
    # and the request id are what a client sent: secret shapes in them are redacted (docs/privacy.md).
    if (method := ctx.method) is not None:
        ok = type(method) is str and 0 < len(method) <= MAX_STRING
        http["method"] = method if ok else _text("http", "method", method, errors)
    if (path := ctx.path) is not None:
        ok = type(path) is str and 0 < len(path) <= MAX_STRING
        path = (
            privacy.scrub(_PATH, path, redacted)
            if ok
            else _client_text(_PATH, path, errors, privacy, redacted)
        )
        http["url_details"] = {"path": path}
    if (route := ctx.route) is not None:
        ok = type(route) is str and 0 < len(route) <= MAX_STRING
        http["route"] = route if ok else _text("http", "route", route, errors)
    if (agent := ctx.user_agent) is not None:
        ok = type(agent) is str and 0 < len(agent) <= MAX_STRING
        http["useragent"] = (
            privacy.scrub(_AGENT, agent, redacted, generic=False)
            if ok
            else _client_text(_AGENT, agent, errors, privacy, redacted, generic=False)
        )
    if (request_id := ctx.request_id) is not None:
        ok = (type(request_id) is str and 0 < len(request_id) <= MAX_STRING) or type(
            request_id
        ) is ReplacedRequestId  # ours, noted by screen_request_id
        text = request_id if ok else _text("http", "request_id", request_id, errors)
        if text and len(text) >= _MIN_SECRET:  # shorter, no secret shape fits (docs/privacy.md)
            shown = screen_request_id(text, redacted)
            if shown is not text and type(shown) is not str:  # a new id: the same for the rest of the request
                with contextlib.suppress(Exception):
                    ctx.request_id = shown
            text = str.__str__(shown)
        http["request_id"] = text
    if (status := ctx.status_code) is not None:
        http["status_code"] = status if type(status) is int else _text("http", "status_code", status, errors)
    return http


def _scrub_resource(
    privacy: Privacy, resource: str, params: Mapping[str, Any] | None, redacted: list[str]
) -> str:
    """`evt.resource` with secret shapes replaced; a value that was cut is scanned past the cut first."""
    raw = params.get("resource") if params is not None else None  # the helpers' own dict
    if type(raw) is str and len(raw) > MAX_STRING:
        return privacy.scrub("evt.resource", raw[: MAX_STRING + _SCAN_MARGIN], redacted)[:MAX_STRING]
    return privacy.scrub("evt.resource", resource, redacted)


_MIN_SECRET: Final = 16
_PATH: Final = "http.url_details.path"
_AGENT: Final = "http.useragent"
_SCAN_MARGIN: Final = 256  # a value cut at MAX_STRING is scanned this far past the cut: no half secret kept


def _client_text(
    field: str, value: object, errors: list[str], privacy: Privacy, redacted: list[str], generic: bool = True
) -> str | None:
    """A long or ill-typed request field: coerced (noted), scanned for secrets, then cut to `MAX_STRING`."""
    prefix, key = field.rsplit(".", 1)
    text = _full_text(prefix, key, value, errors)
    if text is None:
        return None
    if len(text) <= MAX_STRING:
        return privacy.scrub(field, text, redacted, generic)
    head = privacy.scrub(field, text[: MAX_STRING + _SCAN_MARGIN], redacted, generic)
    errors.append(f"{field}: {len(text)} characters, truncated to {MAX_STRING}")
    return head[:MAX_STRING]


# --- 4. caller metadata: _metadata.ContextSanitiser (bounded work, secrets redacted, every change noted) ----


# --- 5. render ---------------------------------------------------------------------------------------------


def _repair(value: Any, where: str, errors: list[str]) -> Any:
    """`value` with everything orjson refuses replaced, each replacement noted under its path."""
    kind = type(value)
    if kind is str:
        return _valid_text(where or "a key", value, errors)
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = _valid_text(f"{where}: a key" if where else "a key", _coerce_str(key), errors)
            if len(name) > MAX_KEY:
                errors.append(f"{where or 'a key'}: an escaped key cut to {MAX_KEY} characters")
                name = name[:MAX_KEY]
            out[name] = _repair(item, f"{where}.{name}" if where else name, errors)
        return out
    if kind is list:
        return [_repair(item, where, errors) for item in value]
    if value is None or kind is bool or (kind is float and math.isfinite(value)):
        return value
    if kind is int and _in_int64(value):
        return value
    errors.append(f"{where}: a {kind.__name__} could not be serialised, written as text")
    return _valid_text(where, _limit_str(where, _coerce_str(value), errors), errors)


def _valid_text(where: str, text: str, errors: list[str]) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        errors.append(f"{where}: invalid Unicode (lone surrogates) escaped")
        return _limit_str(where, text.encode("utf-8", "backslashreplace").decode("utf-8"), errors)
    return text


def _render_repaired(record: dict[str, Any], errors: list[str], strict: bool, evt_type: str) -> bytes:
    """The line of a record orjson refused: every offending key or value replaced and noted, nothing else."""
    before = len(errors)
    notes = record.pop("secevents", None)
    record = _repair(record, "", errors)
    if strict:
        notes_ = errors[before:] or ["the record could not be serialised"]
        raise EventValidationError(evt_type, notes_) from None
    if notes is not None or errors:
        _attach_errors(record, errors)
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def _attach_errors(record: dict[str, Any], errors: list[str]) -> None:
    shown = [_note(e) for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        shown.append(f"... and {len(errors) - MAX_ERRORS} more")
    record["secevents"] = {"schema": SCHEMA_VERSION, "errors": shown}


def _note(note: str) -> str:
    """A note as written: valid UTF-8 (it may quote a caller's key) and within the string limit."""
    if not note.isascii():
        note = note.encode("utf-8", "backslashreplace").decode("utf-8")
    return note if len(note) <= MAX_STRING else note[: MAX_STRING - 3] + "..."


# --- the whole pipeline ------------------------------------------------------------------------------------

_NO_USER: Final = (None, None, None, None)
_EXISTING_WITHOUT_ID: Final = (
    "usr: a failed login for an existing account (exists=True) names no account; pass it as user= (the "
    "account object or its id), or brute_force_success cannot join its failures to its success"
)
_ROWS: Final = dict(CATALOG)  # the catalog as a plain dict: a mappingproxy's get() costs a call more
_SCHEMA_ONLY: Final = {"schema": SCHEMA_VERSION}  # never mutated: delivery edits a parsed copy of the line


def emit_unguarded(  # noqa: PLR0915 - the pipeline's steps, kept in one readable sequence
    evt_type: object,
    *,
    user: object = None,
    outcome: object = None,
    ip: object = None,
    login: object = None,
    exists: object = None,
    target_user: object = None,
    params: Mapping[str, Any] | None = None,
    context: object = None,
    fields: Mapping[str, Any] | None = None,
) -> None:
    """Build, write, count and bridge one event (the module docstring lists the steps), without the guard.

    Only for callers that already run inside the guard (the public helpers); everyone else calls
    `emit_event`. `fields` are `emit()`'s keyword arguments: the event's parameters by name, the rest caller
    metadata.

    The steps are written out in one function, with the well-typed case tested inline before any helper is
    called: this is the per-event path, and each Python call it avoids is ~0.1 µs (docs/performance.md).
    """
    cfg = _config._current or get_config_for_event()
    errors: list[str] = []
    redacted: list[str] = []  # replaced by shape (privacy): noted, but no error in strict mode

    # 1. the catalog row and the outcome
    if type(evt_type) is not str:
        evt_type = _exact(evt_type)
    spec = _ROWS.get(evt_type) if type(evt_type) is str else None
    if spec is None:
        spec = _unknown_type(evt_type, errors)
    fixed = spec.fixed_outcome
    if fixed is not None and (outcome is None or (type(outcome) is str and outcome == fixed)):
        resolved: str | None = fixed  # the common case: a fixed outcome, confirmed or left out
    else:
        resolved = _resolve_outcome(spec, outcome, errors)

    # 2. the event's parameters
    extra: dict[str, Any] | None = None
    if fields:
        known = spec.param_map
        params = {**params} if params else {}
        extra = {}
        for name, value in fields.items():
            (params if name in known else extra)[name] = value
    evt: dict[str, Any] = {"type": spec.type, "name": spec.name, "category": spec.category}
    if resolved is not None:
        evt["outcome"] = resolved
    values: dict[str, Any] = _validate_params(spec, params, errors) if params else {}
    if values:
        secret = spec.secret_params
        if secret:
            for name, value in values.items():
                evt[name] = cfg.privacy.hash(_coerce_str(value)) if name in secret else value
        else:
            evt.update(values)
        if type(resource := evt.get("resource")) is str:  # a 403 copies the request's path here
            evt["resource"] = _scrub_resource(cfg.privacy, resource, params, redacted)

    # 3. enrichment
    level = spec.level_on_failure if resolved == "failure" else None
    record: dict[str, Any] = {
        "timestamp": _timestamp(),
        "status": level or spec.level,
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
    parts = _NO_USER if user is None else _user_parts("usr", user, errors)
    if login is not None:
        parts = (parts[0], login, parts[2], parts[3])
    usr = {} if parts is _NO_USER else _usr(cfg.privacy, False, parts, errors, redacted)
    if "id" not in usr and spec.login_attempt and "login" in usr and resolved == "failure":
        # Unknown accounts have no id; the processed login keeps distinct-@usr.id rules counting targets.
        shown = _login_as_id(cfg.privacy, usr["login"], redacted)
        usr = {"id": shown, **usr} if shown is not None else usr
    if exists is True and resolved == "failure" and spec.login_attempt and parts[0] is None:
        errors.append(_EXISTING_WITHOUT_ID)
    if exists is not None:
        if type(exists) is bool:
            usr["exists"] = exists
        else:
            errors.append(f"usr.exists: expected a boolean, got {_show(exists)}; dropped")
    if usr:
        record["usr"] = usr
    if target_user is not None:
        target = _usr(cfg.privacy, True, _user_parts("target.usr", target_user, errors), errors, redacted)
        if target:
            record["target"] = {"usr": target}
    real = _impersonator_var.get()  # impersonation: the real account behind `usr` (_impersonation.py)
    if real is None and _impersonator_providers and request is not None:
        real = provided_impersonator(request)
    if real is not None and (impersonator := impersonator_usr(cfg.privacy, spec.type, real, errors)):
        record["impersonator"] = {"usr": impersonator}

    client_ip: str | None = None
    if ip is not None:
        if type(ip) is str:
            try:  # a plain IPv4 string (the common case) is its own canonical form, what normalize_ip returns
                _inet_pton(_AF_INET, ip)
                client_ip = ip
            except (OSError, ValueError):  # anything else: IPv6, a port, blanks, not an address at all
                pass
        if client_ip is None:
            client_ip = _explicit_ip(ip, errors)
    else:
        client_ip = request.client_ip if request is not None else None
    if client_ip is not None and (shown_ip := cfg.privacy.apply_ip(client_ip)) is not None:
        record["network"] = {"client": {"ip": shown_ip}}
    if request is not None and (http := _http_fields(request, errors, cfg.privacy, redacted)):
        record["http"] = http

    trace = trace_fields()
    if trace is not None:
        kind, ids = trace
        if kind == "dd":
            record["dd"] = ids
        else:
            record.update(ids)
    if (scope := _scope_var.get()) is not None:  # secevents.actor(...), a background job's origin
        enrich_from_scope(scope, cfg, record, errors)

    # 4. caller metadata. Truthiness of a caller's mapping is never asked (a hostile __len__); an empty dict
    # is the common case.
    if (context is not None and (type(context) is not dict or context)) or extra:
        sanitiser = ContextSanitiser(errors, redacted, cfg.privacy)
        out: dict[str, Any] = {}
        if context is not None:
            if issubclass(type(context), Mapping):
                sanitiser.mapping(context, "context", 1, out)  # type: ignore[arg-type]
            else:
                errors.append(f"context: expected a mapping, got {type(context).__name__}; dropped")
        if extra:
            sanitiser.mapping(extra, "context", 1, out)
        if out:
            record["context"] = out

    # 5. render and deliver: queued for the writer thread, or written now under delivery="sync"; never raises
    if errors:
        if cfg.strict:
            raise EventValidationError(spec.type, errors)
        _attach_errors(record, errors + redacted if redacted else errors)
    elif redacted:
        _attach_errors(record, redacted)
    else:
        record["secevents"] = _SCHEMA_ONLY
    try:
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        line = _render_repaired(record, errors, cfg.strict, spec.type)
    if len(line) > LINE_BUDGET:  # one atomic write on a shared pipe: shrunk, noted (docs/delivery.md)
        line = fit_line(line)
    deliver(cfg, record["status"], line)

    # 6. the request's denial, the metrics and the trace bridges
    if resolved == "failure" and spec.category in _DENIAL_CATEGORIES and request is not None:
        _note_denial(request)
    if spec.login_attempt and request is not None:
        _note_attempt(request, spec.type)
    if cfg.metrics is not None:
        _count(cfg.metrics, spec, record, values)
    if cfg.bridges:
        notify_bridges(cfg.bridges, spec, record)


emit_event: Final = guarded(emit_unguarded, "emit_event")
"""`emit_unguarded` inside the one guard: what the integrations call."""


_DENIAL_CATEGORIES: Final = frozenset({"authentication", "authorization"})


def _note_denial(request: object) -> None:
    """Mark the request: its denial is recorded, so the 401/403 status rule adds no second event.

    Whoever wrote the failure (an integration, or product code calling `log_login(..., "failure")`), the
    request's `denial_recorded` flag (`integrations/_common.py`) is what the status rule reads.
    """
    if hasattr(request, "denial_recorded"):
        setattr(request, "denial_recorded", True)  # noqa: B010 - RequestContext itself has no such field


def _note_attempt(request: object, evt_type: str) -> None:
    """Note the request's login attempt: an integration that sees the same attempt later writes no second
    record of that type (the once-per-request bookkeeping of `_attempts.py`, whoever wrote the first)."""
    seen: set[str] | None = getattr(request, "_secevents_auth_recorded", None)
    if seen is None:
        seen = set()
        try:
            setattr(request, "_secevents_auth_recorded", seen)  # noqa: B010 - not a field of RequestContext
        except (AttributeError, TypeError):
            return
    seen.add(evt_type)


def _count(
    metrics: MetricsBackend, spec: EventType, record: dict[str, Any], values: Mapping[str, Any]
) -> None:
    usr = record.get("usr")
    record_event(
        metrics,
        evt_type=spec.type,
        category=spec.category,
        outcome=record["evt"].get("outcome"),
        login_attempt=spec.login_attempt,
        reason=values.get("reason"),
        usr_exists=usr.get("exists") if usr else None,
    )
