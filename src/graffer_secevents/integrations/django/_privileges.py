"""Privilege and account changes of `AUTH_USER_MODEL`, by any path: the admin, a view, a management command,
the shell. Nothing to call: the app (`apps.py`) connects Django's model signals.

========================================  ===========================================================
what changed                              event (`target.usr` = the account changed)
========================================  ===========================================================
`is_superuser` / `is_staff`               `authz_change`: `evt.from_role`/`evt.to_role` (`superuser`,
                                          `staff`, `user`), `evt.granted`/`evt.revoked` (`superuser`,
                                          `staff`)
`is_active`                               `user_enabled` / `user_disabled`
the username or e-mail field              `user_updated` with `evt.attributes` (names, never values),
                                          unless the actor edits their own account
`groups` (either side: `user.groups.add`,  `group_member_added` / `group_member_removed`, `evt.group`
`group.user_set.add`, `set`, `clear`)     (its name), one per account and group
`user_permissions` (either side)          `authz_change` with `evt.granted`/`evt.revoked`
                                          (`app_label.codename`), one per account
a group's `permissions`                   `privilege_permissions_changed`, `evt.object: group:<name>`
deletion                                  `user_deleted`
========================================  ===========================================================

The actor is whoever the library already knows acts: the request's user (through the middleware's request
context), or outside a request what the application bound (`secevents.set_user`, or the process actor).

`QuerySet.update()` of the user model sends no signal: it is wrapped (an identity check for every other
model) to read the watched fields of the matched accounts before and after, the first `MAX_UPDATE_ROWS`.

The values a user row was loaded with are kept on the instance (`post_init`, the watched fields only, never
a deferred one). A save whose watched fields still hold those values reads nothing (a login's
`save(update_fields=["last_login"])`, a profile edit); one that changed one of them reads the stored row once,
for the watched fields (one `SELECT` of a few columns by primary key, in a savepoint inside a transaction),
so the event says what the database held, not what the instance remembered. (A save that writes back
unchanged values over a concurrent change made elsewhere is therefore not seen.) The password field is never
read. Events are written when the change commits (`transaction.on_commit`), so a rolled-back change writes
nothing; a new account (`created`) is the signup adapter's `user_created`, not a change, except the
privileges it is born with (`createsuperuser`): an `authz_change` from `user`.
"""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Final, cast

from graffer_secevents._context import current_user
from graffer_secevents._pipeline import emit_event
from graffer_secevents._types import User
from graffer_secevents.integrations._common import never_raise

from ._wrap import wrap_method

__all__ = ["install", "privilege_level"]

_WHERE: Final = "the account-change signals"
_BEFORE: Final = "_secevents_before"
_SNAPSHOT: Final = "_secevents_loaded"
_PRIVILEGES: Final = (("is_superuser", "superuser"), ("is_staff", "staff"))
_UID: Final = "graffer_secevents.privileges."
_user_model: list[Any] = [None]


def install() -> None:
    """Connect the model signals for the user model (and `auth.Group`'s permissions). Idempotent."""
    from django.apps import apps
    from django.contrib.auth import get_user_model
    from django.core.exceptions import ImproperlyConfigured
    from django.db.models import signals

    try:
        model = get_user_model()
    except ImproperlyConfigured:  # no user model installed: there are no accounts to watch
        return
    from django.db.models import QuerySet

    _user_model[0] = model
    wrap_method(QuerySet, "update", _update)  # a bulk update sends no signal
    _connect(model)
    # A data migration's `apps.get_model("auth", "User")` is another class (a historical model, rendered
    # from the migration state): it is watched too, from the moment Django builds it.
    signals.class_prepared.connect(_prepared, dispatch_uid=_UID + "class_prepared")
    if apps.is_installed("django.contrib.auth"):
        from django.contrib.auth.models import Group

        through = _through(Group, "permissions")
        if through is not None:
            signals.m2m_changed.connect(
                _group_permissions_changed, sender=through, dispatch_uid=_UID + "group_permissions"
            )


