"""The ``SECEVENTS`` setting through Django's own settings machinery: one dict, typos named, the 0.1 flat
``SECEVENTS_STATUS_EVENTS`` still honoured with a deprecation warning."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from django.apps import apps
from django.test import Client, override_settings

import graffer_secevents as api
from graffer_secevents._errors import reset_warnings
from graffer_secevents.integrations.django._settings import DeprecatedSettingWarning
from graffer_secevents.testing import Capture


def ready() -> None:
    """What Django runs at start-up for the app: applies ``SECEVENTS`` (signals are connected once, by uid)."""
    apps.get_app_config("graffer_secevents").ready()


def call(path: str) -> Any:
    return Client().get(path, REMOTE_ADDR="203.0.113.9")  # a new Client builds the middleware chain anew


def test_the_dict_configures_the_library_and_merges_into_earlier_calls() -> None:
    api.configure(hash_key="from-code-0123456789", trusted_proxies=["10.0.0.0/8"])
    with override_settings(SECEVENTS={"service": "shop", "env": "prod"}):
        ready()
    cfg = api.get_config()
    assert (cfg.service, cfg.env) == ("shop", "prod")
    assert cfg.options["hash_key"] == "from-code-0123456789" and cfg.privacy.keyed
    assert cfg.trusted_proxies is not None and cfg.trusted_proxies.is_trusted("10.1.2.3")


@pytest.mark.parametrize(
    ("setting", "named", "nearest"),
    [
        ({"hash_kye": "k"}, "hash_kye", "hash_key"),
        ({"trusted_proxy": ["10.0.0.0/8"]}, "trusted_proxy", "trusted_proxies"),
        ({"status_event": {401: "authz_fail"}}, "status_event", "status_events"),
    ],
)
def test_a_typo_is_a_configuration_error_naming_the_key_and_the_nearest(
    setting: dict[str, Any], named: str, nearest: str
) -> None:
    with override_settings(SECEVENTS=setting), pytest.raises(api.ConfigurationError) as caught:
        ready()
    assert f"settings.SECEVENTS: unknown option {named!r}; did you mean {nearest!r}?" in str(caught.value)


def test_a_typo_stops_django_start_up() -> None:
    """The real start-up path: ``django.setup()`` in a fresh process fails, naming the key."""
    code = textwrap.dedent(
        """
        import django
        from django.conf import settings
        settings.configure(
            INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes",
                            "graffer_secevents.integrations.django"],
            SECEVENTS={"servcie": "shop"},
        )
        django.setup()
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 1
    assert "ConfigurationError: settings.SECEVENTS: unknown option 'servcie'; did you mean 'service'?" in (
        result.stderr
    )


def test_a_setting_that_is_not_a_dict_is_refused() -> None:
    with (
        override_settings(SECEVENTS=["service", "shop"]),
        pytest.raises(api.ConfigurationError, match="dict"),
    ):
        ready()


def test_status_events_inside_the_dict(security_events: Capture) -> None:
    with override_settings(SECEVENTS={"status_events": {401: "authz_fail"}}):
        call("/status/401/")
    security_events.assert_emitted("authz_fail", http__status_code=401)


def test_the_flat_setting_of_0_1_still_works_with_a_deprecation_warning(security_events: Capture) -> None:
    reset_warnings()
    with (
        override_settings(SECEVENTS_STATUS_EVENTS={401: "authz_fail"}),
        pytest.warns(
            DeprecatedSettingWarning, match=r"SECEVENTS_STATUS_EVENTS is deprecated.*'status_events'"
        ),
    ):
        call("/status/401/")
    security_events.assert_emitted("authz_fail", http__status_code=401)
    assert issubclass(DeprecatedSettingWarning, api.SecEventsWarning)


def test_both_forms_at_once_are_refused() -> None:
    with (
        override_settings(SECEVENTS={"status_events": {401: "authz_fail"}}, SECEVENTS_STATUS_EVENTS={}),
        pytest.raises(api.ConfigurationError, match="both set"),
    ):
        call("/status/401/")
