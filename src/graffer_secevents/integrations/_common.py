"""The request context every integration binds: one module, so Django, Flask, WSGI and ASGI agree.

An integration builds one `LazyRequestContext` subclass per request (from a WSGI environ, an ASGI scope
or a Django `HttpRequest`), binds it as the current request and always resets it in a `finally`.
Building it stores the request object and nothing else; each field is read from that object when an event
asks for it:

* `method`, `path`, `user_agent`; `client_ip`, resolved by
  `graffer_secevents._client_ip.resolve_client_ip` over the peer address and the forwarding headers
  with the configured trusted proxies (`docs/client-ip.md`); each computed once per request;
* `route`, the template, cached once the framework has routed;
* `user`, read again at every event, so a user authenticated inside the view (as Django REST framework
  does) is seen, unless `set_user()` pinned one;
* `request_id`: an upstream `X-Request-ID` kept only if it matches `[A-Za-z0-9._-]{1,128}`, else a new
  one; computed at the latest when the response starts, because it is echoed on the response;
* `status_code`, set when the response starts.

**HTTP semantics** (`http_rules`, `emit_for_status`), the same in every middleware (Django, Flask, WSGI,
ASGI/FastAPI/Starlette), each part a middleware option:

* a **401** to a request that presented a credential (`Authorization`, or a header named in
  `credential_headers`, e.g. an API key) and that no integration recorded → one `authn_login_fail`:
  `evt.reason: invalid_credentials` with the Basic user name as `usr.login` for a Basic credential,
  `evt.reason: invalid_token` for any other (`record_invalid_credentials=False` turns it off);
* a **401** to a request that presented none → one `authz_fail` with `evt.reason: unauthenticated`
  (`record_unauthenticated=False` turns it off), unless it posted a login form (a `password` field the
  framework already parsed: Flask): then one `authn_login_fail` (`invalid_credentials`) with the typed
  login;
* `credential_statuses` says which statuses get that split (`(401,)`; add `422` for a JWT library that
  answers a bad token with 422, such as Flask-JWT-Extended);
* a **403** → `authz_fail` with the user the stack authenticated (the context's `user`);
* `status_events` adds or removes statuses (`{429: "excess_rate_limit_exceeded"}`, `{401: None}`).

A request that already recorded its denial (`denial_recorded`, set by the pipeline for any
authentication or authorization failure) writes nothing more.

Each middleware also hands the answer to an SSO callback (an OAuth 2.0 authorization response in the query
string) to `_sso.record_refused_sso`, before these rules.

Nothing here imports a web framework.

Everything an integration does around the application is best-effort: a failure to build the context or to
record an event lets the request go on untouched. The one exception is strict mode (tests), where an
`graffer_secevents.EventValidationError` is raised as it is for a direct call.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Generator, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, cast
from urllib.parse import parse_qsl

from graffer_secevents._attempts import is_suppressed
from graffer_secevents._catalog import CATALOG, OutcomeRule
from graffer_secevents._client_ip import resolve_client_ip
from graffer_secevents._config import get_config
from graffer_secevents._context import RequestContext, current_request, request_context
from graffer_secevents._errors import (
    ConfigurationError,
    EventValidationError,
    ForwardedHeaderIgnoredWarning,
    warn_once,
)
from graffer_secevents._ip import normalize_ip
from graffer_secevents._pipeline import emit_event
from graffer_secevents._request_id import accept_request_id
from graffer_secevents._types import User
from graffer_secevents._users import EmailIdentity

__all__ = [
    "DEFAULT_CREDENTIAL_HEADERS",
    "DEFAULT_CREDENTIAL_STATUSES",
    "DEFAULT_STATUS_EVENTS",
    "LOGIN_FIELDS",
    "OPTIONAL_STATUS_EVENTS",
    "REQUEST_ID_HEADER",
    "LazyRequestContext",
    "StatusRule",
    "await_account_safely",
    "cookie_value",
    "emit_for_status",
    "find_account_safely",
    "header_value",
    "http_rules",
    "login_from_fields",
    "never_raise",
    "note_failure",
    "status_rules",
    "user_from_scope",
]

REQUEST_ID_HEADER: Final = "X-Request-ID"

DEFAULT_STATUS_EVENTS: Final[Mapping[int, str]] = MappingProxyType({401: "authz_fail", 403: "authz_fail"})
"""Responses that emit an event by default: a 403 is an access denied (`authz_fail`); a 401 is split by
whether the request presented a credential (`http_rules`)."""

OPTIONAL_STATUS_EVENTS: Final[Mapping[int, str]] = MappingProxyType(
    {401: "authz_fail", 429: "excess_rate_limit_exceeded"}
)
"""Responses that can emit an event when asked: `status_events={**OPTIONAL_STATUS_EVENTS}`."""

DEFAULT_CREDENTIAL_HEADERS: Final = ("Authorization",)
"""The request headers that carry a credential unless `credential_headers` says otherwise."""

DEFAULT_CREDENTIAL_STATUSES: Final = (401,)
"""The statuses split by credential unless `credential_statuses` says otherwise."""

_UNSET: Final[Any] = object()

_REAL_IP_ONLY: Final = (
    "X-Real-IP header ignored: a trusted proxy sent X-Real-IP but neither X-Forwarded-For nor Forwarded, "
    "which are the headers this library walks, so the proxy's own address is recorded as the client IP. "
    "Make the proxy send X-Forwarded-For (nginx: proxy_set_header X-Forwarded-For "
    "$proxy_add_x_forwarded_for). This warning is given once per process."
)


# --- responses that are security events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusRule:
    """The event one response status emits: its catalog type, the outcome to pass and its parameters."""

    evt_type: str
    outcome: str | None
    takes_resource: bool
    credential_headers: tuple[str, ...] | None = None
    """Lowercase header names; set for a status split by credential (a 401), `None` for a plain rule."""
    invalid_credentials: bool = True
    """Split rule: a request that presented a credential → `authn_login_fail` (else nothing)."""
    unauthenticated: bool = True
    """Split rule: a request that presented none → `authz_fail` with `evt.reason: unauthenticated`."""


def http_rules(
    status_events: Mapping[int, str | None] | None = None,
    *,
    record_unauthenticated: bool = True,
    record_invalid_credentials: bool = True,
    credential_headers: Iterable[str] | None = None,
    credential_statuses: Iterable[int] | None = None,
    credential_sources: Iterable[str] = (),
) -> dict[int, StatusRule]:
    """The HTTP semantics one middleware applies (the module docstring), validated eagerly.

    Args:
        status_events: per-status overrides merged over `DEFAULT_STATUS_EVENTS` (see `status_rules`);
            `{401: None}` turns every 401 event off.
        record_unauthenticated: a credential status (401) to a request without a credential is an
            `authz_fail` with `evt.reason: unauthenticated`; `False`: nothing.
        record_invalid_credentials: a credential status to a request with a credential is an
            `authn_login_fail`; `False`: nothing.
        credential_headers: the headers that carry a credential (default `("Authorization",)`); add an
            API-key header, e.g. `("Authorization", "X-API-Key")`, or a token's cookie or query parameter
            as `"cookie:<name>"` / `"query:<name>"` (read by the ASGI and WSGI contexts; a cookie by every
            context that reads headers).
        credential_statuses: the statuses split by credential (default `(401,)`); e.g. `(401, 422)`. Only
            a 401 without a credential is `unauthenticated`; another status without one writes nothing.
        credential_sources: for integrations that find them in the app (FastAPI's `APIKeyQuery` and
            `APIKeyCookie`): `"query:<name>"` and `"cookie:<name>"` entries, read through the context's
            `_raw_query_param` and `_raw_cookie`.

    Raises:
        ConfigurationError: an invalid status, event type, header name or flag.

    Example:
        >>> rules = http_rules(credential_headers=("Authorization", "X-API-Key"))
        >>> rules[401].credential_headers
        ('authorization', 'x-api-key')
    """
    for name, flag in (
        ("record_unauthenticated", record_unauthenticated),
        ("record_invalid_credentials", record_invalid_credentials),
    ):
        if type(flag) is not bool:
            raise ConfigurationError(f"{name}: expected True or False, got {type(flag).__name__}")
    headers = _names(
        "credential_headers", DEFAULT_CREDENTIAL_HEADERS if credential_headers is None else credential_headers
    )
    statuses = _statuses(DEFAULT_CREDENTIAL_STATUSES if credential_statuses is None else credential_statuses)
    sources = tuple(s for s in credential_sources if s.startswith(("query:", "cookie:")) and len(s) > 7)
    headers = (*headers, *(s for s in sources if s not in headers))
    overrides: Any = {} if status_events is None else status_events
    if isinstance(overrides, Mapping):
        overrides = {**cast("Mapping[int, str | None]", overrides)}
        for status in statuses:  # a credential status not named is on, as 401 is by default
            overrides.setdefault(status, "authz_fail")
    rules = status_rules(overrides)
    for status in statuses:
        rule = rules.get(status)
        if rule is not None and rule.evt_type == "authz_fail":  # another type named for it: a plain rule
            rules[status] = StatusRule(
                rule.evt_type,
                rule.outcome,
                rule.takes_resource,
                headers,
                record_invalid_credentials,
                # Only a 401 says "no credential": another status split by credential (a JWT library's 422)
                # answered to a request without one is the framework's own (a validation error), not ours.
                record_unauthenticated and status == 401,
            )
    return rules


def _names(option: str, value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigurationError(
            f"{option}: expected a list of header names, e.g. ('Authorization', 'X-API-Key')"
        )
    names: list[str] = []
    for name in value:
        kind, colon, rest = name.partition(":") if isinstance(name, str) else ("", "", "")
        if colon and kind.lower() in ("cookie", "query"):
            # A token in a cookie (fastapi-login's `use_cookie`, AuthX's cookie location) or a query
            # parameter: the name is kept as written (cookie names are case-sensitive).
            if not rest or not all(c.isalnum() or c in "-_." for c in rest):
                raise ConfigurationError(f"{option}: {name!r} names no cookie or query parameter")
            names.append(f"{kind.lower()}:{rest}")
            continue
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_" for c in name):
            raise ConfigurationError(
                f"{option}: {name!r} is not a header name (or 'cookie:<name>' / 'query:<name>')"
            )
        names.append(name.lower())
    return tuple(names)


def _statuses(value: Iterable[int]) -> tuple[int, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigurationError("credential_statuses: expected a list of HTTP statuses, e.g. (401, 422)")
    out: list[int] = []
    for status in value:
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 499:
            raise ConfigurationError(f"credential_statuses: {status!r} is not a 4xx HTTP status")
        out.append(status)
    return tuple(out)


def status_rules(overrides: Mapping[int, str | None] | None) -> dict[int, StatusRule]:
    """Merge `overrides` over `DEFAULT_STATUS_EVENTS` and validate the result eagerly.

    Args:
        overrides: status code → catalog event type, or `None` to switch a status off. `{403: None}`
            turns the default off; `{401: "authz_fail", 429: "excess_rate_limit_exceeded"}` adds the
            optional ones. `None` keeps the defaults.

    Raises:
        ConfigurationError: a key is not an HTTP status code (100-599) or a value is not a catalog type.

    Example:
        >>> sorted(status_rules({429: "excess_rate_limit_exceeded", 403: None}))
        [401, 429]
    """
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, Mapping):
        raise ConfigurationError(
            "status_events: expected a mapping of HTTP status to event type, e.g. "
            "{401: 'authz_fail', 429: 'excess_rate_limit_exceeded', 403: None}"
        )
    merged: dict[int, str | None] = {**DEFAULT_STATUS_EVENTS, **overrides}
    rules: dict[int, StatusRule] = {}
    for status, evt_type in merged.items():
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ConfigurationError(f"status_events: {status!r} is not an HTTP status code (100-599)")
        if evt_type is None:
            continue
        spec = CATALOG.get(evt_type) if isinstance(evt_type, str) else None
        if spec is None:
            raise ConfigurationError(
                f"status_events: {evt_type!r} (for {status}) is not a catalog event type; "
                "e.g. 'authz_fail' or 'excess_rate_limit_exceeded' (see `secevents catalog`), "
                "or None to switch the status off"
            )
        outcome = "failure" if spec.outcome is OutcomeRule.CALLER else None
        takes_resource = any(param.name == "resource" for param in spec.params)
        rules[status] = StatusRule(spec.type, outcome, takes_resource)
    return rules


def emit_for_status(ctx: LazyRequestContext, rules: Mapping[int, StatusRule]) -> None:
    """Emit the event `ctx.status_code` calls for, if any, with `ctx` bound. Never raises (but strict)."""
    rule = rules.get(ctx.status_code)  # type: ignore[arg-type]
    if rule is None or ctx.denial_recorded:
        return
    with never_raise("the response-status event"):
        evt_type, outcome, login = rule.evt_type, rule.outcome, None
        user: Any = None
        exists: bool | None = None
        params: dict[str, Any] | None = {"resource": ctx.path} if rule.takes_resource else None
        if rule.credential_headers is not None:
            credential = _presented_credential(ctx, rule.credential_headers)
            posted = _posted_login(ctx) if credential is None else None
            if posted is not None:  # a refused login form: a failed login, whoever handled the password
                if not rule.invalid_credentials:
                    return
                evt_type, outcome, login = "authn_login_fail", "failure", posted or None
                params = {"reason": "invalid_credentials"}
                find = ctx._account_finder() if login else None
                if find is not None and login:
                    user, found = find_account_safely(find, login)
                    if found:
                        exists = user is not None
                        if not exists:
                            params = {"reason": "unknown_user"}
            elif credential is None:
                if not rule.unauthenticated:
                    return
                params = {**(params or {}), "reason": "unauthenticated"}
            else:
                if not rule.invalid_credentials:
                    return
                evt_type, outcome = "authn_login_fail", "failure"
                login = _basic_login(credential)
                params = {"reason": "invalid_token" if login is None else "invalid_credentials"}
        if is_suppressed(ctx, evt_type):  # the application writes this request's event itself
            return
        if current_request() is ctx:
            emit_event(evt_type, user=user, outcome=outcome, params=params, login=login, exists=exists)
        else:  # e.g. a WSGI app that starts its response lazily, after the middleware returned
            with request_context(ctx):
                emit_event(evt_type, user=user, outcome=outcome, params=params, login=login, exists=exists)
        ctx.denial_recorded = True


def _presented_credential(ctx: LazyRequestContext, names: tuple[str, ...]) -> str | None:
    """The first credential the request carries (non-blank), or `None`: a header, or a `query:`/`cookie:`
    source."""
    for name in names:
        try:
            if name.startswith("query:"):
                value = ctx._raw_query_param(name[6:])
            elif name.startswith("cookie:"):
                value = ctx._raw_cookie(name[7:])
            else:
                value = ctx._raw_header(name)
        except Exception:  # noqa: BLE001 - unreadable headers: no credential seen
            value = None
        if isinstance(value, str) and value.strip():
            return value
    return None


def _posted_login(ctx: LazyRequestContext) -> str | None:
    """The typed login (or `""`) when the request posted a password the framework parsed, else `None`."""
    try:
        found = ctx._posted_login()
    except Exception:  # noqa: BLE001 - an unreadable body is no login form
        return None
    return found if isinstance(found, str) else None


def _basic_login(credential: str) -> str | None:
    """The user name of an HTTP Basic credential (RFC 7617), or `None` for any other kind of credential.

    Only the part before the first colon is kept; the password is never returned.
    """
    scheme, _, encoded = credential.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None
    name = decoded.partition(":")[0]
    return name or None


# --- failures never reach the application ----------------------------------------------------------------


def find_account_safely(find: Callable[[str], Any], login: str) -> tuple[Any, bool]:
    """`(find(login), True)`; `(None, False)` when the application's `find_account` raised (a database
    down, a bug): the attempt is still recorded, as without a finder (no account, no `usr.exists`), and
    the failure is noted once (`note_failure`). An awaitable result is returned as it is, for the caller
    to await through `await_account_safely`."""
    try:
        return find(login), True
    except Exception as exc:  # noqa: BLE001 - the application's lookup must not cost the attempt its event
        note_failure("the application's find_account", exc)
        return None, False


async def await_account_safely(account: Any) -> tuple[Any, bool]:
    """`find_account_safely` for an async finder's awaitable."""
    try:
        return await account, True
    except Exception as exc:  # noqa: BLE001 - as in find_account_safely
        note_failure("the application's find_account", exc)
        return None, False


