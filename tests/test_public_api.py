"""The package's public face: curated names, no framework imported at import time, eager config checks."""

from __future__ import annotations

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
