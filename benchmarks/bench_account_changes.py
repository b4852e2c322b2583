"""What watching account changes costs Django: a user's save, a bulk update, another model's update.

A standalone Django project (SQLite in memory, `django.contrib.auth`, the `graffer_secevents` app, records
written to a discarded stream) runs each operation in interleaved rounds with the account-change receivers
connected and disconnected (the same process, the same database), and reports the median µs per operation
and the median of the per-round ratios (connected / disconnected). Rows:

* `user.save()` changing a field nobody watches (`first_name`): the one `SELECT` of the watched columns;
* `user.save(update_fields=["last_login"])`, what every login does: nothing is read;
* `user.save()` toggling `is_staff`: the read, the on-commit callback and one `authz_change` event;
* `Group.objects.filter(...).update(...)`: another model's update, one identity check;
* `User.objects.filter(pk=...).update(first_name=...)`: an update that names no watched field.

    .venv/bin/python benchmarks/bench_account_changes.py [--rounds 30] [--batch 200]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from typing import Any

import django
from django.conf import settings

settings.configure(
    SECRET_KEY="bench",
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "graffer_secevents.integrations.django",
    ],
    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
)
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db.models import QuerySet, signals  # noqa: E402
from django.utils import timezone  # noqa: E402

import graffer_secevents as secevents  # noqa: E402
from graffer_secevents.integrations.django import _privileges  # noqa: E402

User = get_user_model()
WRAPPED_UPDATE = QuerySet.update
ORIGINAL_UPDATE = WRAPPED_UPDATE.__wrapped__  # type: ignore[attr-defined]


def connect(on: bool) -> None:
    """Our receivers and the update wrapper connected (`on`) or not."""
    if on:
        _privileges.install()
        QuerySet.update = WRAPPED_UPDATE  # type: ignore[method-assign]
        return
    for signal, uid in ((signals.pre_save, "pre_save"), (signals.post_save, "post_save")):
        signal.disconnect(sender=User, dispatch_uid=_privileges._UID + uid)
    QuerySet.update = ORIGINAL_UPDATE  # type: ignore[method-assign]


def operations(user: Any, group: Group) -> dict[str, Callable[[], None]]:
    def save_unwatched() -> None:
        user.first_name = "x" if user.first_name != "x" else "y"
        user.save()

    def save_login() -> None:
        user.last_login = timezone.now()
        user.save(update_fields=["last_login"])

    def save_privilege() -> None:
        user.is_staff = not user.is_staff
        user.save()

    def other_update() -> None:
        Group.objects.filter(pk=group.pk).update(name="g")

    def user_update_unwatched() -> None:
        User.objects.filter(pk=user.pk).update(first_name="z")

    return {
        "user.save() of an unwatched field": save_unwatched,
        "user.save(update_fields=['last_login']) (a login)": save_login,
        "user.save() toggling is_staff (one event)": save_privilege,
        "Group ... .update() (another model)": other_update,
        "User ... .update(first_name=...) (unwatched)": user_update_unwatched,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    secevents.configure(
        output=io.StringIO(), delivery="sync", metrics="none", hash_key="bench-only-key-0123456789"
    )
    user = User.objects.create_user("bench", "bench@example.org", "pw")
    group = Group.objects.create(name="g")
    ops = operations(user, group)
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
    print(f"# {args.rounds} rounds x {args.batch} operations; SQLite in memory; a shared, noisy machine")
    print("| operation | without (µs) | with (µs) | ratio (median of rounds) |")
    print("|---|---:|---:|---:|")
    for name in ops:
        without = statistics.median(times[(name, False)])
        with_ = statistics.median(times[(name, True)])
        print(f"| {name} | {without:.1f} | {with_:.1f} | {statistics.median(ratios[name]):.2f}x |")


if __name__ == "__main__":
    main()