def note_failure(where: str, exc: BaseException) -> None:
    """Swallow `exc` raised while recording an event, unless strict mode asks for it.

    Called from an `except` block; re-raises `EventValidationError` in strict mode (tests), so an
    integration bug is seen there as it would be for a direct call. Otherwise one warning per process.
    """
    if isinstance(exc, EventValidationError) and _strict():
        raise exc
    warn_once(
        "integration-failure",
        f"graffer_secevents: {where} was skipped after {type(exc).__name__}; the request went on. "
        "This warning is given once per process.",
    )


@contextmanager
def never_raise(where: str) -> Generator[None, None, None]:
    """Run the block; an `Exception` inside it is swallowed (see `note_failure`)."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - recording an event must never break the request
        note_failure(where, exc)


def _strict() -> bool:
    try:
        return get_config().strict
    except Exception:  # noqa: BLE001 - a broken configuration is not strict mode
        return False


# --- the lazy request context ----------------------------------------------------------------------------


# Each lazy field is a read-write property over a RequestContext field, which behaves as the field does;
# pyright flags every property that overrides a field (reportIncompatibleVariableOverride), hence the
# ignores on the setters below.
class LazyRequestContext(RequestContext):
    """A `RequestContext` whose costly fields are computed when an event reads them.

    Subclasses supply the framework-specific reads (the `_raw_*` and `_find_*` hooks); every public
    field is safe to read at any time and never raises. `set_user()` (and `ctx.user = ...`) pins the
    user; until then the framework's current user is read at every event.
    """

    # Class-level defaults: building a context is one attribute store (the request object, in the subclass's
    # __init__); everything else is read from it when an event asks.
    status_code: int | None = None
    _method: Any = _UNSET
    _path: Any = _UNSET
    _client_ip: Any = _UNSET
    _user_agent: Any = _UNSET
    _request_id: str | None = None
    _route: str | None = None
    _user: Any = None
    denial_recorded: bool = False
    """Set once this request's denial was recorded (a status rule or an auth signal): no second event."""

    # Hooks for subclasses, which also define __init__ (RequestContext.__init__ would assign through the
    # lazy properties). -------------------------------------------------------------------------------------

    def _raw_method(self) -> str | None:
        raise NotImplementedError

    def _raw_path(self) -> str | None:
        raise NotImplementedError

    def _raw_peer_and_forwarding(self) -> tuple[str | None, str | None, str | None]:
        """The socket peer, `X-Forwarded-For` and `Forwarded` as received."""
        raise NotImplementedError

    def _raw_user_agent(self) -> str | None:
        raise NotImplementedError

    def _raw_request_id(self) -> str | None:
        raise NotImplementedError

    def _raw_header(self, name: str) -> str | None:
        """The request header `name` (lowercase), or `None`; only asked when a status rule needs it."""
        return None

    def _raw_query_param(self, name: str) -> str | None:
        """The query parameter `name`, or `None`; only asked when a rule names it as a credential."""
        query = self._raw_query_string()
        if not query:
            return None
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key == name:
                return value
        return None

    def _raw_query_string(self) -> str | None:
        """The raw query string, or `None`; asked when each response starts (the SSO callback rule,
        `_sso.py`) and for a `query:` credential, so it only returns what the request already holds."""
        return None

    def _raw_cookie(self, name: str) -> str | None:
        """The cookie `name`, or `None`; only asked when a rule names it as a credential."""
        return cookie_value(self._raw_header("cookie"), name)

    def _posted_login(self) -> str | None:
        """For a refused request that posted a login form (a password field) the framework already parsed:
        the typed login (`username`, `email` or `login`), or `""` without one; else `None`. Never parses
        a body itself."""
        return None

    def _account_finder(self) -> Callable[[str], Any] | None:
        """The application's `find_account` (login → account or `None`), where its integration has one."""
        return None

    def _find_route(self) -> str | None:
        return None

    def _find_user(self) -> Any:
        return None

    # Lazy fields. ------------------------------------------------------------------------------------------

    @property
    def method(self) -> str | None:
        value = self._method
        if value is _UNSET:
            value = self._method = _safely(self._raw_method)
        return value  # type: ignore[no-any-return]

    @method.setter
    def method(self, value: str | None) -> None:  # pyright: ignore[reportIncompatibleVariableOverride]
        self._method = value

    @property
    def path(self) -> str | None:
        value = self._path
        if value is _UNSET:
            value = self._path = _safely(self._raw_path)
        return value  # type: ignore[no-any-return]

    @path.setter
    def path(self, value: str | None) -> None:  # pyright: ignore[reportIncompatibleVariableOverride]
        self._path = value

    @property
    def client_ip(self) -> str | None:
        value = self._client_ip
        if value is _UNSET:
            value = self._client_ip = self._resolve_client_ip()
        return value  # type: ignore[no-any-return]

    @client_ip.setter
    def client_ip(self, value: str | None) -> None:  # pyright: ignore[reportIncompatibleVariableOverride]
        self._client_ip = value

    def _resolve_client_ip(self) -> str | None:
        try:
            peer, xff, forwarded = self._raw_peer_and_forwarding()
        except Exception:  # noqa: BLE001 - unreadable request data: no address rather than a wrong one
            return None
        try:
            trusted = get_config().trusted_proxies
            ip = resolve_client_ip(peer, x_forwarded_for=xff, forwarded=forwarded, trusted=trusted)
            if trusted is not None and ip is not None and not xff and not forwarded:
                self._check_real_ip_only(ip, trusted.is_trusted(ip))
            return ip
        except Exception:  # noqa: BLE001 - e.g. the one-time warning turned into an error by a filter
            # The socket peer is always a safe answer: it can never be forged by a header.
            return normalize_ip(peer) if isinstance(peer, str) else None

    def _check_real_ip_only(self, peer: str, peer_trusted: bool) -> None:
        """A trusted proxy that sends only `X-Real-IP` (an nginx `proxy_set_header X-Real-IP $remote_addr`
        with no `X-Forwarded-For`): the proxy's own address would be every event's client IP, with no word.
        Said once; the header is not read (a single value with no chain to check: docs/client-ip.md)."""
        if peer_trusted:
            real_ip = self._raw_header("x-real-ip")
            if isinstance(real_ip, str) and real_ip.strip():
                warn_once("real-ip", _REAL_IP_ONLY, category=ForwardedHeaderIgnoredWarning, stacklevel=5)

    @property
    def user_agent(self) -> str | None:
        value = self._user_agent
        if value is _UNSET:
            value = self._user_agent = _safely(self._raw_user_agent)
        return value  # type: ignore[no-any-return]

    @user_agent.setter
    def user_agent(self, value: str | None) -> None:  # pyright: ignore[reportIncompatibleVariableOverride]
        self._user_agent = value

    @property
    def request_id(self) -> str:  # never None: an upstream id if valid, else a new one
        value = self._request_id
        if value is None:
            value = self._request_id = accept_request_id(_safely(self._raw_request_id))
        return value

    @request_id.setter
    def request_id(self, value: str | None) -> None:  # pyright: ignore[reportIncompatibleVariableOverride]
        self._request_id = value

    @property
    def route(self) -> str | None:
        value = self._route
        if value is None:  # not cached until found: the framework may not have routed yet
            try:
                value = self._find_route()
            except Exception:  # noqa: BLE001
                value = None
            if value is not None and not isinstance(value, str):
                value = None
            self._route = value
        return value

    @route.setter
    def route(self, value: str | None) -> None:  # pyright: ignore[reportIncompatibleVariableOverride]
        self._route = value

    @property
    def user(self) -> Any:
        pinned = self._user
        if pinned is not None:
            return pinned
        try:
            return self._find_user()
        except Exception:  # noqa: BLE001 - e.g. a lazy user that needs the database from an event loop
            return None

    @user.setter
    def user(self, value: Any) -> None:
        self._user = value


