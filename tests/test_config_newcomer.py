"""What a newcomer tries first: a path as `output`, one CIDR string as `trusted_proxies`, a short or missing
`hash_key` (refused with the reason outside development, a warning at the application's call in it)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import orjson
import pytest

import graffer_secevents as api
from graffer_secevents import ConfigurationError, SecEventsWarning
from graffer_secevents._config import is_development
from graffer_secevents._errors import reset_warnings

# --- a path as output -------------------------------------------------------------------------------------


def test_a_path_is_created_with_its_directory_and_appended_to(tmp_path: Path) -> None:
    log = tmp_path / "var" / "log" / "app" / "security.log"
    api.configure(output=str(log), delivery="queue")
    api.log_login(42, "success", "203.0.113.5")
    assert api.flush(timeout=5)
    api.configure(output=str(log))  # a second configuration naming the same file appends to it
    api.log_logout(42, "203.0.113.5")
    assert api.flush(timeout=5)
    records = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    assert [r["evt"]["type"] for r in records] == ["authn_login_success", "session_logout"]


def test_a_path_keeps_what_the_file_held(tmp_path: Path) -> None:
    log = tmp_path / "security.log"
    log.write_text('{"earlier": "line"}\n')
    api.configure(output=str(log), delivery="sync")
    api.log_access_denied(7, "/admin", "198.51.100.2")
    lines = log.read_text().splitlines()
    assert lines[0] == '{"earlier": "line"}'
    assert orjson.loads(lines[1])["evt"]["type"] == "authz_fail"


def test_a_path_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "from-env.jsonl"
    monkeypatch.setenv("SECEVENTS_OUTPUT", str(log))
    api.configure(reset=True, delivery="sync")
    api.log_login(1, "success", "203.0.113.9")
    assert orjson.loads(log.read_bytes())["usr"]["id"] == "1"


def test_several_processes_append_to_one_file_without_losing_a_line(tmp_path: Path) -> None:
    log = tmp_path / "shared.log"
    script = textwrap.dedent(
        f"""
        import graffer_secevents as s
        s.configure(output={str(log)!r}, delivery="queue", hash_key="k" * 16)
        for n in range(300):
            s.log_login(n, "success", "203.0.113.5", padding="x" * 2000)
        assert s.flush(timeout=10)
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    records = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    events = [r for r in records if "evt" in r]
    assert len(events) == 1200 and len(records) == 1204  # and each writer's clean end
    assert all(r["evt"]["type"] == "authn_login_success" for r in events)


def test_an_unwritable_path_is_refused_at_configure(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(
        ConfigurationError, match=r"output: cannot open .*a-file/security\.log.* for appending"
    ):
        api.configure(output=str(blocker / "security.log"))


def test_a_misspelt_output_name_is_still_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown output 'stdot'.*a file path"):
        api.configure(output="stdot")  # type: ignore[arg-type]


# --- one CIDR string as trusted_proxies ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "trusted", "untrusted"),
    [
        ("10.0.0.0/22", ["10.0.0.1", "10.0.3.254"], ["10.0.4.1", "1.0.0.0", "0.0.0.0"]),
        ("10.0.0.0/22, 192.168.7.0/24", ["10.0.2.2", "192.168.7.9"], ["192.168.8.1"]),
        ("2001:db8::/32", ["2001:db8::1"], ["2001:db9::1"]),
    ],
)
def test_a_cidr_string_is_one_network_not_its_characters(
    given: str, trusted: list[str], untrusted: list[str]
) -> None:
    proxies = api.configure(trusted_proxies=given).trusted_proxies
    assert proxies is not None
    assert all(proxies.is_trusted(ip) for ip in trusted)
    assert not any(proxies.is_trusted(ip) for ip in untrusted)


def test_a_cidr_string_resolves_the_forwarded_client_over_wsgi() -> None:
    from graffer_secevents.integrations.wsgi import SecurityEventsMiddleware

    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        api.log_login(1, "success")
        start_response("200 OK", [])  # type: ignore[operator]
        return [b""]

    from graffer_secevents.testing import capture_events

    api.configure(trusted_proxies="10.0.0.0/22")
    with capture_events() as events:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/",
            "REMOTE_ADDR": "10.0.1.7",
            "HTTP_X_FORWARDED_FOR": "203.0.113.50",
            "wsgi.url_scheme": "http",
        }
        SecurityEventsMiddleware(app)(environ, lambda *a: None)
    assert events.records[0]["network"]["client"]["ip"] == "203.0.113.50"


