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


PUBLIC_API = {
    # constants and type aliases: values, not classes, so they keep no module of their own
    "CATALOG": None,
    "SCHEMA_VERSION": None,
    "OutcomeLike": None,
    "UserLike": None,
    "__version__": None,
    # classes and functions: shown as graffer_secevents.<name>
    **dict.fromkeys(
        [
            "Config",
            "ConfigurationError",
            "EventType",
            "EventValidationError",
            "ForwardedHeaderIgnoredWarning",
            "MissingDependencyError",
            "Outcome",
            "OutcomeRule",
            "Param",
            "RequestContext",
            "SecEventsError",
            "SecEventsWarning",
            "User",
            "actor",
            "configure",
            "current_request",
            "current_user",
            "emit",
            "flush",
            "get_config",
            "impersonating",
            "job",
            "job_origin",
            "log_access_denied",
            "log_account_locked",
            "log_account_status",
            "log_admin_action",
            "log_data_export",
            "log_group_membership",
            "log_impersonation",
            "log_input_validation_failed",
            "log_login",
            "log_logout",
            "log_mfa_challenge",
            "log_mfa_change",
            "log_password_change",
            "log_password_reset",
            "log_privilege_change",
            "log_rate_limited",
            "log_sensitive_access",
            "log_signup",
            "log_token_created",
            "log_token_revoked",
            "log_user_created",
            "log_user_deleted",
            "log_user_updated",
            "record_bad_credential",
            "record_login",
            "set_user",
            "suppress_request_events",
        ],
        "graffer_secevents",
    ),
}


def test_all_is_pinned_exactly() -> None:
    """Adding or removing a public name is a deliberate change: update this table and the CHANGELOG."""
    assert set(api.__all__) == set(PUBLIC_API)


@pytest.mark.parametrize("name", sorted(n for n, module in PUBLIC_API.items() if module is not None))
def test_public_classes_and_functions_show_the_public_module(name: str) -> None:
    obj = getattr(api, name)
    assert obj.__module__ == "graffer_secevents"
    assert f"{obj.__module__}.{obj.__qualname__}" == f"graffer_secevents.{name}"


def test_reprs_and_tracebacks_show_the_public_path() -> None:
    assert repr(api.Config) == "<class 'graffer_secevents.Config'>"
    assert repr(api.ConfigurationError("x")) == "ConfigurationError('x')"
    code = "import graffer_secevents as s\ns.configure(metrics='prometheus')\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert "graffer_secevents.ConfigurationError: metrics: unknown backend" in result.stderr
    assert "graffer_secevents._errors" not in result.stderr


def test_public_objects_still_pickle_by_their_public_path() -> None:
    import pickle

    for value in (api.Outcome.SUCCESS, api.User(id=1, login="ada"), api.ConfigurationError("bad")):
        again = pickle.loads(pickle.dumps(value))
        assert type(again) is type(value) and str(again) == str(value)


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
    env = {**os.environ, "SECEVENTS_METRICS": "bogus", "SECEVENTS_HASH_KEY": "k" * 16}
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