def _safely(read: Callable[[], str | None]) -> str | None:
    """`read()`, or `None` when the request data cannot be read or is not text."""
    try:
        value = read()
    except Exception:  # noqa: BLE001 - odd request data reads as absent, never as an error
        return None
    return value if isinstance(value, str) else None


# --- helpers shared by the ASGI-based integrations ---------------------------------------------------------


def header_value(headers: Any, name: bytes) -> str | None:
    """The value of header `name` (lowercase) in ASGI `headers`; repeated headers joined with commas."""
    # ASGI servers lowercase header names (Starlette relies on it too), so no .lower() per header here.
    found = [value for key, value in headers if key == name]
    if not found:
        return None
    joined = found[0] if len(found) == 1 else b",".join(found)
    return joined.decode("latin-1")


def cookie_value(header: str | None, name: str) -> str | None:
    """The value of cookie `name` in a `Cookie` request header, or `None`."""
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def user_from_scope(user: Any) -> Any:
    """`scope["user"]` (Starlette's `AuthenticationMiddleware`) as something events can describe.

    Unauthenticated users are no user. Objects that already look like an application user (`pk`, `id`,
    `get_id()` or `get_username()`) are used as they are; Starlette's `SimpleUser` and other
    `BaseUser` objects become a `graffer_secevents.User` with their `identity` as the id. An
    identity that is an e-mail address is written under the e-mail privacy rule (hashed by default), so a
    `SimpleUser("ada@example.com")` never puts the address in `usr.id`.

    An object with no `is_authenticated` at all is the application's own user model, put there by an auth
    middleware that only sets `scope["user"]` once it has authenticated (Litestar's, whose user is any
    class): it is used when it identifies itself (`pk`, `id`, `get_id()`, `get_username()` or `username`).
    """
    if user is None:
        return None
    authenticated = getattr(user, "is_authenticated", None)
    if authenticated is None:
        return user if _identifies(user) else None
    if authenticated is not True:
        return None
    for attribute in ("pk", "id"):
        if getattr(user, attribute, None) is not None:
            return user
    if callable(getattr(user, "get_id", None)) or callable(getattr(user, "get_username", None)):
        return user
    try:
        identity = user.identity
    except Exception:  # noqa: BLE001 - BaseUser.identity raises NotImplementedError
        identity = getattr(user, "username", None) or getattr(user, "display_name", None)
    if not identity:
        return None
    text = str(identity)
    return User(id=EmailIdentity(text) if "@" in text else text)