def test_a_bad_cidr_string_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"10\.0\.0\.0/33"):
        api.configure(trusted_proxies="10.0.0.0/33")


# --- the hash key -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["hunter", b"0123456789abcde", "ééééééé"])  # 6, 15 and 14 bytes
def test_a_key_shorter_than_16_bytes_is_refused_with_the_reason(key: str | bytes) -> None:
    with pytest.raises(ConfigurationError, match=r"hash_key: the key is \d+ bytes; at least 16") as caught:
        api.configure(hash_key=key)
    assert "trying keys" in str(caught.value) and "SECEVENTS_HASH_KEY" in str(caught.value)


def test_a_short_key_in_the_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECEVENTS_HASH_KEY", "short")
    with pytest.raises(ConfigurationError, match=r"^SECEVENTS_HASH_KEY: the key is 5 bytes"):
        api.configure(reset=True)


def test_a_16_byte_key_is_accepted() -> None:
    assert api.configure(hash_key="0123456789abcdef").privacy.keyed


@pytest.mark.parametrize("env", ["prod", "production", "staging", "eu-west-prod"])
def test_no_key_outside_development_is_refused_at_configure(
    monkeypatch: pytest.MonkeyPatch, env: str
) -> None:
    monkeypatch.delenv("SECEVENTS_HASH_KEY")
    with pytest.raises(
        ConfigurationError, match=rf"no hash_key is set.*env='{env}' is not development"
    ) as caught:
        api.configure(reset=True, env=env)
    assert "SECEVENTS_HASH_KEY" in str(caught.value)


def test_no_key_with_dd_env_production_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECEVENTS_HASH_KEY")
    monkeypatch.setenv("DD_ENV", "production")
    with pytest.raises(ConfigurationError, match="no hash_key"):
        api.configure(reset=True, service="shop")


def test_no_key_is_fine_when_nothing_is_hashed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECEVENTS_HASH_KEY")
    cfg = api.configure(reset=True, env="prod", privacy={"usr.login": "drop", "usr.email": "drop"})
    assert not cfg.privacy.keyed


@pytest.mark.parametrize("env", [None, "dev", "Development", "local", "test", "ci", "demo"])
def test_development_is_an_unset_env_or_a_development_name(env: str | None) -> None:
    assert is_development(env)


def test_in_development_a_missing_key_warns_once_at_the_applications_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SECEVENTS_HASH_KEY")
    reset_warnings()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        api.configure(reset=True, env="dev")
        api.configure(reset=True, env="dev")
    unkeyed = [w for w in caught if "no hash_key" in str(w.message)]
    assert len(unkeyed) == 1
    assert issubclass(unkeyed[0].category, SecEventsWarning)
    assert unkeyed[0].filename == __file__  # this test's configure() call, not _config.py
    assert "SECEVENTS_HASH_KEY" in str(unkeyed[0].message) and "secrets.token_urlsafe" in str(
        unkeyed[0].message
    )


def test_the_environment_fallback_never_writes_a_reversible_pseudonym(tmp_path: Path) -> None:
    """A service in production whose SECEVENTS_* environment cannot be read still writes (never raise) but
    hashes with a random key: the unkeyed SHA-256 of the login does not appear."""
    script = textwrap.dedent(
        """
        import warnings
        warnings.simplefilter("ignore")
        import graffer_secevents as s
        s.log_login(None, "failure", "203.0.113.5", login="ada@example.com", exists=False)
        s.flush(timeout=5)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECEVENTS_", "DD_"))}
    env.update(DD_ENV="prod", SECEVENTS_METRICS="bogus")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, check=True, timeout=60)
    record = orjson.loads(out.stdout.splitlines()[0])  # then the writer's end record
    unkeyed = "anon_" + hashlib.sha256(b"ada@example.com").hexdigest()[:32]
    assert record["usr"]["login"].startswith("anon_") and record["usr"]["login"] != unkeyed
