"""What `track_privileges` costs a SQLAlchemy service: a commit that changes nothing watched, another model,
a privilege toggle (one event), and a privilege set on a row the previous commit expired (one `SELECT`).

SQLite in memory, records written to a discarded stream; each operation runs in interleaved rounds with the
session listeners connected and removed (the same process, the same database), and the report gives the
median µs per operation and the median of the per-round ratios (connected / removed). Rows:

* a commit changing an unwatched column (`email`) of a tracked, loaded row: the flush's scan only;
* a commit changing another model's row: an MRO lookup per dirty object;
* a commit toggling `is_admin` on a loaded row: the history read, one `authz_change` at commit;
* the same on a row expired by the previous commit (the default): plus one `SELECT` inside the flush.

    .venv/bin/python benchmarks/bench_sqlalchemy_privileges.py [--rounds 30] [--batch 200]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable

from sqlalchemy import Boolean, Integer, String, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import graffer_secevents as secevents
from graffer_secevents.integrations import sqlalchemy as tracking
from graffer_secevents.integrations.sqlalchemy import track_privileges


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(100))
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(String(100))


track_privileges(Account, fields={"is_superuser": "superuser", "is_admin": "admin"})
LISTENERS = (
    ("before_flush", tracking._before_flush),
    ("after_flush", tracking._after_flush),
    ("after_commit", tracking._after_commit),
    ("after_soft_rollback", tracking._after_soft_rollback),
)


def connect(on: bool) -> None:
    for name, listener in LISTENERS:
        present = event.contains(Session, name, listener)
        if on and not present:
            event.listen(Session, name, listener)
        elif not on and present:
            event.remove(Session, name, listener)


def operations(db: Session, account: Account, note: Note) -> dict[str, Callable[[], None]]:
    loaded = Session(db.get_bind(), expire_on_commit=False)
    kept = loaded.get(Account, account.id)
    other = loaded.get(Note, note.id)
    assert kept is not None
    assert other is not None

    def unwatched() -> None:
        kept.email = "x@example.org" if kept.email != "x@example.org" else "y@example.org"
        loaded.commit()

    def other_model() -> None:
        other.text = "x" if other.text != "x" else "y"
        loaded.commit()

    def toggle_loaded() -> None:
        kept.is_admin = not kept.is_admin
        loaded.commit()

    flag = [False]

    def toggle_expired() -> None:
        flag[0] = not flag[0]
        account.is_admin = flag[0]  # `db` expires on commit: the old value is read inside the flush
        db.commit()

    return {
        "commit of an unwatched column": unwatched,
        "commit of another model": other_model,
        "commit toggling is_admin (one event)": toggle_loaded,
        "commit toggling is_admin of an expired row (one event, one SELECT)": toggle_expired,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    secevents.configure(
        output=io.StringIO(), delivery="sync", metrics="none", hash_key="bench-only-key-0123456789"
    )
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    db = Session(engine)
    account, note = Account(email="a@example.org"), Note(text="n")
    db.add_all([account, note])
    db.commit()
    ops = operations(db, account, note)
    times: dict[tuple[str, bool], list[float]] = {(name, on): [] for name in ops for on in (False, True)}
    ratios: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(args.rounds):
        for name, op in ops.items():
            per: dict[bool, float] = {}
            for on in (False, True):
                connect(on)
                start = time.perf_counter()
                for _ in range(args.batch):
                    op()
                per[on] = (time.perf_counter() - start) / args.batch * 1e6
                times[(name, on)].append(per[on])
            ratios[name].append(per[True] / per[False])
    connect(True)
    print(f"# {args.rounds} rounds x {args.batch} commits; SQLite in memory; a shared, noisy machine")
    print("| operation | without (µs) | with (µs) | ratio (median of rounds) |")
    print("|---|---:|---:|---:|")
    for name in ops:
        without = statistics.median(times[(name, False)])
        with_ = statistics.median(times[(name, True)])
        print(f"| {name} | {without:.1f} | {with_:.1f} | {statistics.median(ratios[name]):.2f}x |")


if __name__ == "__main__":
    main()
