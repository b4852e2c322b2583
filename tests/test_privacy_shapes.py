"""Secrets by shape in the fields the library fills itself (path, user agent, request id, `evt.resource`, the
identity), e-mail identities under the `usr.email` rule, and the notes each replacement leaves."""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

import pytest
from flask import Flask
from flask_login import LoginManager, UserMixin, login_user

import graffer_secevents as api
from graffer_secevents import User
from graffer_secevents._context import RequestContext, request_context
from graffer_secevents._privacy import MAX_SHAPES_CHECKED, Privacy
from graffer_secevents._request_id import ReplacedRequestId, accept_request_id
from graffer_secevents.testing import capture_events

KEY = os.environ["SECEVENTS_HASH_KEY"]  # tests/conftest.py sets it
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"

SHAPES = {
    "a JWT": JWT,
    "a GitHub token": "ghp_" + "Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7Bc0Ef3Hi6",
    "a GitHub token (fine-grained)": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "a GitLab token": "glpat-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm",
    "a Slack token": "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "an AWS access key id": "AKIAIOSFODNN7EXAMPL3",
    "a Stripe secret key": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "a Google API key": "AIza" + "SyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
    "an npm token": "npm_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "a PyPI token": "pypi-AgEIcHlwaS5vcmcCJGE0ZjY3" + "Xy1" * 12,
    "a Django password-reset token": "c1x2yz-0123456789abcdef0123",
    "a long random token (hex)": "3f786850e387550fdab836ed7e6dc881de23001b",
    "a long random token (base64)": "h7G2kQ9xZp4LmN8vR3tY6wB1cD5fJ0sA",
}
BENIGN_PATHS = [
    "/login",
    "/api/v1/users/42/orders",
    "/users/550e8400-e29b-41d4-a716-446655440000",
    "/req/0f3a9c2b4d5e6f708192a3b4c5d6e7f8",  # 32 hex: a request id or a UUID, not a secret
    "/blog/How-To-Use-Python-3-In-2024-Guide-For-Beginners",
    "/blog/introductiontomachinelearning2024",
    "/TheQuickBrownFoxJumpsOverTheLazyDog2024",
    "/products/SKU2024ABCDEF/reviews",
    "/static/app.3f2a9c1b.js",
    "/internationalization/settings",
    "/objects/5f7c8ec7c33c6c004bbafe82",  # a MongoDB ObjectId (24 hex)
    "/search?q=python",
]
BENIGN_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148",
    "python-requests/2.31.0",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
]


def pseudonym(value: str) -> str:
    return "anon_" + hmac.new(KEY.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]


def emitted(ctx: RequestContext | None = None, *, strict: bool = True, **kwargs: Any) -> dict[str, Any]:
    with capture_events(strict=strict) as events:
        if ctx is None:
            api.log_access_denied(kwargs.pop("user", None), kwargs.pop("resource", "/x"), **kwargs)
        else:
            with request_context(ctx):
                api.log_access_denied(kwargs.pop("user", None), kwargs.pop("resource", ctx.path), **kwargs)
    return events.records[0]


def notes(record: dict[str, Any]) -> list[str]:
    return list(record.get("secevents", {}).get("errors", []))


@pytest.mark.parametrize("kind", list(SHAPES))
def test_each_shape_in_the_path_and_resource_is_redacted_and_noted_even_in_strict_mode(kind: str) -> None:
    secret = SHAPES[kind]
    record = emitted(RequestContext(path=f"/files/{secret}/download"))
    assert secret not in str(record)
    assert record["http"]["url_details"]["path"] == "/files/[REDACTED]/download"
    assert record["evt"]["resource"] == "/files/[REDACTED]/download"
    name = kind.split(" (", maxsplit=1)[0]
    assert f"http.url_details.path: {name} redacted" in notes(record)
    assert f"evt.resource: {name} redacted" in notes(record)


@pytest.mark.parametrize("path", BENIGN_PATHS)
def test_ordinary_paths_are_written_unchanged_without_a_note(path: str) -> None:
    record = emitted(RequestContext(path=path))
    assert record["http"]["url_details"]["path"] == path
    assert notes(record) == []


@pytest.mark.parametrize("agent", BENIGN_AGENTS)
def test_ordinary_user_agents_are_written_unchanged_without_a_note(agent: str) -> None:
    record = emitted(RequestContext(path="/x", user_agent=agent))
    assert record["http"]["useragent"] == agent
    assert notes(record) == []


def test_a_bearer_token_in_the_user_agent_keeps_the_scheme_name() -> None:
    record = emitted(RequestContext(path="/x", user_agent="curl/8.4 Bearer s3cr3t-opaque-token"))
    assert record["http"]["useragent"] == "curl/8.4 Bearer [REDACTED]"
    assert notes(record) == ["http.useragent: a credential after an authorization scheme redacted"]


