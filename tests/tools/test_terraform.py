"""The one Terraform renderer: HCL that python-hcl2 parses back to the same values, Terraform JSON alike."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from graffer_secevents._errors import ConfigurationError
from graffer_secevents._tools.terraform import (
    Block,
    Resource,
    resource_label,
    snake_blocks,
    snake_case,
    to_hcl,
    to_terraform_json,
)

_HCL_ESCAPE = re.compile(r'\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[nrt"\\])|\$\$\{|%%\{')
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def _unescape(match: re.Match[str]) -> str:
    text = match.group(0)
    if text in {"$${", "%%{"}:
        return text[1:]
    code = match.group(1)
    return _SIMPLE[code] if code in _SIMPLE else chr(int(code[1:], 16))


def _plain(value: Any) -> Any:
    """python-hcl2's output as plain values: quoted strings unescaped, block markers dropped."""
    if isinstance(value, str) and len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return _HCL_ESCAPE.sub(_unescape, value[1:-1])
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items() if k != "__is_block__"}
    return value


def parse_hcl(text: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Resources as ``{kind: {label: body}}``; every nested block is a list of bodies, as hcl2 gives them."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for resource in hcl2.loads(text)["resource"]:
        for kind, by_label in _plain(resource).items():
            for label, body in by_label.items():
                assert label not in out.setdefault(kind, {}), f"duplicate label {label}"
                out[kind][label] = body
    return out


def untemplate(value: Any) -> Any:
    """What Terraform makes of a Terraform JSON value: ``$${`` and ``%%{`` back to literal text."""
    if isinstance(value, str):
        return value.replace("$${", "${").replace("%%{", "%{")
    if isinstance(value, list):
        return [untemplate(v) for v in value]
    if isinstance(value, dict):
        return {untemplate(k): untemplate(v) for k, v in value.items()}
    return value


TRICKY = 'a "quoted" \\ path ${var.x} %{if y} {{value}} $$${z}\n\tline\x01\x7f é ✓'


def _sample() -> list[Resource]:
    return [
        Resource(
            "datadog_thing",
            "one",
            {
                "text": TRICKY,
                "count": 3,
                "ratio": 0.25,
                "whole_float": 2.0,
                "flag": False,
                "absent": None,
                "items": ["x", TRICKY, 1],
                "labels": {"k ${x}": TRICKY},
                "single": Block({"inner": TRICKY, "nested": Block({"deep": 1})}),
                "repeated": [Block({"n": 1}), Block({"n": 2})],
            },
        ),
        Resource("datadog_thing", "two", {"text": "plain"}),
    ]


def test_hcl_parses_back_to_the_same_values() -> None:
    parsed = parse_hcl(to_hcl(_sample()))
    body = parsed["datadog_thing"]["one"]
    assert body["text"] == TRICKY
    assert body["count"] == 3
    assert body["ratio"] == 0.25
    assert body["whole_float"] == 2
    assert body["flag"] is False
    assert "absent" not in body
    assert body["items"] == ["x", TRICKY, 1]
    assert body["labels"] == {"k ${x}": TRICKY}
    assert body["single"] == [{"inner": TRICKY, "nested": [{"deep": 1}]}]
    assert body["repeated"] == [{"n": 1}, {"n": 2}]
    assert parsed["datadog_thing"]["two"] == {"text": "plain"}


def test_hcl_never_leaves_a_template_sequence_unescaped() -> None:
    text = to_hcl(_sample())
    assert re.search(r"(?<!\$)\$\{", text.replace("$${", "")) is None
    assert re.search(r"(?<!%)%\{", text.replace("%%{", "")) is None
    assert "\n\tline" not in text  # newlines and tabs are escaped inside strings


def test_terraform_json_escapes_templates_and_keeps_blocks_as_objects() -> None:
    document = json.loads(to_terraform_json(_sample()))
    body = document["resource"]["datadog_thing"]["one"]
    assert re.search(r"(?<!\$)\$\{", body["text"].replace("$${", "")) is None
    assert "$${var.x}" in body["text"]
    assert "%%{if y}" in body["text"]
    assert untemplate(body["text"]) == TRICKY
    assert untemplate(body["labels"]) == {"k ${x}": TRICKY}
    assert body["single"] == {"inner": body["text"], "nested": {"deep": 1}}
    assert body["repeated"] == [{"n": 1}, {"n": 2}]
    assert "absent" not in body
    assert document["resource"]["datadog_thing"]["two"] == {"text": "plain"}


@pytest.mark.parametrize(
    ("resource", "match"),
    [
        (Resource("datadog thing", "x"), "resource type"),
        (Resource("datadog_thing", "1x"), "label"),
        (Resource("datadog_thing", "x", {"bad name": 1}), "argument name"),
        (Resource("datadog_thing", "x", {"n": float("nan")}), "nan"),
        (Resource("datadog_thing", "x", {"n": float("inf")}), "inf"),
        (Resource("datadog_thing", "x", {"items": ["a", None]}), "null"),
        (Resource("datadog_thing", "x", {"obj": object()}), "object"),
    ],
)
def test_values_terraform_cannot_hold_are_configuration_errors(resource: Resource, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        to_hcl([resource])
    with pytest.raises(ConfigurationError, match=match):
        to_terraform_json([resource])


def test_terraform_json_rejects_two_resources_with_one_label() -> None:
    with pytest.raises(ConfigurationError, match="two datadog_thing"):
        to_terraform_json([Resource("datadog_thing", "x"), Resource("datadog_thing", "x")])


def test_labels_are_slugs_and_unique() -> None:
    used: set[str] = set()
    assert resource_label("[secevents] Brute force!", used) == "secevents_brute_force"
    assert resource_label("[secevents] Brute force?", used) == "secevents_brute_force_2"
    assert resource_label("42 things", used) == "resource_42_things"
    assert resource_label("", used, fallback="rule") == "rule"


def test_snake_blocks_turns_api_json_into_provider_blocks() -> None:
    assert snake_case("maxSignalDuration") == "max_signal_duration"
    body = snake_blocks(
        {
            "isEnabled": True,
            "groupByFields": ["@usr.id"],
            "options": {"newValueOptions": {"forgetAfter": 7}},
            "cases": [{"status": "high"}, {"status": "low"}],
        },
        rename={"isEnabled": "enabled"},
    )
    assert body == {
        "enabled": True,
        "group_by_fields": ["@usr.id"],
        "options": Block({"new_value_options": Block({"forget_after": 7})}),
        "cases": [Block({"status": "high"}), Block({"status": "low"})],
    }


# --- the real Terraform, where it is installed ----------------------------------------------------------------

TERRAFORM = shutil.which("terraform")
needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason="the terraform binary is not installed")


def _terraform(directory: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    assert TERRAFORM is not None
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}
    return subprocess.run(
        [TERRAFORM, *args, "-no-color"], cwd=directory, env=env, input=stdin, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


@needs_terraform
@pytest.mark.parametrize("json_syntax", [False, True], ids=["hcl", "terraform-json"])
def test_terraform_itself_reads_back_the_exact_strings(tmp_path: Path, json_syntax: bool) -> None:
    """Terraform's own parser and template engine (a built-in ``terraform_data`` resource, applied to local
    state, no provider to download) gives back the original text: escapes and ``${``/``%{`` are right."""
    value = {"text": TRICKY, "items": [TRICKY, "plain"], "key ${x}": "%{ if }"}
    resource = Resource("terraform_data", "probe", {"input": value})
    if json_syntax:
        document = json.loads(to_terraform_json([resource]))
        document["output"] = {"probe": {"value": "${terraform_data.probe.input}"}}
        (tmp_path / "main.tf.json").write_text(json.dumps(document), encoding="utf-8")
    else:
        output = 'output "probe" {\n  value = terraform_data.probe.input\n}\n'
        (tmp_path / "main.tf").write_text(to_hcl([resource]) + output, encoding="utf-8")
    for step in (("init",), ("apply", "-auto-approve")):
        result = _terraform(tmp_path, *step)
        assert result.returncode == 0, result.stderr
    result = _terraform(tmp_path, "output", "-json", "probe")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == value


@needs_terraform
def test_terraform_parses_everything_secevents_rules_writes(tmp_path: Path) -> None:
    """``terraform fmt`` runs Terraform's HCL parser on the generated rules, metrics, dashboard, monitors."""
    from graffer_secevents._tools import dashboard, logs_metrics, monitors, rules

    text = "\n".join(
        [
            rules.to_terraform(rules.build_rules(service="auth-api", env="prod")),
            logs_metrics.to_terraform(logs_metrics.build_logs_metrics()),
            dashboard.to_terraform(dashboard.build_dashboard()),
            monitors.to_terraform(monitors.build_monitors("auth-api")),
        ]
    )
    result = _terraform(tmp_path, "fmt", "-", stdin=text)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('resource "') == text.count('resource "')
