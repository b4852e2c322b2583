"""SSO logins (OAuth 2.0 / OpenID Connect clients): the provider's answer at the redirect URI is an attempt.

Every SSO client — mozilla-django-oidc, python-social-auth, django-allauth's socialaccount, Authlib,
Flask-Dance, fastapi-sso, a hand-written callback — ends its login at the same place: the browser comes
back to the client's redirect URI with the provider's **authorization response** in the query string
(RFC 6749 §4.1.2): `state` and `code`, or `state` and `error` (§4.1.2.1). A success calls the framework's
login (Django's `login()`, Flask-Login's `login_user()`, ...), which the integrations already record. A
refusal often calls nothing: the client redirects to an error page, answers 400/401, or raises. So every
middleware, when the response to such a request starts and nothing recorded the attempt, records it here:

* the provider answered `error` (the user refused or cancelled consent, the provider refused the account:
  `access_denied`, ...) → `authn_login_fail`, `evt.reason: not_allowed` (`other` when the provider failed
  or the client asked wrongly: `server_error`, `temporarily_unavailable`, `invalid_request`,
  `unsupported_response_type`, `invalid_scope`); the answers to a silent check (`prompt=none`:
  `login_required`, `interaction_required`, `consent_required`, `account_selection_required`) are not a
  login attempt and write nothing;
* the client refused the response (a forged or missing `state`, a code the provider refuses — forged,
  replayed, expired —, an ID token that fails verification): the response is 4xx/5xx → `authn_login_fail`,
  `evt.reason: invalid_token`; but a 403 is the client refusing the identity the provider vouched for (no
  such account, a domain it does not serve) → `not_allowed`;
* a backend accepted an account that may not log in (Django: `authenticate()` returned an inactive
  account, and the client refused it) → `authn_login_fail`, `evt.reason: account_disabled`, with the
  account.

Only a GET (or HEAD) is a callback — or a POST whose form the framework already parsed, where an
integration passes it (Django: `response_mode=form_post`, Sign in with Apple's) —, and a 404 or 405 is
not one (a page whose query merely has `state` and `code`). A 2xx/3xx answer with nothing refused writes
nothing (a signup form to finish, a next step: the login is recorded when it happens). A refusal to a
logged-in user (connecting a provider to an account, a replayed code) names that user. The code, the
state and every token are never read into a record: only the names of the fields and `error`'s value
(compared with the names above) are looked at.

Nothing here imports a web framework.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

from graffer_secevents._attempts import ATTEMPT_TYPES, recorded

from ._auth import record_auth
from ._common import LazyRequestContext, never_raise

__all__ = [
    "REASON_ACCOUNT_DISABLED",
    "REASON_INVALID",
    "REASON_PROVIDER_TROUBLE",
    "REASON_REFUSED",
    "authorization_response",
    "is_sso_callback",
    "record_refused_sso",
]

REASON_REFUSED: Final = "not_allowed"
"""The provider or the application refused the identity (`error=access_denied`, a domain not allowed, a
backend that will not create the account)."""
REASON_INVALID: Final = "invalid_token"
"""The authorization response itself failed: the state, the code or the ID token."""
REASON_ACCOUNT_DISABLED: Final = "account_disabled"
"""The provider vouched for an account that may not log in (inactive)."""

_SILENT_CHECK_ERRORS: Final = frozenset(
    {"login_required", "interaction_required", "consent_required", "account_selection_required"}
)
"""OpenID Connect Core §3.1.2.6: the answers to `prompt=none`, a check that no one is logged in at the
provider, not a refused login."""
_PROVIDER_TROUBLE_ERRORS: Final = frozenset(
    {
        "server_error",
        "temporarily_unavailable",
        "invalid_request",
        "unsupported_response_type",
        "invalid_scope",
    }
)
"""RFC 6749 §4.1.2.1: the provider failed, or the client asked wrongly — the login failed, but nobody
refused it: `evt.reason: other`."""
REASON_PROVIDER_TROUBLE: Final = "other"
_NOT_A_CALLBACK: Final = frozenset({404, 405})
"""No such route (or not for this method): a page whose query merely looks like an authorization response."""
_NAMES: Final = ("state", "code", "error")
"""The fields of an authorization response that are looked at (their values never leave this module)."""


def authorization_response(query: str | None) -> tuple[bool, str | None] | None:
    """`(True, error)` when `query` (a raw query string) is an OAuth 2.0 authorization response — `state`
    with `code` or `error` —, else `None`. `error` is the provider's error code, or `None` for a code.

    The cheap test (`"state=" in query`) runs first: this is asked on every response.
    """
    if not query or "state=" not in query:
        return None
    names: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in _NAMES and key not in names:
            names[key] = value
    return _response_in(names)


def _response_in(fields: Mapping[str, Any]) -> tuple[bool, str | None] | None:
    """`authorization_response` over fields already parsed (a query's, or a posted form's)."""
    if "state" not in fields or not ("code" in fields or "error" in fields):
        return None
    if "error" not in fields:
        return True, None
    error = fields["error"]
    return True, error if isinstance(error, str) else ""


def record_refused_sso(
    ctx: LazyRequestContext, query: str | None, *, account: Any = None, form: Mapping[str, Any] | None = None
) -> None:
    """At the start of the response to `ctx`: record the refused SSO login it answers, if any (see the
    module's docstring). `query` is the raw query string of a GET; `form`, the fields of a POST the
    framework already parsed (the provider's `response_mode=form_post`), when there is one. `account` is an
    account a backend accepted during the request (Django), or `None`. Never raises (but strict mode)."""
    if ctx.denial_recorded:
        return
    if form is None and (not query or "state=" not in query):
        return
    with never_raise("the SSO callback rule"):
        status = ctx.status_code or 0
        if status in _NOT_A_CALLBACK:
            return
        # The provider sends the browser back with a GET, or a form it posts (`response_mode=form_post`).
        method = (ctx.method or "GET").upper()
        if form is not None:
            found = _response_in(form) if method == "POST" else None
        else:
            found = authorization_response(query) if method in ("GET", "HEAD") else None
        if found is None or any(recorded(ctx, t) for t in ATTEMPT_TYPES):
            return
        _, error = found
        user: Any = None
        if error is not None:
            code = error.strip().lower()
            if code in _SILENT_CHECK_ERRORS:
                return
            reason = REASON_PROVIDER_TROUBLE if code in _PROVIDER_TROUBLE_ERRORS else REASON_REFUSED
        elif account is not None and getattr(account, "is_active", True) is False:
            reason, user = REASON_ACCOUNT_DISABLED, account
        elif status == 403:  # the client refused the identity the provider vouched for
            reason = REASON_REFUSED
        elif status >= 400:
            reason = REASON_INVALID
        else:
            return
        where = "the SSO callback rule"
        record_auth("authn_login_fail", where=where, user=user, outcome="failure", params={"reason": reason})


def is_sso_callback(ctx: object, form: Mapping[str, Any] | None = None) -> bool:
    """Whether the request of `ctx` carries an authorization response with a code (a callback whose code a
    backend is checking), in its query string or in `form` (the fields it posted, already parsed)."""
    found = _response_in(form) if form is not None else None
    if found is None:
        found = authorization_response(_query(ctx))
    return found is not None and found[1] is None


def _query(ctx: object) -> str | None:
    read = getattr(ctx, "_raw_query_string", None)
    if read is None:
        return None
    try:
        value = read()
    except Exception:  # noqa: BLE001 - an unreadable query is no callback
        return None
    return value if isinstance(value, str) else None
