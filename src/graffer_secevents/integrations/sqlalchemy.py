"""SQLAlchemy: privilege changes of an account model are events, whatever made them (an admin UI, a view).

Django's user model is watched by the Django app (docs/actors.md). A Flask or FastAPI service on SQLAlchemy
names the columns that carry power once, at start-up::

    from graffer_secevents.integrations.sqlalchemy import track_privileges

    track_privileges(User, fields={"is_superuser": "superuser", "is_admin": "admin"}, role="role")

and every committed change of them is one `authz_change` per account and flush: `evt.granted` /
`evt.revoked` (the privilege names given in `fields`, and the role column's new and old values),
`evt.from_role` / `evt.to_role` (the highest privilege held, in `fields` order, else the role column's value,
else `user`), `target.usr.id` the account's primary key, and the actor whoever the library knows acts where
the session flushed: the request's user (the framework middlewares), `secevents.set_user()`, or
`secevents.actor(...)` in a script. A new account created with a privilege is a change from the role column's
default (else `user`); one created with the default role and no privilege writes nothing.

* Written when the transaction commits (the session's `after_commit`), in the context of the flush: a
  rolled-back transaction, or a rolled-back savepoint, writes nothing of what it flushed.
* The old value of a watched column is what the session loaded; when a commit had expired it, one `SELECT`
  of the watched columns by primary key reads it inside the flush (never when the application sets the
  attribute: an `AsyncSession` may not do IO there). A value set to what it was is no change.
* Only the named columns are read; a password or token column is never read.
* Not seen: SQL that bypasses the ORM's unit of work (`session.execute(update(User)...)`,
  `bulk_update_mappings`, Core statements, raw SQL), and relationships (a `roles` collection).
"""

from __future__ import annotations

import contextvars
import enum
from collections.abc import Mapping
from typing import Any, Final, cast

from graffer_secevents._errors import MissingDependencyError

try:
    import sqlalchemy
    from sqlalchemy import event
    from sqlalchemy.exc import NoInspectionAvailable
    from sqlalchemy.orm import Session
except ImportError:
    raise MissingDependencyError("sqlalchemy", "sqlalchemy") from None

from graffer_secevents._pipeline import emit_event
from graffer_secevents._types import User
from graffer_secevents.integrations._common import never_raise

__all__ = ["track_privileges"]

_WHERE: Final = "SQLAlchemy's privilege tracking"
_PENDING: Final = "graffer_secevents_privileges"  # session.info key: changes flushed, not yet committed
_OLD: Final = "graffer_secevents_old_values"  # session.info key: old values read by this flush


class _Tracked:
    __slots__ = ("base_role", "fields", "role", "watched")

    def __init__(self, fields: dict[str, str], role: str | None, base_role: str | None = None) -> None:
        self.fields = fields
        self.role = role
        self.base_role = base_role  # the role column's default: what an account created unprivileged holds
        self.watched: frozenset[str] = frozenset([*fields, *([role] if role is not None else [])])

    def touched(self, state: Any) -> bool:
        """Whether a loaded row had a watched attribute set since it was loaded: SQLAlchemy keeps the old
        value of every attribute set in `committed_state`, so a flush of other columns reads no history."""
        committed: Any = getattr(state, "committed_state", None)
        if not isinstance(committed, dict):
            return True  # not the SQLAlchemy this was written for: read the history
        return not self.watched.isdisjoint(cast("dict[str, Any]", committed))


_tracked: dict[type, _Tracked] = {}


def track_privileges(
    model: type, *, fields: Mapping[str, str] | None = None, role: str | None = None
) -> None:
    """Write an `authz_change` when a committed flush changes the privileges of a `model` row.

    Args:
        model: the mapped account class (its subclasses are tracked too).
        fields: boolean columns and the privilege each one grants, highest first
            (`{"is_superuser": "superuser", "is_admin": "admin", "is_staff": "staff"}`); name them
            `superuser`, `staff` or `admin` for the privilege-escalation rule to see them.
        role: a column whose value is the account's role (a string or an `enum.Enum`): a new value is
            granted, the old one revoked.

    Raises:
        ValueError: `model` is not mapped, a column is not one of its attributes, or nothing is named.

    Example:
        ```python
        track_privileges(User, fields={"is_superuser": "superuser"}, role="role")
        ```
    """
    names = dict(fields or {})
    if not names and role is None:
        raise ValueError("track_privileges: name the privilege columns (fields=) or a role column (role=)")
    try:
        mapper = _inspect(model)
    except NoInspectionAvailable:
        raise ValueError(f"track_privileges: {model!r} is not a mapped class") from None
    for attribute in [*names, *([role] if role is not None else [])]:
        if attribute not in mapper.attrs:
            known = ", ".join(sorted(mapper.column_attrs.keys()))
            raise ValueError(f"track_privileges: {model.__name__} has no attribute {attribute!r} ({known})")
    _tracked[model] = _Tracked(names, role, _default_role(mapper, role))
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "before_flush", _before_flush)
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_soft_rollback", _after_soft_rollback)


def _default_role(mapper: Any, role: str | None) -> str | None:
    """The role column's scalar default (`default="member"`, `default=Role.member`), if it has one."""
    if role is None:
        return None
    columns: list[Any] = list(getattr(mapper.attrs[role], "columns", None) or [])
    default: Any = getattr(columns[0], "default", None) if columns else None
    if default is None or not getattr(default, "is_scalar", False):
        return None
    return _role_name(default.arg)


