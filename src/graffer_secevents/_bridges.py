"""Trace bridges: after a record is written, tell the tracer the application runs about the event.

Two bridges, each a callable `bridge(spec, record)` that the pipeline hands each written record to through
`notify_bridges`, both reading the *written record*, so a span never carries a value the log does
not (the login and email are the same privacy-processed strings on both sides):

- `AppSecBridge` reports user activity to ddtrace's App & API Protection through its public SDK
  (`ddtrace.appsec.track_user_sdk`): login success and failure, signup, the AAP business-logic events
  (`APPSEC_EVENTS`), and the request's authenticated user (`track_user`).
- `otel_span_event` adds a span event named after the event type, with OpenTelemetry semantic-convention
  attributes, to the active OpenTelemetry span.

Neither imports a tracer: each looks in `sys.modules` at call time and does nothing unless the application
has imported the tracer *and* a span is active. The ddtrace SDK module is imported on first use, only then.
Errors other than `BaseException` are reported once (`SecEventsWarning`) and never reach the caller;
ddtrace's `BlockingException` derives from `BaseException` and propagates, so AAP can block the request.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from ._catalog import EventType
from ._context import current_user
from ._errors import warn_once
from ._privacy import Privacy
from ._users import _user_parts, _usr

__all__ = [
    "APPSEC_EVENTS",
    "AppSecBridge",
    "AppSecEvent",
    "build_bridges",
    "notify_bridges",
    "otel_span_event",
]

Bridge = Callable[[EventType, dict[str, Any]], None]

_SDK_MODULE: Final = "ddtrace.appsec.track_user_sdk"
_DDTRACE_MODULE: Final = "ddtrace.trace"
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


# --- which events AAP hears about, and as what --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppSecEvent:
    """How one catalog event type is reported to ddtrace's user-activity SDK."""

    call: Literal["login_success", "login_failure", "signup", "custom"]
    """`track_login_success`, `track_login_failure`, `track_signup` or `track_custom_event`."""
    name: str
    """The AAP business-logic event it becomes (what AAP's detection rules count)."""
    subject: Literal["usr", "target"] = "usr"
    """Whose id and login go in a custom event's metadata: the actor or the account acted upon."""
    extra: Mapping[str, str] = field(default_factory=dict[str, str])
    """Fixed metadata added to a custom event."""
    auto: bool = False
    """ddtrace's Django auto-instrumentation reports this kind itself when on (see `docs/tracing.md`)."""


def _sensitive_activity(evt_type: str) -> AppSecEvent:
    # AAP's "activity.sensitive" wants a "name"; ours is the event type.
    return AppSecEvent("custom", "activity.sensitive", extra={"name": evt_type})


APPSEC_EVENTS: Final[Mapping[str, AppSecEvent]] = MappingProxyType(
    {
        "authn_login_success": AppSecEvent("login_success", "users.login.success", auto=True),
        "authn_login_successafterfail": AppSecEvent("login_success", "users.login.success", auto=True),
        "authn_login_fail": AppSecEvent("login_failure", "users.login.failure", auto=True),
        "user_signup": AppSecEvent("signup", "users.signup", auto=True),
        # AAP's rules count reset requests per IP (enumeration) and reset attempts per user (token guessing):
        # both stages are reported, told apart by "stage".
        "authn_password_reset_request": AppSecEvent(
            "custom", "users.password_reset", extra={"stage": "request"}
        ),
        "authn_password_reset": AppSecEvent("custom", "users.password_reset", extra={"stage": "complete"}),
        "user_deleted": AppSecEvent("custom", "users.delete", subject="target"),
        "data_export": _sensitive_activity("data_export"),
        "sensitive_create": _sensitive_activity("sensitive_create"),
        "sensitive_read": _sensitive_activity("sensitive_read"),
        "sensitive_update": _sensitive_activity("sensitive_update"),
        "sensitive_delete": _sensitive_activity("sensitive_delete"),
    }
)
"""The catalog types reported as AAP user events, by type. Every other type with a known actor only names the
request's user on the trace (`track_user`), and only when the actor *is* the request's user."""

# --- the ddtrace App & API Protection bridge ----------------------------------------------------------------


