"""Django admin actions on any model: every `LogEntry` the admin writes is one `authz_admin` event.

`evt.action` is `add`, `change` or `delete` and `evt.resource` the object's type and id
(`app_label.model:pk`); the entry's `object_repr` and `change_message` (which can quote field values) are
never read. The actor is the entry's user (the request's user when the middleware bound one, so its login is
processed as every `usr` is). Installed by the app when `django.contrib.admin` is in `INSTALLED_APPS`.

Admin actions on the models named in `SECEVENTS["sensitive_models"]` (`["shop.order", "auth.user"]`) are also
`sensitive_create` / `sensitive_update` / `sensitive_delete` with `evt.object` the same `app_label.model:pk`:
the data trail next to the administrative one.

Django ≥ 5.1 writes the entries of a bulk action ("delete selected") with one `bulk_create`, which sends no
`post_save`: `LogEntryManager.log_actions` is wrapped for that case only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final, cast

from graffer_secevents._context import current_user
from graffer_secevents._errors import ConfigurationError
from graffer_secevents._pipeline import emit_event
from graffer_secevents.integrations._common import never_raise

from ._wrap import wrap_method

__all__ = ["install"]

_ACTIONS: Final = {1: "add", 2: "change", 3: "delete"}
_SENSITIVE: Final = {1: "sensitive_create", 2: "sensitive_update", 3: "sensitive_delete"}
_WHERE: Final = "the admin's LogEntry"
_sensitive: set[str] = set()


def install() -> None:
    """Record the admin's log entries. Idempotent; a no-op when the admin is not installed.

    Raises:
        ConfigurationError: `SECEVENTS["sensitive_models"]` is not a list of installed `app_label.model`.
    """
    from django.apps import apps

    _sensitive.clear()
    _sensitive.update(sensitive_models())
    if not apps.is_installed("django.contrib.admin"):
        return
    from django.contrib.admin.models import LogEntry, LogEntryManager
    from django.db.models import signals

    signals.post_save.connect(_on_entry, sender=LogEntry, dispatch_uid="graffer_secevents.admin.log_entry")
    if "log_actions" in LogEntryManager.__dict__:
        wrap_method(LogEntryManager, "log_actions", _bulk)


def _on_entry(sender: Any, instance: Any, created: bool = False, raw: bool = False, **_kwargs: Any) -> None:
    if created and not raw:
        _record([instance])


def _bulk(original: Callable[..., Any]) -> Callable[..., Any]:
    def log_actions(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        # One entry is saved (its post_save recorded it); several are bulk-created, with no signal.
        if isinstance(result, list) and len(result) > 1:
            _record(result)
        return result

    return log_actions


def _record(entries: Iterable[Any]) -> None:
    from django.contrib.contenttypes.models import ContentType

    for entry in entries:
        with never_raise(_WHERE):
            kind = "unknown"
            if entry.content_type_id is not None:
                content_type = ContentType.objects.get_for_id(entry.content_type_id)  # cached by Django
                kind = f"{content_type.app_label}.{content_type.model}"
            params = {
                "action": _ACTIONS.get(entry.action_flag, "other"),
                "resource": f"{kind}:{entry.object_id}" if entry.object_id is not None else kind,
            }
            actor = current_user() or entry.user_id
            emit_event("authz_admin", user=actor, params=params)
            sensitive = _SENSITIVE.get(entry.action_flag)
            if kind in _sensitive and sensitive is not None:
                emit_event(sensitive, user=actor, params={"object": params["resource"]})


def sensitive_models() -> set[str]:
    """`SECEVENTS["sensitive_models"]`, checked: each an installed model as `app_label.model`, lowercased.

    Raises:
        ConfigurationError: not a list of strings, or a name that is not an installed model.
    """
    from django.apps import apps

    from ._settings import _setting

    value = _setting().get("sensitive_models")
    if value is None:
        return set()
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise ConfigurationError(
            "settings.SECEVENTS['sensitive_models']: expected a list of models as 'app_label.model', "
            f"e.g. ['shop.order'], got {type(value).__name__}"
        )
    found: set[str] = set()
    for name in cast("Iterable[object]", value):
        try:
            model = apps.get_model(name) if isinstance(name, str) else None
        except (LookupError, ValueError):
            model = None
        if model is None:
            raise ConfigurationError(
                f"settings.SECEVENTS['sensitive_models']: {name!r} is not an installed model "
                "(write it as 'app_label.model', e.g. 'shop.order')"
            )
        found.add(f"{model._meta.app_label}.{model._meta.model_name}")
    return found
