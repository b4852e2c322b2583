"""The written record's schema (a pydantic model, exported as JSON Schema) and the catalog rules a record must
follow. Used by `secevents validate` / `secevents schema` and by the tests; not on the per-event path."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from graffer_secevents._catalog import CATALOG, CATEGORIES

__all__ = ["SecurityRecord", "check_record", "json_schema"]

_HEX32 = r"^[0-9a-f]{32}$"
_HEX16 = r"^[0-9a-f]{16}$"
_TS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3,9}Z$"


def _opt() -> Any:
    return Field(default=None, max_length=1024)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Logger(_Closed):
    name: Literal["graffer_secevents"]


class _Evt(BaseModel):
    # Open: each event type adds its own parameters (checked against the catalog by check_record).
    model_config = ConfigDict(extra="allow", strict=True)
    type: str = Field(pattern=r"^[a-z0-9_.-]{1,64}$")
    name: str
    if TYPE_CHECKING:  # a Literal built from the catalog: type checkers see the str it is
        category: str
    else:
        category: Literal[CATEGORIES]
    outcome: Literal["success", "failure"] | None = None


class _Usr(_Closed):
    id: str | None = _opt()
    login: str | None = _opt()
    email: str | None = _opt()
    name: str | None = _opt()
    exists: bool | None = None


class _Target(_Closed):
    usr: _Usr


class _RealUsr(_Closed):
    id: str | None = _opt()
    login: str | None = _opt()
    email: str | None = _opt()
    name: str | None = _opt()


class _Impersonator(_Closed):
    """The real account behind `usr` while a session impersonates it (`secevents.impersonating`)."""

    usr: _RealUsr


class _Client(_Closed):
    ip: str


class _Network(_Closed):
    client: _Client


class _UrlDetails(_Closed):
    path: str = Field(max_length=1024)


class _Http(_Closed):
    method: str | None = _opt()
    url_details: _UrlDetails | None = None
    route: str | None = _opt()
    useragent: str | None = _opt()
    request_id: str | None = _opt()
    status_code: int | None = None


class _Dd(_Closed):
    trace_id: str = Field(pattern=r"^([0-9]{1,20}|[0-9a-f]{32})$")
    span_id: str = Field(pattern=r"^[0-9]{1,20}$")


class _Actor(_Closed):
    """Who acted when no request did: `secevents.actor(...)`, or the actor a job's origin names."""

    name: str | None = Field(default=None, max_length=128)
    reason: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")


class _JobOrigin(_Closed):
    """Where a job was enqueued, as that code's own events wrote it (`docs/integrations/task-queues.md`)."""

    request_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,128}$")
    usr_id: str | None = _opt()
    client_ip: str | None = Field(default=None, max_length=64)
    session_id: str | None = Field(default=None, pattern=r"^anon_[0-9a-f]{32}$")
    actor: str | None = Field(default=None, max_length=128)
    trace_id: str | None = Field(default=None, pattern=r"^([0-9]{1,20}|[0-9a-f]{32})$")
    span_id: str | None = Field(default=None, pattern=r"^([0-9]{1,20}|[0-9a-f]{16})$")


class _Job(_Closed):
    """The background job an event was emitted in."""

    system: str = Field(pattern=r"^[a-z0-9_]{1,32}$")
    name: str | None = Field(default=None, max_length=256)
    id: str | None = Field(default=None, max_length=128)
    enqueued_at: str | None = Field(default=None, pattern=_TS)
    origin: _JobOrigin | None = None


class _Meta(_Closed):
    schema_: int = Field(alias="schema", ge=1)
    errors: list[str] | None = None
    dropped_before: int | None = Field(default=None, ge=1)
    writer: str | None = Field(default=None, pattern=_HEX16)
    seq: int | None = Field(default=None, ge=1)
    chain: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    end: Literal[True] | None = None


class SecurityRecord(_Closed):
    """One security event as written: nested JSON, one object per line (`docs/record.md`)."""

    timestamp: str = Field(pattern=_TS)
    status: Literal["info", "warning", "critical"]
    message: str
    service: str | None = None
    env: str | None = None
    version: str | None = None
    logger: _Logger
    evt: _Evt | None = None  # absent only from a writer's end record (`secevents.end`)
    usr: _Usr | None = None
    target: _Target | None = None
    impersonator: _Impersonator | None = None
    network: _Network | None = None
    http: _Http | None = None
    dd: _Dd | None = None
    trace_id: str | None = Field(default=None, pattern=_HEX32)
    span_id: str | None = Field(default=None, pattern=_HEX16)
    context: dict[str, Any] | None = None
    actor: _Actor | None = None
    job: _Job | None = None
    secevents: _Meta


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a record."""
    schema = SecurityRecord.model_json_schema(by_alias=True)
    schema["$id"] = "https://graffer.example/secevents/record-v1.json"
    schema["title"] = "graffer_secevents security record"
    # Every record has `evt` but a writer's end record, which has `secevents.end: true` instead.
    schema["oneOf"] = [
        {"required": ["evt"]},
        {"properties": {"secevents": {"required": ["end"]}}, "not": {"required": ["evt"]}},
    ]
    return schema


_KIND_CHECK: dict[str, Callable[[object], bool]] = {
    "str": lambda v: isinstance(v, str),
    "secret_id": lambda v: isinstance(v, str) and v.startswith("anon_"),
    "int": lambda v: isinstance(v, int | str) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str_list": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in cast("list[object]", v)),
}


def check_record(record: object) -> list[str]:
    """What is wrong with a parsed record against the schema and the catalog (empty when it is valid)."""
    try:
        parsed = SecurityRecord.model_validate(record)
    except ValidationError as exc:
        return [f"{'.'.join(str(p) for p in err['loc']) or 'record'}: {err['msg']}" for err in exc.errors()]
    problems: list[str] = []
    evt = parsed.evt
    if evt is None:
        if parsed.secevents.end:
            return []
        return ["evt: Field required"]
    if parsed.secevents.end:
        return ["secevents.end: only a writer's end record, which has no evt, carries it"]
    spec = CATALOG.get(evt.type)
    if spec is None:
        return [f"evt.type: {evt.type!r} is not in the catalog"]
    if evt.name != spec.name:
        problems.append(f"evt.name: {evt.name!r}, the catalog says {spec.name!r}")
    if evt.category != spec.category:
        problems.append(f"evt.category: {evt.category!r}, the catalog says {spec.category!r}")
    rule = spec.outcome.value
    if rule in ("success", "failure") and evt.outcome != rule:
        problems.append(f"evt.outcome: {evt.outcome!r}, {spec.type} is always {rule!r}")
    if rule == "none" and evt.outcome is not None:
        problems.append(f"evt.outcome: {spec.type} is a detection and has no outcome")
    if parsed.status != spec.level_for(evt.outcome):
        problems.append(f"status: {parsed.status!r}, the catalog says {spec.level_for(evt.outcome)!r}")
    if not parsed.message.startswith(f"{spec.type}: "):
        problems.append("message: does not start with the event type")
    params = {p.name: p for p in spec.params}
    for key, value in (evt.model_extra or {}).items():
        param = params.get(key)
        if param is None:
            problems.append(f"evt.{key}: not a parameter of {spec.type}")
        elif not _KIND_CHECK[param.kind](value):
            problems.append(f"evt.{key}: expected {param.kind}")
    if parsed.dd is not None and parsed.trace_id is not None:
        problems.append("dd and trace_id: a record carries one kind of trace id")
    return problems