class AppSecBridge:
    """Reports events to ddtrace's user-activity SDK; built by `configure()` when `appsec_tracking` is on.

    Cost when ddtrace is not imported or no span is active: two dictionary lookups and a method call.
    """

    __slots__ = ("_privacy",)

    def __init__(self, privacy: Privacy) -> None:
        self._privacy = privacy  # to recognise the request's user among the record's users

    def __call__(self, spec: EventType, record: dict[str, Any]) -> None:
        ddtrace_trace = sys.modules.get(_DDTRACE_MODULE)
        if ddtrace_trace is None:
            return
        tracer = ddtrace_trace.tracer
        if tracer.current_span() is None:
            # Nothing to tag: without a local span (none, or only distributed headers) ddtrace would log a
            # "No root span" warning per call and drop the data.
            return
        try:
            self._report(tracer, spec, record)
        except Exception as exc:  # noqa: BLE001 - BaseException (ddtrace's BlockingException) passes
            warn_once(
                "appsec-bridge-error",
                f"graffer_secevents: reporting an event ({spec.type}) to ddtrace failed "
                f"({type(exc).__name__}); the log record was written, the trace did not get the event "
                "(reported once)",
            )

    def _report(self, tracer: Any, spec: EventType, record: dict[str, Any]) -> None:
        row = APPSEC_EVENTS.get(spec.type)
        usr: Mapping[str, Any] = record.get("usr") or _EMPTY
        sdk = sys.modules.get(_SDK_MODULE) or importlib.import_module(_SDK_MODULE)
        if row is not None and not (row.auto and ddtrace_reports_logins()):
            _CALLS[row.call](sdk, spec, row, record, usr)
        if row is None or row.call == "custom":
            self._track_request_user(sdk, tracer, usr)

    def _track_request_user(self, sdk: Any, tracer: Any, usr: Mapping[str, Any]) -> None:
        """`track_user` for the request's authenticated user, when it is the record's actor.

        Only then: the `usr` of a lockout or a password-reset request is the *target* account, and naming it
        as the request's user would pin an attacker's request on the victim (and AAP may block by user).
        """
        uid = usr.get("id")
        if uid is None:
            return
        request_user = current_user()
        if request_user is None or self._processed_id(request_user) != uid:
            return
        root = tracer.current_root_span()
        if root is not None and root.get_tag("usr.id") == uid:
            return  # already named on this trace (a login, or an earlier event of the request)
        metadata = {key: usr[key] for key in ("email", "name") if key in usr}
        sdk.track_user(usr.get("login") or "", user_id=uid, metadata=metadata or None)

    def _processed_id(self, user: object) -> str | None:
        # What the record writes as usr.id: an e-mail id under the usr.email rule, a secret-shaped one hashed.
        uid = _usr(self._privacy, False, _user_parts("usr", user, []), []).get("id")
        return uid if isinstance(uid, str) else None


def ddtrace_reports_logins() -> bool:
    """Whether ddtrace's Django auto-instrumentation reports logins and signups in this process, right now.

    It does when ddtrace has patched Django, AppSec has loaded its Django listeners (`DD_APPSEC_ENABLED`
    under `ddtrace-run` or `import ddtrace.auto`), and the effective mode is not `disabled`
    (`DD_APPSEC_AUTO_USER_INSTRUMENTATION_MODE` `identification`, the default, or `anonymization`, and
    not switched off remotely). Read per event, because Remote Configuration can change the mode; these are
    ddtrace internals, so anything unexpected means "no" and our bridge reports the event itself.
    """
    django = sys.modules.get("django")
    if django is None or not getattr(django, "_datadog_patch", False):
        return False
    core = sys.modules.get("ddtrace.internal.core")
    asm = sys.modules.get("ddtrace.internal.settings.asm")
    config = getattr(asm, "config", None)
    if core is None or config is None or getattr(config, "_user_event_mode", "disabled") == "disabled":
        return False
    try:
        return bool(core.has_listeners("django.login"))
    except Exception:  # noqa: BLE001 - a changed internal API: report ourselves rather than lose events
        return False