def _before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    """Read the old values the session does not know (a row expired by a commit, then set): one `SELECT` of
    the watched columns by primary key, inside the flush (where an `AsyncSession` may do IO; a load when the
    application sets the attribute would not be)."""
    with never_raise(_WHERE):
        unknown: dict[int, dict[str, Any]] = {}
        for instance in session.dirty:
            spec = _spec(instance)
            if spec is None:
                continue
            state = _inspect(instance)
            if not spec.touched(state):
                continue
            names = [a for a in spec.watched if _unknown(state, a)]
            if names and state.identity is not None:
                mapper = state.mapper
                columns = [mapper.attrs[name].expression for name in names]
                where = [col == value for col, value in zip(mapper.primary_key, state.identity, strict=True)]
                row = session.connection().execute(sqlalchemy.select(*columns).where(*where)).first()
                if row is not None:
                    unknown[id(instance)] = dict(zip(names, row, strict=True))
        if unknown:
            session.info[_OLD] = unknown


def _unknown(state: Any, attribute: str) -> bool:
    history = state.attrs[attribute].history
    return bool(history.added) and not history.deleted and not history.unchanged


def _inspect(thing: object) -> Any:
    return sqlalchemy.inspect(thing)


def _spec(instance: object) -> _Tracked | None:
    for cls in type(instance).__mro__:
        found = _tracked.get(cls)
        if found is not None:
            return found
    return None


def _after_flush(session: Session, flush_context: Any) -> None:
    with never_raise(_WHERE):
        old_values: dict[int, dict[str, Any]] = session.info.pop(_OLD, {})
        changes: list[tuple[object, dict[str, Any]]] = []
        new = session.new
        for instance in [*new, *session.dirty]:
            spec = _spec(instance)
            if spec is None or (instance not in new and not spec.touched(_inspect(instance))):
                continue
            params = _change(instance, spec, instance in new, old_values.get(id(instance), {}))
            if params is not None:
                changes.append((_target(instance), params))
        if changes:
            transaction = session.get_nested_transaction() or session.get_transaction()
            # The actor, the request and any bound scope, as they are now: the commit may run elsewhere.
            pending = session.info.setdefault(_PENDING, [])
            pending.append((transaction, contextvars.copy_context(), changes))


def _target(instance: object) -> User | None:
    """The account by primary key, read now (a new row's is set by the flush; the commit expires it)."""
    pk = list(_inspect(instance).mapper.primary_key_from_instance(instance))
    if not pk or any(part is None for part in pk):
        return None
    return User(id=":".join(str(part) for part in pk))


def _change(instance: object, spec: _Tracked, new: bool, read: Mapping[str, Any]) -> dict[str, Any] | None:
    state = _inspect(instance)
    before: dict[str, bool] = {}
    after: dict[str, bool] = {}
    changed = False
    for attribute, privilege in spec.fields.items():
        history = state.attrs[attribute].history
        now = bool(_current(history))
        was = False if new else bool(_old(history, attribute, read, now))
        before[privilege], after[privilege] = was, now
        changed = changed or was != now
    old_role = new_role = None
    if spec.role is not None:
        history = state.attrs[spec.role].history
        new_role = _role_name(_current(history))
        # A new account holding the column's default role was created unprivileged: no change of role.
        old_role = spec.base_role if new else _role_name(_old(history, spec.role, read, _current(history)))
        changed = changed or old_role != new_role
    if not changed:
        return None
    granted = [p for p in after if after[p] and not before[p]]
    revoked = [p for p in after if before[p] and not after[p]]
    if old_role != new_role:
        granted += [new_role] if new_role is not None else []
        revoked += [old_role] if old_role is not None and not new else []  # a new row never held one
    if not granted and not revoked:
        return None
    params: dict[str, Any] = {
        "from_role": _highest(before, old_role),
        "to_role": _highest(after, new_role),
    }
    if granted:
        params["granted"] = granted
    if revoked:
        params["revoked"] = revoked
    return params


def _old(history: Any, attribute: str, read: Mapping[str, Any], current: Any) -> Any:
    if history.deleted:
        return history.deleted[0]
    return read.get(attribute, current)  # read before the flush when the session did not know it


def _current(history: Any) -> Any:
    if history.added:
        return history.added[0]
    return history.unchanged[0] if history.unchanged else None


def _role_name(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        value = value.value if isinstance(value.value, str) else value.name
    return str(value)


def _highest(held: Mapping[str, bool], role: str | None) -> str:
    for privilege, has in held.items():
        if has:
            return privilege
    return role if role is not None else "user"


def _after_commit(session: Session) -> None:
    pending: list[tuple[Any, contextvars.Context, list[tuple[object, dict[str, Any]]]]] = session.info.pop(
        _PENDING, []
    )
    for _transaction, context, changes in pending:
        for target, params in changes:
            context.run(_write, target, params)


def _write(target: object, params: dict[str, Any]) -> None:
    with never_raise(_WHERE):
        emit_event("authz_change", target_user=target, params=params)


def _after_soft_rollback(session: Session, previous_transaction: Any) -> None:
    """Forget what the rolled-back transaction (and the savepoints inside it) flushed."""
    pending = session.info.get(_PENDING)
    if not pending:
        return
    kept = [entry for entry in pending if not _inside(entry[0], previous_transaction)]
    if kept:
        session.info[_PENDING] = kept
    else:
        session.info.pop(_PENDING, None)


def _inside(transaction: Any, ended: Any) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False
