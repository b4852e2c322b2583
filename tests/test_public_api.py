"""The package's public face: curated names, no framework imported at import time, eager config checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import graffer_secevents as api
from graffer_secevents import ConfigurationError


def test_all_is_sorted_and_exactly_the_public_names() -> None:
    public = {name for name in dir(api) if not name.startswith("_")} | {"__version__"}
    modules = {name for name in public if type(getattr(api, name)).__name__ == "module"}

    def isort_style(name: str) -> tuple[int, str]:  # ruff's RUF022 order: CONSTANTS, Classes, functions
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert sorted(api.__all__, key=isort_style) == api.__all__
    assert set(api.__all__) == public - modules


def test_importing_the_package_imports_no_framework_tracer_or_metrics_client() -> None:
    code = (
        "import sys, graffer_secevents\n"
        "heavy = [m for m in ('ddtrace','datadog','django','flask','fastapi','starlette','opentelemetry.sdk')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_emitting_with_defaults_imports_no_tracer_or_framework() -> None:
    code = (
        "import sys, io, graffer_secevents as s\n"
        "s.configure(output=io.StringIO(), metrics='none')\n"
        "s.log_login(1, 'failure', '203.0.113.1')\n"
        "print(','.join(m for m in ('ddtrace','django','flask','fastapi','starlette') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": "prometheus"}, "allowed: auto, dogstatsd, otel, memory, none"),
        ({"output": "syslog"}, "allowed: stdout, stderr, logging"),
        ({"output": 42}, "has no write"),
        ({"strict": "maybe"}, "expected a boolean"),
        ({"hash_key": ""}, "empty key"),
        ({"trusted_proxies": ["10.0.0.0/33"]}, "10.0.0.0/33"),
        ({"service": 5}, "service: expected a string"),
    ],
)
def test_configure_refuses_bad_settings_loudly(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        api.configure(**kwargs)  # type: ignore[arg-type]


def test_bad_environment_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECEVENTS_TRUSTED_HOPS", "two")
    with pytest.raises(ConfigurationError, match="SECEVENTS_TRUSTED_HOPS"):
        api.configure()


def test_a_bad_environment_never_makes_an_emit_call_raise() -> None:
    """Without configure(), the config is built from the environment at the first event: if that fails, the
    event is still written with defaults and the problem is named once; the application keeps running."""
    code = (
        "import warnings, graffer_secevents as s\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    s.log_login(1, 'failure', '203.0.113.7')\n"
        "    s.log_login(2, 'failure', '203.0.113.8')\n"
        "s.flush()\n"  # the records are queued; written before the print below
        "print([str(w.message) for w in caught])\n"
    )
    env = {**os.environ, "SECEVENTS_METRICS": "bogus", "SECEVENTS_HASH_KEY": "k"}
    env.pop("SECEVENTS_STRICT", None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    lines = result.stdout.strip().splitlines()
    records = [json.loads(line) for line in lines[:2]]
    assert [r["usr"]["id"] for r in records] == ["1", "2"]
    assert lines[2].count("configuration from the environment is invalid") == 1
    assert "bogus" in lines[2]


def test_a_bad_environment_raises_in_strict_mode() -> None:
    code = "import graffer_secevents as s\ns.log_login(1, 'failure')\n"
    env = {**os.environ, "SECEVENTS_METRICS": "bogus", "SECEVENTS_STRICT": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 1
    assert "ConfigurationError" in result.stderr and "bogus" in result.stderr