def _metadata(spec: EventType, record: Mapping[str, Any], subject: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh dict (ddtrace pops keys from what it is given): the caller's metadata as the record carries it
    (`context.*`, secrets redacted), then the subject's email and name and the event's own parameters, which
    win over caller keys of the same name."""
    context = record.get("context")
    metadata: dict[str, Any] = {k: v for k, v in context.items() if v is not None} if context else {}
    if "email" in subject:
        metadata["usr.email"] = subject["email"]
    if "name" in subject:
        metadata["usr.name"] = subject["name"]
    evt = record["evt"]
    for param in spec.params:
        if param.name in evt:
            metadata[param.name] = evt[param.name]
    return metadata


def _login_success(
    sdk: Any, spec: EventType, _row: AppSecEvent, record: Mapping[str, Any], usr: Mapping[str, Any]
) -> None:
    uid = usr.get("id")
    login = usr.get("login") or uid or ""  # AAP: without a login, the id stands in for it
    sdk.track_login_success(login, user_id=uid, metadata=_metadata(spec, record, usr))


def _login_failure(
    sdk: Any, spec: EventType, _row: AppSecEvent, record: Mapping[str, Any], usr: Mapping[str, Any]
) -> None:
    login = usr.get("login")
    uid = usr.get("id")
    # For an unknown account the record's usr.id is the processed login (so log rules count targets); the
    # trace gets no user id then, as AAP expects ("only usr.login exists").
    user_id = uid if uid is not None and uid != login else None
    sdk.track_login_failure(
        login or uid or "", usr.get("exists"), user_id=user_id, metadata=_metadata(spec, record, usr)
    )


def _signup(
    sdk: Any, spec: EventType, _row: AppSecEvent, record: Mapping[str, Any], usr: Mapping[str, Any]
) -> None:
    uid = usr.get("id")
    # ddtrace files signup metadata as a separate custom event ("signup_sdk"): only what the caller passed
    # goes there, not the email on every signup.
    context = record.get("context")
    metadata = {k: v for k, v in context.items() if v is not None} if context else {}
    sdk.track_signup(usr.get("login") or uid or "", user_id=uid, success=True, metadata=metadata or None)


def _custom(
    sdk: Any, spec: EventType, row: AppSecEvent, record: Mapping[str, Any], usr: Mapping[str, Any]
) -> None:
    subject: Mapping[str, Any] = usr
    if row.subject == "target":
        subject = (record.get("target") or _EMPTY).get("usr") or _EMPTY
    metadata = _metadata(spec, record, subject)
    metadata.update(row.extra)
    login = subject.get("login")
    uid = subject.get("id") or login  # AAP: "usr.id must be provided, even if the user does not exist"
    if uid is not None:
        metadata["usr.id"] = uid
    if login is not None:
        metadata["usr.login"] = login
    if (exists := subject.get("exists")) is not None:
        metadata["exists"] = exists
    sdk.track_custom_event(row.name, metadata)


_CALLS: Final[
    dict[str, Callable[[Any, EventType, AppSecEvent, Mapping[str, Any], Mapping[str, Any]], None]]
] = {
    "login_success": _login_success,
    "login_failure": _login_failure,
    "signup": _signup,
    "custom": _custom,
}


# --- the OpenTelemetry span-event bridge --------------------------------------------------------------------

# (record key under usr, OpenTelemetry attribute): semantic conventions where they define the concept.
_OTEL_USER: Final = (
    ("id", "user.id"),
    ("login", "user.name"),
    ("email", "user.email"),
    ("name", "user.full_name"),
)


def otel_span_event(spec: EventType, record: dict[str, Any]) -> None:
    """Add a span event named after the event type to the active OpenTelemetry span.

    Only when the record carries OpenTelemetry ids (`trace_id`, so no ddtrace span was active) and the span
    records; the attributes come from the written record (`otel_attributes`).
    """
    if "trace_id" not in record:
        return
    otel = sys.modules.get("opentelemetry.trace")
    if otel is None:
        return
    try:
        span = otel.get_current_span()
        if span.is_recording():
            span.add_event(spec.type, otel_attributes(spec, record))
    except Exception as exc:  # noqa: BLE001 - never break the caller over a span event
        warn_once(
            "otel-bridge-error",
            f"graffer_secevents: adding a span event ({spec.type}) failed ({type(exc).__name__}); "
            "the log record was written (reported once)",
        )


def otel_attributes(spec: EventType, record: Mapping[str, Any]) -> dict[str, Any]:
    """The span event's attributes: semantic conventions (`user.*`, `client.address`,
    `user_agent.original`) where they exist, the record's own keys (`evt.*`, `usr.exists`,
    `target.usr.*`) where they do not, with the record's privacy-processed values."""
    evt = record["evt"]
    attributes: dict[str, Any] = {"evt.name": evt["name"], "evt.category": evt["category"]}
    if "outcome" in evt:
        attributes["evt.outcome"] = evt["outcome"]
    for param in spec.params:
        value = evt.get(param.name)
        if value is not None:
            attributes[f"evt.{param.name}"] = value
    usr = record.get("usr")
    if usr:
        for key, name in _OTEL_USER:
            if key in usr:
                attributes[name] = usr[key]
        if "exists" in usr:
            attributes["usr.exists"] = usr["exists"]
    target = (record.get("target") or _EMPTY).get("usr")
    if target:
        for key in ("id", "login", "email", "name"):
            if key in target:
                attributes[f"target.usr.{key}"] = target[key]
    ip = ((record.get("network") or _EMPTY).get("client") or _EMPTY).get("ip")
    if ip is not None:
        attributes["client.address"] = ip
    agent = (record.get("http") or _EMPTY).get("useragent")
    if agent is not None:
        attributes["user_agent.original"] = agent
    return attributes


# --- wiring -------------------------------------------------------------------------------------------------


def notify_bridges(bridges: tuple[Bridge, ...], spec: EventType, record: dict[str, Any]) -> None:
    """Hand a written record to each bridge; a bridge's failure never reaches the caller.

    A bridge acts only with ddtrace imported (`AppSecBridge`) or OpenTelemetry ids on the record
    (`otel_span_event`); without either, no bridge is called (this runs for every event).
    """
    if _DDTRACE_MODULE not in sys.modules and "trace_id" not in record:
        return
    for bridge in bridges:
        try:
            bridge(spec, record)
        except Exception:  # noqa: BLE001, S112 - bridges never break the caller (BaseException passes)
            continue


def build_bridges(privacy: Privacy, *, appsec_tracking: bool, otel_span_events: bool) -> tuple[Bridge, ...]:
    """The bridges `configure()` installs, in call order."""
    bridges: list[Bridge] = []
    if appsec_tracking:
        bridges.append(AppSecBridge(privacy))
    if otel_span_events:
        bridges.append(otel_span_event)
    return tuple(bridges)
