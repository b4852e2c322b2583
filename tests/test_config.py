"""configure(): options declared once, merged across calls, reset on request; the table, the signature and
docs/configuration.md agree."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import inspect
import io
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import graffer_secevents as api
from graffer_secevents import ConfigurationError
from graffer_secevents._client_ip import resolve_client_ip
from graffer_secevents._config import OPTIONS, Option, configure
from graffer_secevents._tools.config_doc import environment_table

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "configuration.md").read_text()


def keyed_hash(key: str, value: str) -> str:
    return "anon_" + hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]


def login_record(**login: str) -> dict[str, object]:
    out = io.StringIO()
    api.configure(output=out)
    api.log_login(None, "failure", "203.0.113.5", login="ada", **login)
    record: dict[str, object] = json.loads(out.getvalue())
    return record


# --- a later configure() changes only what it names ------------------------------------------------------


def test_a_second_configure_keeps_the_hash_key_and_the_proxies() -> None:
    api.configure(hash_key="k-from-the-vault", trusted_proxies=["10.0.0.0/8"])
    api.configure(env="prod")

    cfg = api.get_config()
    assert cfg.env == "prod"
    assert cfg.options["hash_key"] == "k-from-the-vault"
    # The key still hashes what is written, and the proxies still decide the client IP.
    record = login_record()
    assert record["usr"]["login"] == keyed_hash("k-from-the-vault", "ada")  # type: ignore[index]
    assert record["env"] == "prod"
    assert cfg.trusted_proxies is not None
    assert resolve_client_ip("10.1.2.3", x_forwarded_for="198.51.100.7", trusted=cfg.trusted_proxies) == (
        "198.51.100.7"
    )


def test_naming_an_option_again_replaces_only_it() -> None:
    api.configure(service="auth-api", version="1.0", privacy={"usr.email": "drop"})
    api.configure(version="1.1", privacy={"network.client.ip": "truncate"})
    cfg = api.get_config()
    assert (cfg.service, cfg.version) == ("auth-api", "1.1")
    # privacy is one option: the new mapping replaces the old one (it is not merged key by key).
    assert cfg.privacy.modes["network.client.ip"] == "truncate"
    assert cfg.privacy.modes["usr.email"] == "hash"


def test_none_unsets_an_option() -> None:
    api.configure(service="auth-api", trusted_proxies=["10.0.0.0/8"])
    api.configure(service=None, trusted_proxies=None)
    cfg = api.get_config()
    assert cfg.service is None and cfg.trusted_proxies is None
    assert "service" not in login_record()


def test_reset_goes_back_to_the_environment_and_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DD_SERVICE", "from-env")
    api.configure(service="from-code", strict=True, hash_key="k" * 16, trusted_proxies=["10.0.0.0/8"])
    api.configure(reset=True, version="2.0")
    cfg = api.get_config()
    assert (cfg.service, cfg.version, cfg.strict, cfg.trusted_proxies) == ("from-env", "2.0", False, None)
    assert cfg.options["hash_key"] == os.environ["SECEVENTS_HASH_KEY"]  # tests/conftest.py sets it


def test_the_environment_is_read_at_the_first_build_and_on_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DD_SERVICE", "first")
    assert api.get_config().service == "first"  # the first build, lazily at first use
    monkeypatch.setenv("DD_SERVICE", "second")
    api.configure(version="1")
    assert api.get_config().service == "first"  # a later configure() merges; it does not re-read
    api.configure(reset=True)
    assert api.get_config().service == "second"


def test_a_refused_configure_leaves_the_configuration_in_force() -> None:
    before = api.configure(hash_key="k" * 16, service="auth-api")
    with pytest.raises(ConfigurationError, match="prometheus"):
        api.configure(service="other", metrics="prometheus")  # type: ignore[arg-type]
    assert api.get_config() is before


def test_an_unchanged_metrics_backend_is_kept_and_a_changed_one_rebuilt() -> None:
    api.configure(metrics="memory", service="auth-api")
    backend = api.get_config().metrics
    api.configure(strict=True, hash_key="k" * 16, output=io.StringIO())
    assert api.get_config().metrics is backend
    api.configure(service="billing")  # the backend's constant tags change: a new backend
    assert api.get_config().metrics is not backend


def test_dogstatsd_client_is_kept_across_configure_and_closed_when_replaced() -> None:
    """The real DogStatsD client over a real UDP socket, in a fresh process (its client is per process)."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    code = textwrap.dedent(
        """
        import io, graffer_secevents as s
        s.configure(metrics="dogstatsd", output=io.StringIO())
        first = s.get_config().metrics
        s.configure(strict=False, hash_key="k" * 16)
        kept = s.get_config().metrics is first
        s.log_login(1, "failure", "203.0.113.1")
        first.flush()
        s.configure(metrics="memory")
        print(kept, s.get_config().metrics is not first)
        """
    )
    env = {**os.environ, "DD_DOGSTATSD_URL": f"udp://127.0.0.1:{receiver.getsockname()[1]}"}
    for name in ("DD_SERVICE", "DD_ENV", "DD_VERSION", "SECEVENTS_METRICS"):
        env.pop(name, None)
    try:
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        datagram = receiver.recv(65536).decode()
    finally:
        receiver.close()
    assert result.stdout.split() == ["True", "True"]
    assert "secevents.login.attempts" in datagram


# --- unknown names ----------------------------------------------------------------------------------------