def test_an_api_key_in_the_user_agent_is_redacted_but_a_long_build_id_is_not() -> None:
    build = "MyApp/3.2 (build aB3dE5gH7jK9mN1pQ2rS4tU6)"
    record = emitted(RequestContext(path="/x", user_agent=f"{build} key {SHAPES['a GitHub token']}"))
    assert record["http"]["useragent"] == f"{build} key [REDACTED]"


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/users/ada@example.com/profile", "/users/{}/profile"),
        ("/users/ada%40example.com/profile", "/users/{}/profile"),  # percent-encoded: hashed as the address
    ],
)
def test_an_email_in_the_path_is_hashed_like_usr_email(path: str, shown: str) -> None:
    record = emitted(RequestContext(path=path))
    assert record["http"]["url_details"]["path"] == shown.format(pseudonym("ada@example.com"))
    assert "http.url_details.path: an e-mail address hashed" in notes(record)


def test_an_email_follows_the_usr_email_mode() -> None:
    api.configure(privacy={"usr.email": "drop"})
    record = emitted(RequestContext(path="/users/ada@example.com"))
    assert record["http"]["url_details"]["path"] == "/users/[REDACTED]"
    assert "http.url_details.path: an e-mail address dropped" in notes(record)
    api.configure(privacy={"usr.email": "keep"})
    record = emitted(RequestContext(path="/users/ada@example.com"))
    assert record["http"]["url_details"]["path"] == "/users/ada@example.com"
    assert notes(record) == []


def test_a_secret_named_parameter_in_the_path_is_redacted() -> None:
    record = emitted(RequestContext(path="/app;jsessionid=A1B2C3D4/cb?code=xyz123&state=ok&api_key=k-42"))
    assert (
        record["http"]["url_details"]["path"]
        == "/app;jsessionid=[REDACTED]/cb?code=[REDACTED]&state=ok&api_key=[REDACTED]"
    )


def test_a_caller_resource_with_a_token_is_redacted_too() -> None:
    record = emitted(resource=f"/keys/{SHAPES['a Stripe secret key']}")
    assert record["evt"]["resource"] == "/keys/[REDACTED]"
    assert notes(record) == ["evt.resource: a Stripe secret key redacted"]


def test_a_path_over_the_limit_is_scanned_past_the_cut() -> None:
    path = "/" + "a/" * 505 + JWT  # the JWT starts before character 1,024 and ends after it
    record = emitted(RequestContext(path=path), strict=False)
    written = record["http"]["url_details"]["path"]
    assert len(written) <= 1024
    assert "eyJ" not in written
    assert "eyJ" not in record["evt"]["resource"]
    assert "http.url_details.path: a JWT redacted" in notes(record)
    assert "evt.resource: a JWT redacted" in notes(record)


def test_a_value_full_of_candidates_costs_a_bounded_check_and_the_rest_is_redacted() -> None:
    path = "/" + "/".join(f"word{n:012d}abcdef" for n in range(40))
    record = emitted(RequestContext(path=path))
    written = record["http"]["url_details"]["path"]
    assert written.endswith("[REDACTED]")
    assert written.count("/") == MAX_SHAPES_CHECKED + 1
    assert (
        f"http.url_details.path: more than {MAX_SHAPES_CHECKED} possible secrets, the rest redacted unchecked"
        in notes(record)
    )


# --- request ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["a JWT", "a GitHub token", "an AWS access key id", "a long random token (hex)"]
)
def test_accept_request_id_replaces_a_secret_shaped_upstream_id(kind: str) -> None:
    accepted = accept_request_id(SHAPES[kind])
    assert type(accepted) is ReplacedRequestId
    assert len(accepted) == 32 and accepted != SHAPES[kind]
    record = emitted(RequestContext(path="/x", request_id=accepted))
    assert record["http"]["request_id"] == accepted
    assert any(n.startswith("http.request_id: the upstream id held ") for n in notes(record))


@pytest.mark.parametrize(
    "value", ["req-42", "550e8400-e29b-41d4-a716-446655440000", "0f3a9c2b4d5e6f708192a3b4c5d6e7f8"]
)
def test_ordinary_request_ids_are_kept(value: str) -> None:
    assert accept_request_id(value) == value
    assert type(accept_request_id(value)) is str


def test_a_hand_bound_secret_request_id_is_replaced_once_for_the_whole_request() -> None:
    ctx = RequestContext(path="/x", request_id=JWT)
    with capture_events() as events, request_context(ctx):
        api.log_access_denied(None, "/x")
        api.log_access_denied(None, "/y")
    first, second = events.records
    assert JWT not in str(events.records)
    assert first["http"]["request_id"] == second["http"]["request_id"] != JWT
    for record in (first, second):
        assert any(n.startswith("http.request_id: ") for n in notes(record))


# --- identities --------------------------------------------------------------------------------------------


class ReadmeUser(UserMixin):
    """Flask-Login's README: `user = User(); user.id = email`."""


class GetIdOnly:
    is_authenticated = True

    def get_id(self) -> str:
        return "grace@example.org"