def _is_mapping(value: object) -> bool:
    return isinstance(value, Mapping)  # a plain bool: no narrowing to Mapping[Unknown, Unknown] for pyright


def _identifies(user: Any) -> bool:
    """A user model that says who it is: `pk`, `id`, `get_id()`, `get_username()` or a `username` (as keys,
    for a user record that is a mapping)."""
    if _is_mapping(user):  # a user record (a dict): the keys the user protocol reads
        return any(user.get(key) is not None for key in ("pk", "id", "username"))
    if isinstance(user, str | bytes | int | float | bool | list | tuple | set):
        return False  # a value, not a user model: nothing tells that an auth layer put it there
    if getattr(user, "pk", None) is not None or getattr(user, "id", None) is not None:
        return True
    if callable(getattr(user, "get_id", None)) or callable(getattr(user, "get_username", None)):
        return True
    username = getattr(user, "username", None)
    return isinstance(username, str) and bool(username)


LOGIN_FIELDS: Final = ("username", "email", "login")
"""The body fields read as the typed login of a refused login form, in this order."""


def login_from_fields(fields: Any) -> str | None:
    """`_posted_login` over a parsed body (a form or a JSON object): `None` unless it has a password field."""
    if fields is None or not hasattr(fields, "get") or not hasattr(fields, "keys"):
        return None
    if not any(isinstance(key, str) and "password" in key.lower() for key in fields.keys()):  # noqa: SIM118 - a MultiDict's iteration differs
        return None
    for name in LOGIN_FIELDS:
        value = fields.get(name)
        if isinstance(value, str) and value:
            return value
    return ""