_historical: weakref.WeakSet[Any] = weakref.WeakSet()  # the user model's historical classes (migrations)


def _connect(model: Any) -> None:
    """Connect the row and many-to-many receivers for one user model class."""
    from django.db.models import signals

    signals.post_init.connect(_loaded, sender=model, dispatch_uid=_UID + "post_init")
    signals.pre_save.connect(_before_save, sender=model, dispatch_uid=_UID + "pre_save")
    signals.post_save.connect(_after_save, sender=model, dispatch_uid=_UID + "post_save")
    signals.post_delete.connect(_after_delete, sender=model, dispatch_uid=_UID + "post_delete")
    for name, receiver in (("groups", _groups_changed), ("user_permissions", _permissions_changed)):
        through = _through(model, name)
        if through is not None:
            signals.m2m_changed.connect(receiver, sender=through, dispatch_uid=_UID + name)


def _prepared(sender: Any, **_kwargs: Any) -> None:
    """class_prepared: a historical class of the user model (a migration's) is watched like the model."""
    real = _user_model[0]
    if real is None or sender is real or sender in _historical:
        return
    with never_raise(_WHERE):
        if sender._meta.label_lower == real._meta.label_lower:
            _historical.add(sender)
            _connect(sender)


def privilege_level(user: Any) -> str:
    """`superuser`, `staff` or `user`: the highest of an account's Django privileges."""
    if getattr(user, "is_superuser", False) is True:
        return "superuser"
    return "staff" if getattr(user, "is_staff", False) is True else "user"


# --- the user row ------------------------------------------------------------------------------------------


def _watched(model: Any) -> tuple[str, ...]:
    """The user model's fields whose change is an event: privileges, activity, login and e-mail."""
    cached = model.__dict__.get("_secevents_watched")
    if cached is not None:
        return cast("tuple[str, ...]", cached)
    from django.core.exceptions import FieldDoesNotExist

    real = _user_model[0] if _user_model[0] is not None else model  # a historical class has no methods
    names = ["is_superuser", "is_staff", "is_active"]
    names += [getattr(real, "USERNAME_FIELD", "username"), real.get_email_field_name()]
    found: list[str] = []
    for name in dict.fromkeys(names):
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        if field.concrete and not field.many_to_many and name != "password":
            found.append(name)
    watched = tuple(found)
    model._secevents_watched = watched
    return watched


def _loaded(sender: Any, instance: Any, **_kwargs: Any) -> None:
    """post_init: remember the watched values the row was loaded with (deferred fields are not read)."""
    loaded = instance.__dict__
    if loaded.get(sender._meta.pk.attname) is not None:  # from the database (a new instance has no pk)
        loaded[_SNAPSHOT] = {name: loaded[name] for name in _watched(sender) if name in loaded}