@pytest.mark.parametrize(
    "user",
    [
        "ada@example.com",
        User(id="ada@example.com"),
        pytest.param("readme", id="flask-login-readme-user"),
    ],
)
def test_an_email_as_usr_id_is_written_under_the_email_rule(user: Any) -> None:
    if user == "readme":
        user = ReadmeUser()
        user.id = "ada@example.com"
    record = emitted(user=user)
    assert record["usr"]["id"] == pseudonym("ada@example.com")
    assert notes(record) == ["usr.id: an e-mail address, written under the usr.email rule (hashed)"]


def test_an_email_from_get_id_and_as_target_is_hashed() -> None:
    with capture_events() as events:
        api.log_user_created(GetIdOnly(), User(id="bob@example.com"))
    record = events.records[0]
    assert record["usr"]["id"] == pseudonym("grace@example.org")
    assert record["target"]["usr"]["id"] == pseudonym("bob@example.com")
    assert "target.usr.id: an e-mail address, written under the usr.email rule (hashed)" in notes(record)


def test_ids_that_only_contain_an_at_sign_are_kept() -> None:
    for uid in ("ada@realm", "svc@host:443", "u-42"):
        assert emitted(user=uid)["usr"]["id"] == uid


def test_a_token_as_usr_id_is_hashed_and_a_random_looking_id_is_kept() -> None:
    record = emitted(user=SHAPES["a GitHub token"])
    assert record["usr"]["id"] == pseudonym(SHAPES["a GitHub token"])
    assert notes(record) == ["usr.id: a GitHub token, hashed"]
    firebase_uid = "Kx7zQ3mN9pR2sT5vW8yB1cD4fG6h"  # random, but an id: not a secret
    assert emitted(user=firebase_uid)["usr"]["id"] == firebase_uid


def test_the_flask_extension_never_writes_a_flask_login_users_email_as_its_id() -> None:
    """The real Flask-Login: `login_user` of the README's user sends `user_logged_in`, which the extension
    records as `authn_login_success` with the address hashed."""
    from graffer_secevents.integrations.flask import SecurityEvents

    app = Flask(__name__)
    app.secret_key = "test"
    manager = LoginManager(app)

    def load(email: str) -> ReadmeUser:
        user = ReadmeUser()
        user.id = email
        return user

    manager.user_loader(load)
    SecurityEvents(app)

    @app.post("/login")
    def login() -> str:
        login_user(load("ada@example.com"))
        return "ok"

    with capture_events() as events:
        assert app.test_client().post("/login").status_code == 200
    (record,) = events.records
    assert record["evt"]["type"] == "authn_login_success"
    assert record["usr"]["id"] == pseudonym("ada@example.com")
    assert "ada@example.com" not in str(record)


def test_scrub_remembers_recent_values() -> None:
    privacy = Privacy(None, KEY)
    first: list[str] = []
    second: list[str] = []
    assert (
        privacy.scrub("f", f"/a/{JWT}", first) == privacy.scrub("f", f"/a/{JWT}", second) == "/a/[REDACTED]"
    )
    assert first == second == ["f: a JWT redacted"]


def test_a_kept_login_that_is_an_email_is_not_copied_raw_into_usr_id() -> None:
    api.configure(privacy={"usr.login": "keep"})
    with capture_events() as events:
        api.log_login(None, "failure", login="ada@example.com", exists=False)
    record = events.records[0]
    assert record["usr"]["login"] == "ada@example.com"  # what the configuration asked for
    assert record["usr"]["id"] == pseudonym("ada@example.com")
    assert "usr.id: the login, an e-mail address, written under the usr.email rule (hashed)" in notes(record)


def test_emails_and_tokens_in_caller_metadata_values_are_replaced_too() -> None:
    """An e-mail under any metadata key, a token pasted into a note: the shapes are caught under any key
    (`login=` itself is a helper argument, hashed into `usr.login`)."""
    with capture_events() as events:
        api.log_admin_action(
            1,
            "disable_user",
            contact="ada@example.com",
            note=f"rotated {SHAPES['a GitHub token']}",
            order_id="Kx7zQ3mN9pR2sT5vW8yB1cD4fG6h",  # random-looking, but an id: kept
            ticket="SEC-42",
        )
    record = events.records[0]
    assert record["context"] == {
        "contact": pseudonym("ada@example.com"),
        "note": "rotated [REDACTED]",
        "order_id": "Kx7zQ3mN9pR2sT5vW8yB1cD4fG6h",
        "ticket": "SEC-42",
    }
    assert notes(record) == [
        "context.contact: an e-mail address hashed",
        "context.note: a GitHub token redacted",
    ]


def test_an_empty_login_or_id_is_noted_not_dropped_silently_and_never_a_strict_error() -> None:
    """An empty login form is what a client sent: the record says the login was dropped."""
    with capture_events() as events:
        api.log_login(None, "failure", login="", exists=False)
        api.log_access_denied("", "/x")
    failed, denied = events.records
    assert "login" not in failed["usr"]
    assert notes(failed) == ["usr.login: an empty login, dropped"]
    assert "usr" not in denied
    assert notes(denied) == ["usr.id: an empty id, dropped"]
