"""Privacy: every mode of every field, the hashing key and its fallback, secret redaction."""

from __future__ import annotations

import hashlib
import hmac
import warnings
from typing import Any

import pytest

import graffer_secevents as api
from graffer_secevents import ConfigurationError, SecEventsWarning, User
from graffer_secevents._privacy import DEFAULT_MODES, Privacy, is_secret_key
from graffer_secevents.testing import capture_events

KEY = "test-hash-key-of-32-bytes-length"


def expected_hash(value: str, key: str | None = KEY) -> str:
    if key is None:
        return "anon_" + hashlib.sha256(value.encode()).hexdigest()[:32]
    return "anon_" + hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]


def emit_full(**privacy: str) -> dict[str, Any]:
    api.configure(privacy=privacy)
    with capture_events() as events:
        api.log_user_created(
            User(id="actor-1", login="ada", email="ada@example.com", name="Ada L"),
            User(id="target-2", login="bob", email="bob@example.com", name="Bob M"),
            ip="203.0.113.77",
        )
    return events.records[0]


def test_defaults_keep_ids_and_ip_hash_login_and_email_drop_name() -> None:
    record = emit_full()
    assert record["usr"] == {
        "id": "actor-1",
        "login": expected_hash("ada"),
        "email": expected_hash("ada@example.com"),
    }
    assert record["target"]["usr"] == {
        "id": "target-2",
        "login": expected_hash("bob"),
        "email": expected_hash("bob@example.com"),
    }
    assert record["network"]["client"]["ip"] == "203.0.113.77"


@pytest.mark.parametrize("field", ["usr.id", "usr.login", "usr.email", "usr.name", "target.usr.id"])
@pytest.mark.parametrize("mode", ["keep", "hash", "drop"])
def test_every_mode_of_every_user_field(field: str, mode: str) -> None:
    record = emit_full(**{field: mode})
    raw = {
        "usr.id": "actor-1",
        "usr.login": "ada",
        "usr.email": "ada@example.com",
        "usr.name": "Ada L",
        "target.usr.id": "target-2",
    }[field]
    section = record["target"]["usr"] if field.startswith("target.") else record["usr"]
    key = field.rsplit(".", 1)[1]
    expected = {"keep": raw, "hash": expected_hash(raw), "drop": None}[mode]
    assert section.get(key) == expected


@pytest.mark.parametrize(
    ("mode", "ipv4", "ipv6"),
    [
        ("keep", "203.0.113.77", "2001:db8:1:2:3:4:5:6"),
        ("hash", expected_hash("203.0.113.77"), expected_hash("2001:db8:1:2:3:4:5:6")),
        ("truncate", "203.0.113.0", "2001:db8:1:2::"),
        ("drop", None, None),
    ],
)
def test_every_mode_of_the_client_ip(mode: str, ipv4: str | None, ipv6: str | None) -> None:
    api.configure(privacy={"network.client.ip": mode})
    with capture_events() as events:
        api.log_login(1, "success", "203.0.113.77")
        api.log_login(1, "success", "2001:db8:1:2:3:4:5:6")
    got = [r.get("network", {}).get("client", {}).get("ip") for r in events.records]
    assert got == [ipv4, ipv6]


def test_same_input_hashes_the_same_everywhere() -> None:
    privacy = Privacy(None, KEY)
    assert privacy.hash("ada") == privacy.hash("ada") == expected_hash("ada")
    assert privacy.hash("ada") != Privacy(None, "other-key").hash("ada")


def test_without_a_key_hashing_falls_back_to_sha256_and_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from graffer_secevents import _errors

    monkeypatch.delenv("SECEVENTS_HASH_KEY")
    monkeypatch.setattr(_errors, "_warned", set())
    with pytest.warns(SecEventsWarning, match="hash_key"):
        api.configure()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        api.configure()  # a second time: no second warning
    with capture_events() as events:
        api.log_login(None, "failure", login="ada")
    assert events.records[0]["usr"]["login"] == expected_hash("ada", key=None)


