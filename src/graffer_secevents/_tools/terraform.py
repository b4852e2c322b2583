"""The one Terraform renderer: resources as HCL (`.tf`) or Terraform JSON (`.tf.json`).

Producers (`_tools/monitors.py`, `_tools/rules.py`, `_tools/logs_metrics.py`, `_tools/dashboard.py`) turn
their API JSON into `Resource` values; this module only writes them. A resource body maps argument names to
values (strings, numbers, booleans, lists, string maps) or to nested blocks (`Block`, or a list of them for
repeated blocks such as a rule's `query {}` and `case {}`).

Strings are Terraform templates in both syntaxes, so `${` and `%{` are written `$${` and `%%{`
everywhere, in HCL and in JSON alike; HCL strings also escape quotes, backslashes and control characters.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard, cast

from graffer_secevents._errors import ConfigurationError

__all__ = ["Block", "Resource", "resource_label", "snake_blocks", "snake_case", "to_hcl", "to_terraform_json"]


@dataclass(frozen=True, slots=True)
class Block:
    """A nested block (`options { ... }`): its arguments and its own nested blocks."""

    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Resource:
    """One `resource "<kind>" "<label>" { ... }`."""

    kind: str
    label: str
    body: Mapping[str, Any] = field(default_factory=dict[str, Any])


_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def resource_label(name: str, used: set[str], *, fallback: str = "resource") -> str:
    """A Terraform resource label from a display name, unique within `used` (which it updates).

    Example:
        >>> resource_label("[secevents] Credential stuffing", set())
        'secevents_credential_stuffing'
    """
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or fallback
    if slug[0].isdigit():
        slug = f"{fallback}_{slug}"
    label, n = slug, 2
    while label in used:
        label, n = f"{slug}_{n}", n + 1
    used.add(label)
    return label


def to_hcl(resources: Iterable[Resource]) -> str:
    """Render resources as HCL, one blank line between resources.

    Raises:
        ConfigurationError: a label or argument name Terraform cannot read, or a value it cannot hold
            (`None` inside a list, NaN, an object that is not JSON).

    Example:
        >>> print(to_hcl([Resource("null_resource", "x", {"triggers": {"a": "${b}"}})]), end="")
        resource "null_resource" "x" {
          triggers = { "a" = "$${b}" }
        }
    """
    blocks: list[str] = []
    for resource in resources:
        _check_label(resource)
        lines = [f'resource "{resource.kind}" "{resource.label}" {{']
        _body_lines(resource.body, "  ", lines)
        lines.append("}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def to_terraform_json(resources: Iterable[Resource]) -> str:
    """Render resources as Terraform JSON (`{"resource": {kind: {label: body}}}`), indented.

    A single block becomes an object and a repeated block a list of objects, as Terraform's JSON syntax
    reads them. Arguments that are `None` are left out.

    Raises:
        ConfigurationError: as for `to_hcl`, or two resources with the same kind and label.

    Example:
        >>> json.loads(to_terraform_json([Resource("null_resource", "x", {"a": "%{ if }"})]))
        {'resource': {'null_resource': {'x': {'a': '%%{ if }'}}}}
    """
    out: dict[str, dict[str, Any]] = {}
    for resource in resources:
        _check_label(resource)
        by_label = out.setdefault(resource.kind, {})
        if resource.label in by_label:
            raise ConfigurationError(f"two {resource.kind} resources labelled {resource.label!r}")
        by_label[resource.label] = _json_body(resource.body)
    return json.dumps({"resource": out}, indent=2, ensure_ascii=False) + "\n"


def _check_label(resource: Resource) -> None:
    for what, text in (("resource type", resource.kind), ("label", resource.label)):
        if not _LABEL.fullmatch(text):
            raise ConfigurationError(f"not a Terraform {what}: {text!r}")


def _check_name(name: str) -> None:
    if not _IDENTIFIER.fullmatch(name):
        raise ConfigurationError(f"not a Terraform argument name: {name!r}")


def _body_lines(body: Mapping[str, Any], indent: str, lines: list[str]) -> None:
    for name, value in body.items():
        _check_name(name)
        if value is None:
            continue
        if isinstance(value, Block):
            _block_lines(name, value, indent, lines)
        elif _is_block_list(value):
            for block in value:
                _block_lines(name, block, indent, lines)
        else:
            lines.append(f"{indent}{name} = {_hcl_value(value)}")


def _block_lines(name: str, block: Block, indent: str, lines: list[str]) -> None:
    lines.append(f"{indent}{name} {{")
    _body_lines(block.body, indent + "  ", lines)
    lines.append(f"{indent}}}")


def _is_block_list(value: object) -> TypeGuard[Sequence[Block]]:
    items = _list_items(value)
    return items is not None and bool(items) and all(isinstance(v, Block) for v in items)


def _list_items(value: object) -> Sequence[object] | None:
    """The items of `value` when it is a list or a tuple (a Terraform list), else `None`."""
    return cast("Sequence[object]", value) if isinstance(value, list | tuple) else None


def _map_items(value: object) -> Iterable[tuple[object, object]] | None:
    """The `(key, value)` pairs of `value` when it is a mapping (a Terraform map), else `None`."""
    return cast("Mapping[object, object]", value).items() if isinstance(value, Mapping) else None


_HCL_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _template_safe(text: str) -> str:
    return text.replace("${", "$${").replace("%{", "%%{")


def _hcl_string(text: str) -> str:
    escaped = "".join(
        _HCL_ESCAPES.get(ch) or (f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch)
        for ch in text
    )
    return '"' + _template_safe(escaped) + '"'


def _number(value: float) -> str:
    if not math.isfinite(value):
        raise ConfigurationError(f"cannot write {value!r} to Terraform")
    return str(int(value)) if value.is_integer() else repr(value)


def _hcl_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        return _hcl_string(value)
    if (items := _list_items(value)) is not None:
        return "[" + ", ".join(_hcl_value(_not_none(item)) for item in items) + "]"
    if (pairs := _map_items(value)) is not None:
        entries = ", ".join(f"{_hcl_string(str(k))} = {_hcl_value(_not_none(v))}" for k, v in pairs)
        return "{ " + entries + " }" if entries else "{}"
    raise ConfigurationError(f"cannot write a {type(value).__name__} to Terraform")


def _not_none(value: object) -> object:
    if value is None:
        raise ConfigurationError("cannot write null inside a Terraform list or map")
    return value


def _json_body(body: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in body.items():
        _check_name(name)
        if value is None:
            continue
        if isinstance(value, Block):
            out[name] = _json_body(value.body)
        elif _is_block_list(value):
            out[name] = [_json_body(block.body) for block in value]
        else:
            out[name] = _json_value(value)
    return out


def _json_value(value: object) -> Any:
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        _number(value)  # rejects NaN and infinities
        return value
    if isinstance(value, str):
        return _template_safe(value)
    if (items := _list_items(value)) is not None:
        return [_json_value(_not_none(item)) for item in items]
    if (pairs := _map_items(value)) is not None:
        return {_template_safe(str(k)): _json_value(_not_none(v)) for k, v in pairs}
    raise ConfigurationError(f"cannot write a {type(value).__name__} to Terraform")


def snake_case(name: str) -> str:
    """An API field name (`evaluationWindow`) as the provider's argument (`evaluation_window`).

    Example:
        >>> snake_case("hasOptionalGroupByFields")
        'has_optional_group_by_fields'
    """
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def snake_blocks(api: Mapping[str, Any], *, rename: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An API JSON object as a block body: keys in snake_case, nested objects as nested blocks.

    Lists of objects become repeated blocks; lists of scalars stay lists. `rename` maps API keys whose
    provider name is not their snake_case (`isEnabled` -> `enabled`).

    Example:
        >>> snake_blocks({"newValueOptions": {"forgetAfter": 7}})
        {'new_value_options': Block(body={'forget_after': 7})}
    """
    renames = rename or {}
    body: dict[str, Any] = {}
    for key, value in api.items():
        name = renames.get(key) or snake_case(key)
        if isinstance(value, Mapping):
            body[name] = Block(snake_blocks(cast("Mapping[str, Any]", value), rename=rename))
        elif _is_object_list(value):
            body[name] = [Block(snake_blocks(v, rename=rename)) for v in value]
        else:
            body[name] = value
    return body


def _is_object_list(value: object) -> TypeGuard[Sequence[Mapping[str, Any]]]:
    """Whether `value` is a non-empty sequence (not a string) of API objects: repeated blocks."""
    if not isinstance(value, Sequence) or isinstance(value, str):
        return False
    items = cast("Sequence[object]", value)
    return bool(items) and all(isinstance(v, Mapping) for v in items)