def test_an_unknown_keyword_names_the_nearest_option() -> None:
    options = {"hash_kye": "k"}
    with pytest.raises(
        ConfigurationError, match=r"configure\(\): unknown option 'hash_kye'; did you mean 'hash_key'\?"
    ):
        api.configure(**options)  # type: ignore[arg-type]


def test_an_unknown_keyword_far_from_any_option_lists_them() -> None:
    with pytest.raises(
        ConfigurationError,
        match=r"unknown option 'colour' \(valid: appsec_tracking, block_timeout, delivery, env",
    ):
        api.configure(colour="blue")  # type: ignore[arg-type]


# --- environment values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SECEVENTS_STRICT", "maybe", "SECEVENTS_STRICT: expected a boolean"),
        ("SECEVENTS_TRUSTED_HOPS", "two", "SECEVENTS_TRUSTED_HOPS: expected a whole number"),
        ("SECEVENTS_PRIVACY", "usr.email", "SECEVENTS_PRIVACY: expected 'field=mode'"),
        ("SECEVENTS_METRICS", "bogus", "SECEVENTS_METRICS: unknown backend 'bogus'"),
        ("SECEVENTS_OUTPUT", "syslog", "SECEVENTS_OUTPUT: unknown output 'syslog'"),
    ],
)
def test_a_bad_environment_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        api.configure(reset=True)


def test_environment_values_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECEVENTS_STRICT", "yes")
    monkeypatch.setenv("SECEVENTS_TRUSTED_HOPS", "2")
    monkeypatch.setenv("SECEVENTS_PRIVACY", "usr.email=drop, network.client.ip=truncate")
    monkeypatch.setenv("SECEVENTS_APPSEC_TRACKING", "off")
    cfg = api.configure(reset=True)
    assert cfg.strict is True and cfg.appsec_tracking is False
    assert cfg.trusted_proxies is not None and cfg.trusted_proxies.hops == 2
    assert cfg.privacy.modes["usr.email"] == "drop" and cfg.privacy.modes["network.client.ip"] == "truncate"


def test_the_hash_key_is_not_in_the_repr() -> None:
    cfg = api.configure(hash_key="do-not-print-me-please")
    assert "do-not-print-me" not in repr(cfg)
    assert repr(cfg).startswith("Config(")


# --- one table: signature, docstring and docs agree with it --------------------------------------------------


def test_the_signature_is_the_options_table() -> None:
    params = inspect.signature(configure).parameters
    names = [name for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert names == [opt.name for opt in OPTIONS] + ["reset"]
    assert params["unknown"].kind is inspect.Parameter.VAR_KEYWORD


def test_the_docstring_documents_every_option() -> None:
    doc = inspect.getdoc(configure) or ""
    documented = re.findall(r"^    (\w+):", doc.split("Args:")[1].split("Returns:")[0], flags=re.MULTILINE)
    assert documented == [opt.name for opt in OPTIONS] + ["reset"]


def test_the_docs_page_has_a_section_per_option_and_the_generated_table() -> None:
    headings = re.findall(r"^### `(\w+)`", PAGE, flags=re.MULTILINE)
    assert headings == [opt.name for opt in OPTIONS] + ["reset"]
    expected = environment_table()
    assert expected in PAGE, f"paste into docs/configuration.md:\n{expected}"


@pytest.mark.filterwarnings("ignore::graffer_secevents.SecEventsWarning")  # no SECEVENTS_HASH_KEY, briefly
@pytest.mark.parametrize("opt", [o for o in OPTIONS if o.env is not None], ids=lambda o: o.env)
def test_every_variable_in_the_table_is_read(monkeypatch: pytest.MonkeyPatch, opt: Option) -> None:
    """Setting the row's variable to its documented example changes that option (and only on reset)."""
    assert opt.env is not None
    value = {"metrics": "memory", "hash_key": "k" * 16}.get(opt.name, opt.example)  # no real client here
    monkeypatch.delenv(opt.env, raising=False)
    before = api.configure(reset=True).options[opt.name]
    monkeypatch.setenv(opt.env, value)
    assert api.configure().options[opt.name] == before  # a merge does not re-read the environment
    after = api.configure(reset=True).options[opt.name]
    assert after != before and after == opt.parse(opt.env, value)


def test_every_option_reaches_the_config() -> None:
    """Each option is a field of `Config`, or folded into one (the key into privacy, hops into proxies)."""
    folded = {"hash_key": "privacy", "trusted_hops": "trusted_proxies"}
    fields = {f.name for f in dataclasses.fields(api.Config)}
    assert {folded.get(opt.name, opt.name) for opt in OPTIONS} <= fields


def test_the_signature_literals_are_the_allowed_values() -> None:
    """`metrics`, `output`, `delivery` and `overflow` are Literal types in the signature; they list what the
    parsers accept. `logging` is imported by `_config` for the type checkers only (the package does not
    import it at runtime), so the test supplies it to resolve `logging.Logger`."""
    import logging
    from typing import get_args, get_type_hints

    from graffer_secevents._delivery import DELIVERY_MODES, OVERFLOW_POLICIES
    from graffer_secevents._metrics import METRIC_BACKENDS
    from graffer_secevents._output import OUTPUT_NAMES

    hints = get_type_hints(configure, localns={"logging": logging})
    assert get_args(hints["metrics"]) == METRIC_BACKENDS
    assert get_args(get_args(hints["output"])[0]) == (*OUTPUT_NAMES, "console")  # console: _file_output.py
    assert logging.Logger in get_args(hints["output"])
    assert get_args(hints["delivery"]) == DELIVERY_MODES
    assert get_args(hints["overflow"]) == OVERFLOW_POLICIES
