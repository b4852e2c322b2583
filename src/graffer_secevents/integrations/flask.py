"""Flask: the `SecurityEvents` extension, and Flask-Login's signals when Flask-Login is installed.

Example:
    ```python
    from flask import Flask
    from graffer_secevents.integrations.flask import SecurityEvents

    app = Flask(__name__)
    SecurityEvents(app)                       # or: events = SecurityEvents(); events.init_app(app)
    ```

What it records by itself:

* every event emitted inside a request (in a view, a hook, a Flask-Login signal, a `teardown_request`
  handler or a body streamed with `flask.stream_with_context`) carries the client IP, user agent, request
  id, method, path, route template (`request.url_rule`), status code and the Flask-Login
  `current_user`; the context is found through Flask's own request context and built at the first event,
  so a request that records nothing pays only for the `X-Request-ID` echo;
* Flask-Login's `user_logged_in` → `authn_login_success`, `user_logged_out` → `session_logout`,
  `user_unauthorized` (a `@login_required` view reached without a login) → `authz_fail` with
  `evt.resource` the path; the 401 that follows is then not recorded a second time;
* Flask-HTTPAuth and Flask-JWT-Extended, when installed (`integrations/_flask_auth.py`): a Basic login
  per request, a refused password or token, every token error Flask-JWT-Extended answers;
* the HTTP semantics of every middleware (docs/integrations/auth-stacks.md): a 401 with a credential →
  `authn_login_fail` (`invalid_token`, or `invalid_credentials` for Basic), a 401 without one →
  `authz_fail` (`unauthenticated`), a 403 → `authz_fail` with the user the stack authenticated
  (Flask-Login, Flask-HTTPAuth or Flask-JWT-Extended), each part an option below.

Flask-Login never sees credentials and has no failure signal: record failures where the password is checked,
with the account when it exists (`brute_force_success` joins an account's failures to its success by
`usr.id`): `secevents.log_login(account, "failure", login=form["username"], exists=account is not None,
reason="invalid_credentials")`.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from graffer_secevents._errors import ConfigurationError, MissingDependencyError

try:
    import flask
except ImportError:
    raise MissingDependencyError("flask", "flask") from None

from graffer_secevents._context import add_request_provider, current_request

from ._auth import record_auth
from ._common import (
    DEFAULT_STATUS_EVENTS,
    OPTIONAL_STATUS_EVENTS,
    LazyRequestContext,
    http_rules,
    login_from_fields,
    never_raise,
)
from ._flask_auth import connect_httpauth, connect_jwt_extended, flask_user
from .wsgi import SecurityEventsMiddleware, WsgiRequestContext

__all__ = ["DEFAULT_STATUS_EVENTS", "OPTIONAL_STATUS_EVENTS", "SecurityEvents"]

EXTENSION_KEY: Final = "graffer_secevents"
_FLASK_SECURITY_KEY: Final = "graffer_secevents.flask_security"


class FlaskRequestContext(WsgiRequestContext):
    """The WSGI context, plus the route template and Flask-Login's user from Flask's request context."""

    def _find_route(self) -> str | None:
        if not flask.has_request_context():
            return None
        rule = flask.request.url_rule
        return rule.rule if rule is not None else None

    def _find_user(self) -> Any:
        return flask_user()

    def _account_finder(self) -> Any:
        if not flask.has_request_context():
            return None
        extension = flask.current_app.extensions.get(EXTENSION_KEY)
        return getattr(extension, "find_account", None)

    def _posted_login(self) -> str | None:
        if not flask.has_request_context():
            return None
        request = flask.request
        if request.method != "POST":
            return None
        found = login_from_fields(request.__dict__.get("form"))  # only what the view already parsed
        if found is None:
            cached = request._cached_json
            found = login_from_fields(next((v for v in cached if v is not Ellipsis), None))
        return found


class _FlaskMiddleware(SecurityEventsMiddleware):
    __slots__ = ()
    context_class = FlaskRequestContext
    binds_context = False  # the request's context is found through Flask's: see _flask_request()


def _flask_request() -> FlaskRequestContext | None:
    """The context of the Flask request being handled, if its app has the extension; built at its first need.

    Registered as a request provider: asked only when an event (or `set_user()`) finds no context bound,
    so a request that records nothing never builds one. Flask's request context lives as long as the request,
    including a body streamed with `flask.stream_with_context`, so events there carry the request too.
    """
    if not flask.has_request_context() or EXTENSION_KEY not in flask.current_app.extensions:
        return None
    ctx = FlaskRequestContext.of(flask.request.environ)
    return ctx if isinstance(ctx, FlaskRequestContext) else None


class SecurityEvents:
    """The Flask extension: binds the request context and connects Flask-Login's signals.

    It wraps `app.wsgi_app` (no `before_request`/`after_request` hooks, which cost several times
    more per request). Apply it *outside* any `ProxyFix`-style middleware, or not at all with one: the
    client IP is resolved from the socket peer with `configure(trusted_proxies=...)`.

    Args:
        app: the application, or `None` to call `init_app` later.
        status_events: per-status overrides merged over `DEFAULT_STATUS_EVENTS`: an event type
            turns a status on, `None` turns it off, e.g. `{401: "authz_fail"}`.
        flask_security: record Flask-Security-Too's flows (`integrations/flask_security.py`). `None`
            (the default) does so when Flask-Security's `Security` is already on the app; `True` requires
            it; `False` never does.
        record_unauthenticated: a 401 without a credential is `authz_fail` (`unauthenticated`).
        record_invalid_credentials: a 401 with a credential is `authn_login_fail`.
        credential_headers: the headers that carry a credential (default `("Authorization",)`), and
            `"cookie:<name>"` / `"query:<name>"` for a token kept in a cookie or a query parameter.
        credential_statuses: the statuses split by credential (default `(401,)`).
        find_account: `login -> account` (or `None` for no such account): a login form refused with a 401
            (a POST with a `password` field) is then a failure for that account, `usr.exists` set.

    Raises:
        ConfigurationError: `status_events` names a status or an event type that does not exist, or
            `flask_security=True` and `Security(app)` was not initialised first.
        MissingDependencyError: `flask_security=True` and Flask-Security-Too is not installed.

    Example:
        ```python
        events = SecurityEvents(status_events={429: "excess_rate_limit_exceeded"})
        events.init_app(app)
        ```
    """

    def __init__(
        self,
        app: flask.Flask | None = None,
        *,
        status_events: Mapping[int, str | None] | None = None,
        flask_security: bool | None = None,
        record_unauthenticated: bool = True,
        record_invalid_credentials: bool = True,
        credential_headers: Iterable[str] | None = None,
        credential_statuses: Iterable[int] | None = None,
        find_account: Callable[[str], Any] | None = None,
    ) -> None:
        if find_account is not None and not callable(find_account):
            raise ConfigurationError("find_account: expected a function login -> account (or None)")
        self.find_account = find_account
        self.http_options: dict[str, Any] = {
            "status_events": status_events,
            "record_unauthenticated": record_unauthenticated,
            "record_invalid_credentials": record_invalid_credentials,
            "credential_headers": credential_headers,
            "credential_statuses": credential_statuses,
        }
        http_rules(**self.http_options)  # validate now, loudly
        self.status_events = status_events
        self.flask_security = flask_security
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        """Install on `app`; a second call for the same app does nothing."""
        if EXTENSION_KEY in app.extensions:
            return
        from graffer_secevents._findings import report_startup_findings

        proxy_fix = type(app.wsgi_app).__name__ == "ProxyFix"
        report_startup_findings(behind_proxy="werkzeug's ProxyFix wraps the app" if proxy_fix else None)
        app.wsgi_app = _FlaskMiddleware(app.wsgi_app, **self.http_options)  # type: ignore[method-assign]
        app.extensions[EXTENSION_KEY] = self
        add_request_provider(_flask_request)
        _connect_flask_login(app)
        if importlib.util.find_spec("flask_httpauth") is not None:
            connect_httpauth()
        connect_jwt_extended(
            app
        )  # imports nothing: token errors are recognised by the modules already loaded
        wanted = self.flask_security
        if wanted is None:  # auto: only if the app already imported Flask-Security and initialised it
            wanted = "flask_security" in sys.modules and "security" in app.extensions
        if wanted:
            from . import flask_security

            flask_security.connect(app)
            app.extensions[_FLASK_SECURITY_KEY] = True


def _connect_flask_login(app: flask.Flask) -> None:
    try:
        import flask_login
    except ImportError:
        return
    flask_login.user_logged_in.connect(_on_logged_in, sender=app)
    flask_login.user_logged_out.connect(_on_logged_out, sender=app)
    flask_login.user_unauthorized.connect(_on_unauthorized, sender=app)


def _on_logged_in(_sender: Any, user: Any = None, **_extra: Any) -> None:
    if _FLASK_SECURITY_KEY in flask.current_app.extensions:
        return  # Flask-Security's user_authenticated says how the user logged in (a password change is not)
    record_auth("authn_login_success", where="Flask-Login's login event", user=user, outcome="success")


def _on_logged_out(_sender: Any, user: Any = None, **_extra: Any) -> None:
    if user is None or getattr(user, "is_authenticated", False) is not True:
        return  # logging out an anonymous session is not an event
    record_auth("session_logout", where="Flask-Login's logout event", user=user, once=False)


def _on_unauthorized(_sender: Any, **_extra: Any) -> None:
    with never_raise("Flask-Login's unauthorized event"):
        ctx = current_request()
        path = ctx.path if ctx is not None else flask.request.path
        record_auth(
            "authz_fail",
            where="Flask-Login's unauthorized event",
            params={"resource": path, "reason": "unauthenticated"},
        )
        if isinstance(ctx, LazyRequestContext):
            ctx.denial_recorded = True