def test_no_warning_when_nothing_is_hashed(monkeypatch: pytest.MonkeyPatch) -> None:
    from graffer_secevents import _errors

    monkeypatch.delenv("SECEVENTS_HASH_KEY")
    monkeypatch.setattr(_errors, "_warned", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        api.configure(privacy={"usr.login": "drop", "usr.email": "drop"})


def test_privacy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECEVENTS_PRIVACY", "usr.email=drop, network.client.ip=truncate")
    cfg = api.configure()
    assert cfg.privacy.modes["usr.email"] == "drop"
    assert cfg.privacy.modes["network.client.ip"] == "truncate"


@pytest.mark.parametrize(
    ("privacy", "message"),
    [
        ({"usr.phone": "hash"}, "unknown field 'usr.phone'"),
        ({"usr.login": "truncate"}, "allowed: keep, hash, drop"),
        ({"network.client.ip": "mask"}, "allowed: keep, hash, drop, truncate"),
    ],
)
def test_unknown_fields_and_modes_are_refused_at_configure(privacy: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        api.configure(privacy=privacy)


def test_default_modes_match_the_spec() -> None:
    assert dict(DEFAULT_MODES) == {
        "usr.id": "keep",
        "target.usr.id": "keep",
        "usr.login": "hash",
        "usr.email": "hash",
        "usr.name": "drop",
        "network.client.ip": "keep",
    }


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "new_password",
        "Passwd",
        "client_secret",
        "access_token",
        "api_key",
        "X-Api-Key",
        "apikey",
        "Authorization",
        "cookie",
        "session",
        "sessionid",
        "credentials",
        "private_key",
        "refresh-token",
    ],
)
def test_secret_looking_keys_are_redacted(key: str) -> None:
    assert is_secret_key(key)
    with capture_events() as events:
        api.emit(
            "authz_admin",
            user=1,
            action="x",
            **{key: "hunter2"},
            nested={"deeper": {key: "hunter2"}},
            items=[{key: "hunter2"}],
        )
    line = events.lines[0].decode()
    assert "hunter2" not in line
    assert line.count("[REDACTED]") == 3


def test_ordinary_keys_are_not_redacted() -> None:
    for key in ("tenant", "plan", "username_length", "monkey", "keyboard_layout"):
        assert not is_secret_key(key)


def test_secret_valued_mapping_is_redacted_whole() -> None:
    with capture_events() as events:
        api.emit("authz_admin", user=1, action="x", credentials={"user": "a", "pass": "hunter2"})
    assert events.records[0]["context"]["credentials"] == "[REDACTED]"


def test_session_and_token_ids_are_always_hashed_whatever_the_privacy_modes() -> None:
    api.configure(privacy={"usr.login": "keep", "usr.email": "keep", "usr.id": "keep"})
    with capture_events() as events:
        api.log_logout(1, session_id="raw-session-123")
        api.log_token_revoked(1, token_id="raw-token-456")
    text = b"".join(events.lines).decode()
    assert "raw-session-123" not in text and "raw-token-456" not in text
    assert events.records[0]["evt"]["session_id"] == expected_hash("raw-session-123")


@pytest.mark.parametrize("key", ["k", "x" * 64, "y" * 65, "z" * 300])
@pytest.mark.parametrize("value", ["ada", "", "é", "\ud800 lone"])
def test_prepared_hmac_equals_the_hmac_module(key: str, value: str) -> None:
    """The per-event HMAC (pads absorbed once) is exactly RFC 2104 HMAC-SHA256, keys longer than a block too."""
    data = value.encode("utf-8", "surrogatepass")
    expected = "anon_" + hmac.new(key.encode(), data, hashlib.sha256).hexdigest()[:32]
    assert Privacy(None, key).hash(value) == expected