def _before_save(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    if raw or instance._state.adding or instance.pk is None:
        return  # fixtures (`loaddata`) and new rows: nothing to compare with
    fields = _watched(sender)
    update_fields = kwargs.get("update_fields")
    if update_fields is not None:
        fields = tuple(f for f in fields if f in update_fields)
    if not fields:
        return
    current = instance.__dict__
    snapshot = current.get(_SNAPSHOT)
    if snapshot is not None and all(
        f in snapshot and f in current and snapshot[f] == current[f] for f in fields
    ):
        return  # nothing watched changed in memory since the row was loaded (or last saved): no read
    with never_raise(_WHERE):
        using = kwargs.get("using") or instance._state.db
        query = sender._base_manager.using(using).filter(pk=instance.pk).values(*fields)
        current[_BEFORE] = _first(query, using)


def _after_save(sender: Any, instance: Any, created: bool = False, raw: bool = False, **kwargs: Any) -> None:
    current = instance.__dict__
    before = current.pop(_BEFORE, None)
    after = {name: current[name] for name in _watched(sender) if name in current}
    current[_SNAPSHOT] = after  # what the row holds now
    if created and not raw:
        _born_privileged(instance, after, kwargs.get("using"))
        return
    if created or raw or not isinstance(before, Mapping):
        return
    with never_raise(_WHERE):
        emits = _changes({**after, **before}, after, profile=not _acting_on_self(instance))
        if emits:
            target = _target(instance)
            _on_commit(kwargs.get("using"), lambda: _emit_all(emits, target))


def _born_privileged(instance: Any, after: Mapping[str, Any], using: str | None) -> None:
    """A new account created with `is_superuser` / `is_staff` (`createsuperuser`, `create_superuser()`, a
    view or script): the privilege it is born with is a grant, from `user`. A plain new account is none."""
    with never_raise(_WHERE):
        born = {field: False for field, _role in _PRIVILEGES if field in after}
        emits = _changes(born, {field: after[field] for field in born})
        if emits:
            target = _target(instance)
            _on_commit(using, lambda: _emit_all(emits, target))


def _acting_on_self(instance: Any) -> bool:
    """Whether the bound actor (the request's user, `set_user`) is the account being saved."""
    actor = current_user()
    actor_pk = getattr(actor, "pk", None) if actor is not None else None
    return actor_pk is not None and actor_pk == instance.pk


def _changes(
    before: Mapping[str, Any], after: Mapping[str, Any], *, profile: bool = True
) -> list[tuple[str, dict[str, Any]]]:
    """The events for one account whose watched fields went from `before` to `after` (same keys).

    `profile=False` (a user editing their own account) leaves the login and e-mail out: `user_updated` is
    an administrative event, and a privilege or activity change is written whoever makes it.
    """
    changed = [name for name, old in before.items() if old != after.get(name)]
    if not changed:
        return []
    emits: list[tuple[str, dict[str, Any]]] = []
    granted = [role for field, role in _PRIVILEGES if field in changed and after.get(field) is True]
    revoked = [role for field, role in _PRIVILEGES if field in changed and after.get(field) is not True]
    if granted or revoked:
        params = {
            "from_role": privilege_level(_Flags(before)),
            "to_role": privilege_level(_Flags(after)),
            "granted": granted or None,
            "revoked": revoked or None,
        }
        emits.append(("authz_change", params))
    if "is_active" in changed:
        emits.append(("user_enabled" if after.get("is_active") else "user_disabled", {}))
    others = [name for name in changed if name not in ("is_superuser", "is_staff", "is_active")]
    if others and profile:
        emits.append(("user_updated", {"attributes": others}))
    return emits


# --- QuerySet.update: no signal -------------------------------------------------------------------------

MAX_UPDATE_ROWS: Final = 1000
"""A `QuerySet.update()` of the user model changing more accounts than this records the first ones only."""


def _update(original: Callable[..., Any]) -> Callable[..., Any]:
    def update(self: Any, **kwargs: Any) -> Any:
        model = self.model
        if (model is not _user_model[0] and model not in _historical) or not any(
            name in kwargs for name in _watched(model)
        ):
            return original(self, **kwargs)  # every other update: one identity check
        fields = _watched(model)
        before: dict[Any, dict[str, Any]] = {}
        with never_raise(_WHERE):
            rows = _list(self.values("pk", *fields)[:MAX_UPDATE_ROWS], self.db)
            before = {row.pop("pk"): row for row in rows}
        result = original(self, **kwargs)
        if before:
            with never_raise(_WHERE):
                _record_update(model, self.db, before)
        return result

    return update


def _record_update(model: Any, using: str, before: Mapping[Any, Mapping[str, Any]]) -> None:
    fields = _watched(model)
    query = model._base_manager.using(using).filter(pk__in=list(before)).values("pk", *fields)
    changes = {
        row["pk"]: _changes(before[row["pk"]], row) for row in _list(query, using) if row["pk"] in before
    }
    changed = {pk: emits for pk, emits in changes.items() if emits}
    if not changed:
        return
    accounts = _list(model._base_manager.using(using).filter(pk__in=list(changed)), using)
    targets = [(_target(user), changed[user.pk]) for user in accounts]

    def write() -> None:
        for target, emits in targets:
            _emit_all(emits, target)

    _on_commit(using, write)


def _after_delete(sender: Any, instance: Any, **kwargs: Any) -> None:
    with never_raise(_WHERE):
        target = _target(instance)  # now: Django clears the pk after the signal
        _on_commit(kwargs.get("using"), lambda: _emit_all([("user_deleted", {})], target))


class _Flags:
    """An object with the privilege flags of a dict, for `privilege_level`."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.is_superuser = values.get("is_superuser")
        self.is_staff = values.get("is_staff")


# --- many-to-many: groups, permissions ---------------------------------------------------------------------


def _groups_changed(sender: Any, instance: Any, action: str, reverse: bool, **kwargs: Any) -> None:
    def emit(users: Iterable[Any], group_pks: set[Any], added: bool) -> None:
        from django.contrib.auth.models import Group

        names = dict(Group._default_manager.filter(pk__in=group_pks).values_list("pk", "name"))
        evt_type = "group_member_added" if added else "group_member_removed"
        emits = [(evt_type, {"group": str(names.get(pk, pk))}) for pk in sorted(group_pks, key=str)]
        for user in users:
            _emit_all(emits, user)

    _m2m(sender, instance, action, reverse, kwargs, "groups", emit)


def _permissions_changed(sender: Any, instance: Any, action: str, reverse: bool, **kwargs: Any) -> None:
    def emit(users: Iterable[Any], permission_pks: set[Any], added: bool) -> None:
        names = _permission_names(permission_pks)
        params = {"granted": names} if added else {"revoked": names}
        for user in users:
            _emit_all([("authz_change", params)], user)

    _m2m(sender, instance, action, reverse, kwargs, "user_permissions", emit)


def _group_permissions_changed(sender: Any, instance: Any, action: str, reverse: bool, **kwargs: Any) -> None:
    if action not in _ACTIONS:
        return
    with never_raise(_WHERE):
        from django.contrib.auth.models import Group

        change = _change_of(sender, instance, action, reverse, kwargs)
        if change is None:
            return
        group_pks, permission_pks, added = change
        names = _permission_names(permission_pks)
        groups = dict(Group._default_manager.filter(pk__in=group_pks).values_list("pk", "name"))

        def emit() -> None:
            key = "granted" if added else "revoked"
            for pk in sorted(group_pks, key=str):
                params = {"object": f"group:{groups.get(pk, pk)}", key: names}
                emit_event("privilege_permissions_changed", params=params)

        _on_commit(kwargs.get("using"), emit)


_ACTIONS: Final = frozenset({"pre_add", "post_add", "pre_remove", "post_remove", "pre_clear", "post_clear"})
_PENDING: Final = "_secevents_m2m_pending"


def _m2m(
    sender: Any,
    instance: Any,
    action: str,
    reverse: bool,
    kwargs: Mapping[str, Any],
    field: str,
    emit: Callable[[Iterable[Any], set[Any], bool], None],
) -> None:
    """One user-model many-to-many change: `emit(target users, related pks, added)` when it commits."""
    if action not in _ACTIONS:
        return
    with never_raise(_WHERE):
        change = _change_of(sender, instance, action, reverse, kwargs)
        if change is None:
            return
        user_pks, related_pks, added = change
        if reverse:
            model = kwargs.get("model")
            using = kwargs.get("using")
            found = _list(model._default_manager.using(using).filter(pk__in=user_pks), using) if model else []
            users = [_target(user) for user in found]
        else:
            users = [_target(instance)]
        _on_commit(kwargs.get("using"), lambda: emit(users, related_pks, added))


def _change_of(
    through: Any, instance: Any, action: str, reverse: bool, kwargs: Mapping[str, Any]
) -> tuple[set[Any], set[Any], bool] | None:
    """`(source pks, target pks, added)` of a committed add/remove/clear, as pairs of the through table's
    two sides (the field's own side first), or `None` before it happens (`pre_*` actions remember the rows a
    remove or clear really deletes: Django's `remove()` reports every pk it was given).
    """
    source_col, target_col = _columns(through)
    own_col, other_col = (target_col, source_col) if reverse else (source_col, target_col)
    pk_set = kwargs.get("pk_set")
    if action in ("pre_remove", "pre_clear"):
        rows = through._default_manager.filter(**{own_col: instance.pk})
        if pk_set is not None:
            rows = rows.filter(**{f"{other_col}__in": pk_set})
        using = kwargs.get("using")
        instance.__dict__[_PENDING] = set(_list(rows.using(using).values_list(other_col, flat=True), using))
        return None
    if action == "pre_add":
        return None
    others = set(pk_set or ()) if action == "post_add" else instance.__dict__.pop(_PENDING, set())
    if not others:
        return None
    if reverse:  # `group.user_set.add(...)`: the instance is the related object, pk_set the users
        return others, {instance.pk}, action == "post_add"
    return {instance.pk}, others, action == "post_add"


def _columns(through: Any) -> tuple[str, str]:
    """The through table's (field's model, related model) foreign-key names, e.g. `("user", "group")`."""
    cached = through.__dict__.get("_secevents_columns")
    if cached is None:
        fks = [f for f in through._meta.get_fields() if getattr(f, "many_to_one", False) and f.concrete]
        # auto-created through tables have exactly two foreign keys: the field's model's first
        cached = (fks[0].name, fks[1].name)
        through._secevents_columns = cached
    return cast("tuple[str, str]", cached)


def _permission_names(pks: Iterable[Any]) -> list[str]:
    from django.contrib.auth.models import Permission

    rows = Permission._default_manager.filter(pk__in=list(pks)).values_list(
        "content_type__app_label", "codename"
    )
    return sorted(f"{app}.{codename}" for app, codename in rows)


# --- shared ------------------------------------------------------------------------------------------------


def _through(model: Any, name: str) -> Any:
    from django.core.exceptions import FieldDoesNotExist

    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return None
    return getattr(getattr(field, "remote_field", None), "through", None) if field.many_to_many else None


def _target(user: Any) -> User:
    """The account acted upon, read now (a deleted row loses its pk after the signal): id, login, e-mail."""
    get_username = getattr(user, "get_username", None)
    if callable(get_username):
        login = get_username()
    else:  # a historical class (a data migration's) has the fields, not the methods
        real = _user_model[0]
        login = getattr(user, getattr(real, "USERNAME_FIELD", "username"), None)
    real_model = _user_model[0] if _user_model[0] is not None else user
    email_field = (
        real_model.get_email_field_name() if hasattr(real_model, "get_email_field_name") else "email"
    )
    email = getattr(user, email_field, None)
    return User(
        id=user.pk,
        login=login if isinstance(login, str) and login else None,
        email=email if isinstance(email, str) and email else None,
    )


def _emit_all(emits: Iterable[tuple[str, Mapping[str, Any]]], target: object) -> None:
    for evt_type, params in emits:
        with never_raise(_WHERE):
            emit_event(evt_type, target_user=target, params=params or None)


def _on_commit(using: str | None, write: Callable[[], None]) -> None:
    """Run `write` when the change commits (now, outside a transaction), in the context of the change: the
    request, its user and any bound actor."""
    from django.db import transaction

    context = contextvars.copy_context()
    transaction.on_commit(lambda: context.run(_guarded, write), using=using)


def _guarded(write: Callable[[], None]) -> None:
    with never_raise(_WHERE):
        write()


def _list(query: Any, using: str | None) -> list[Any]:
    """`list(query)`, in a savepoint inside a transaction (a failing read cannot break the application's)."""
    from django.db import connections, transaction

    alias = using or "default"
    if connections[alias].in_atomic_block:
        with cast("AbstractContextManager[object]", transaction.atomic(using=alias)):
            return list(query)
    return list(query)


def _first(query: Any, using: str | None) -> Any:
    from django.db import connections, transaction

    alias = using or "default"
    if connections[alias].in_atomic_block:
        # A savepoint, so a failing read cannot break the application's transaction.
        with cast("AbstractContextManager[object]", transaction.atomic(using=alias)):
            return query.first()
    return query.first()
