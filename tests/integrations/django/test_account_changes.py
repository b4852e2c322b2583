"""Privilege and account changes of the user model by every path, with no event code: the real admin (the
test client logged in as a superuser), a view, a management command (`call_command`) and the shell (the plain
ORM, no request). Each change is written once, with the actor, the target and the change; no password hash or
other secret field is ever written.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import BaseCommand, call_command
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

import graffer_secevents as secevents
from graffer_secevents._errors import reset_warnings
from graffer_secevents.testing import Capture

_ids = itertools.count()
ADMIN_PASSWORD = "admin pass 9"
PASSWORD = "member pass 9"
CHANGE_TYPES = {
    "authz_change",
    "user_enabled",
    "user_disabled",
    "user_updated",
    "group_member_added",
    "group_member_removed",
    "privilege_permissions_changed",
    "user_deleted",
    "user_created",
}


_BORN_PRIVILEGED: set[str] = set()  # setup accounts created staff or superuser: that grant is not under test


def new_user(**flags: Any) -> Any:
    n = next(_ids)
    user = get_user_model().objects.create_user(f"acct{n}", f"acct{n}@example.org", PASSWORD, **flags)
    if flags.get("is_staff") or flags.get("is_superuser"):
        _BORN_PRIVILEGED.add(str(user.pk))
    return user


def new_group(name: str) -> Group:
    return Group.objects.create(name=f"{name}-{next(_ids)}")


@pytest.fixture
def admin_client() -> tuple[Client, Any]:
    admin = get_user_model().objects.create_superuser(f"boss{next(_ids)}", "boss@example.org", ADMIN_PASSWORD)
    _BORN_PRIVILEGED.add(str(admin.pk))
    client = Client(REMOTE_ADDR="198.51.100.9")
    assert client.login(username=admin.username, password=ADMIN_PASSWORD)
    return client, admin


def changes(capture: Capture) -> list[dict[str, Any]]:
    """The account-change records, after checking that no secret reached any line."""
    for line in capture.lines:
        for secret in (b"md5$", b"pbkdf2", ADMIN_PASSWORD.encode(), PASSWORD.encode()):
            assert secret not in line, line
    records = [r for r in capture.records if r["evt"]["type"] in CHANGE_TYPES]
    return [r for i, r in enumerate(records) if not _setup_grant(r, records[:i])]


def _setup_grant(record: dict[str, Any], earlier: list[dict[str, Any]]) -> bool:
    """The `authz_change` a setup account wrote when it was created privileged (tested on its own below)."""
    target = record.get("target", {}).get("usr", {}).get("id")
    if record["evt"]["type"] != "authz_change" or target not in _BORN_PRIVILEGED:
        return False
    if record["evt"].get("from_role") != "user":
        return False
    return not any(
        r["evt"]["type"] == "authz_change" and r.get("target", {}).get("usr", {}).get("id") == target
        for r in earlier
    )


def of_type(records: list[dict[str, Any]], evt_type: str) -> list[dict[str, Any]]:
    return [r for r in records if r["evt"]["type"] == evt_type]


def change_form(client: Client, user: Any, **changes: Any) -> dict[str, Any]:
    """The admin's change form for `user` as a browser would post it, with `changes` applied."""
    data: dict[str, Any] = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "groups": [g.pk for g in user.groups.all()],
        "user_permissions": [p.pk for p in user.user_permissions.all()],
    }
    for flag in ("is_active", "is_staff", "is_superuser"):
        if getattr(user, flag):
            data[flag] = "on"
    for key, value in changes.items():
        if value is False:
            data.pop(key, None)
        elif value is True:
            data[key] = "on"
        else:
            data[key] = value
    return data


def post_change(client: Client, user: Any, **changed: Any) -> None:
    response = client.post(f"/admin/auth/user/{user.pk}/change/", change_form(client, user, **changed))
    assert response.status_code == 302, response.content.decode()[:2000]


# --- the admin ---------------------------------------------------------------------------------------------


def test_admin_makes_a_user_superuser(security_events: Capture, admin_client: tuple[Client, Any]) -> None:
    client, admin = admin_client
    user = new_user()
    post_change(client, user, is_superuser=True)
    [record] = changes(security_events)
    assert record["evt"]["type"] == "authz_change"
    assert record["evt"]["from_role"] == "user" and record["evt"]["to_role"] == "superuser"
    assert record["evt"]["granted"] == ["superuser"] and "revoked" not in record["evt"]
    assert record["usr"]["id"] == str(admin.pk)
    assert record["target"]["usr"]["id"] == str(user.pk)
    assert record["network"]["client"]["ip"] == "198.51.100.9"
    assert record["http"]["method"] == "POST"
    # the admin's own LogEntry: the object's type and id, never its field values or its repr
    [admin_action] = [r for r in security_events.records if r["evt"]["type"] == "authz_admin"]
    assert admin_action["usr"]["id"] == str(admin.pk)
    assert admin_action["evt"]["action"] == "change"
    assert admin_action["evt"]["resource"] == f"auth.user:{user.pk}"
    assert user.username not in str(admin_action)


def test_admin_revokes_staff_and_grants_superuser_in_one_save(
    security_events: Capture, admin_client: tuple[Client, Any]
) -> None:
    client, _ = admin_client
    user = new_user(is_staff=True)
    post_change(client, user, is_staff=False, is_superuser=True)
    [record] = changes(security_events)
    assert (record["evt"]["from_role"], record["evt"]["to_role"]) == ("staff", "superuser")
    assert record["evt"]["granted"] == ["superuser"] and record["evt"]["revoked"] == ["staff"]


def test_admin_adds_to_a_group_grants_a_permission_and_renames(
    security_events: Capture, admin_client: tuple[Client, Any]
) -> None:
    client, admin = admin_client
    user = new_user()
    group = new_group("support")
    permission = Permission.objects.get(codename="change_user")
    post_change(client, user, groups=[group.pk], user_permissions=[permission.pk], email="new@example.org")
    records = changes(security_events)
    assert sorted(r["evt"]["type"] for r in records) == ["authz_change", "group_member_added", "user_updated"]
    [added] = of_type(records, "group_member_added")
    assert added["evt"]["group"] == group.name and added["target"]["usr"]["id"] == str(user.pk)
    [granted] = of_type(records, "authz_change")
    assert granted["evt"]["granted"] == ["auth.change_user"] and "to_role" not in granted["evt"]
    [updated] = of_type(records, "user_updated")
    assert updated["evt"]["attributes"] == ["email"]
    assert "new@example.org" not in str(updated)  # names, never values
    assert {r["usr"]["id"] for r in records} == {str(admin.pk)}


def test_admin_removes_from_a_group(security_events: Capture, admin_client: tuple[Client, Any]) -> None:
    client, _ = admin_client
    user = new_user()
    group = new_group("ops")
    user.groups.add(group)
    security_events.clear()
    post_change(client, user, groups=[])
    [removed] = changes(security_events)
    assert removed["evt"]["type"] == "group_member_removed" and removed["evt"]["group"] == group.name


def test_admin_deactivates_then_deletes_an_account(
    security_events: Capture, admin_client: tuple[Client, Any]
) -> None:
    client, admin = admin_client
    user = new_user()
    post_change(client, user, is_active=False)
    response = client.post(f"/admin/auth/user/{user.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    records = changes(security_events)
    assert [r["evt"]["type"] for r in records] == ["user_disabled", "user_deleted"]
    assert {r["target"]["usr"]["id"] for r in records} == {str(user.pk)}
    assert {r["usr"]["id"] for r in records} == {str(admin.pk)}
    actions = [r["evt"]["action"] for r in security_events.records if r["evt"]["type"] == "authz_admin"]
    assert actions == ["change", "delete"]


def test_admin_bulk_delete_writes_one_event_per_account_and_per_entry(
    security_events: Capture, admin_client: tuple[Client, Any]
) -> None:
    client, _ = admin_client
    users = [new_user(), new_user()]
    data = {"action": "delete_selected", "_selected_action": [u.pk for u in users], "post": "yes"}
    assert client.post("/admin/auth/user/", data).status_code == 302
    deleted = of_type(changes(security_events), "user_deleted")
    assert sorted(r["target"]["usr"]["id"] for r in deleted) == sorted(str(u.pk) for u in users)
    entries = [r for r in security_events.records if r["evt"]["type"] == "authz_admin"]
    assert sorted(r["evt"]["resource"] for r in entries) == sorted(f"auth.user:{u.pk}" for u in users)


def test_admin_action_on_another_model_is_authz_admin_with_type_and_id(
    security_events: Capture, admin_client: tuple[Client, Any]
) -> None:
    client, admin = admin_client
    response = client.post("/admin/auth/group/add/", {"name": "auditors-secret-name", "permissions": []})
    assert response.status_code == 302
    group = Group.objects.get(name="auditors-secret-name")
    [record] = [r for r in security_events.records if r["evt"]["type"] == "authz_admin"]
    assert record["evt"] == {
        "type": "authz_admin",
        "name": "authz_admin",
        "category": "iam",
        "outcome": "success",
        "action": "add",
        "resource": f"auth.group:{group.pk}",
    }
    assert record["usr"]["id"] == str(admin.pk)
    assert "auditors-secret-name" not in security_events.lines[-1].decode()


# --- a view ------------------------------------------------------------------------------------------------


@csrf_exempt
def promote(request: HttpRequest, pk: int) -> HttpResponse:
    """Product code with no event code: a staff-only view that promotes an account."""
    user = get_user_model().objects.get(pk=pk)
    user.is_staff = True
    user.save()
    return HttpResponse("ok")


@csrf_exempt
async def apromote(request: HttpRequest, pk: int) -> HttpResponse:
    """The same in an async view: `asave()` runs the save (and its signals) in a worker thread."""
    await request.auser()
    user = await get_user_model().objects.aget(pk=pk)
    user.is_superuser = True
    await user.asave()
    return HttpResponse("ok")


urlpatterns = [
    path("promote/<int:pk>/", promote),
    path("apromote/<int:pk>/", apromote),
]


@override_settings(ROOT_URLCONF=__name__)
def test_a_view_that_promotes_records_the_request_user(security_events: Capture) -> None:
    operator = new_user()
    user = new_user()
    client = Client(REMOTE_ADDR="203.0.113.44")
    client.force_login(operator)
    assert client.post(f"/promote/{user.pk}/", HTTP_X_REQUEST_ID="promote-1").status_code == 200
    [record] = changes(security_events)
    assert record["evt"]["granted"] == ["staff"] and record["evt"]["to_role"] == "staff"
    assert record["usr"]["id"] == str(operator.pk) and record["target"]["usr"]["id"] == str(user.pk)
    assert record["http"]["request_id"] == "promote-1"
    assert record["network"]["client"]["ip"] == "203.0.113.44"


# --- a management command and the shell ---------------------------------------------------------------------


class Command(BaseCommand):
    """`manage.py grant_group <username> <group>`: the kind of command operators run."""

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("group")
        parser.add_argument("--superuser", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.get(username=options["username"])
        user.groups.add(Group.objects.get(name=options["group"]))
        if options["superuser"]:
            user.is_superuser = True
            user.save(update_fields=["is_superuser"])


def test_a_management_command_with_the_actor_it_binds(security_events: Capture) -> None:
    user = new_user()
    group = new_group("billing")
    secevents.set_user("ops:deploy-bot")  # outside a request: the actor of what follows
    try:
        call_command(Command(), user.username, group.name, "--superuser")
    finally:
        secevents.set_user(None)
    records = changes(security_events)
    assert [r["evt"]["type"] for r in records] == ["group_member_added", "authz_change"]
    assert {r["usr"]["id"] for r in records} == {"ops:deploy-bot"}
    assert {r["target"]["usr"]["id"] for r in records} == {str(user.pk)}
    assert "http" not in records[0] and "network" not in records[0]


def test_the_shell_reverse_side_and_clear_each_once(security_events: Capture) -> None:
    """`group.user_set.add`, `remove` of a non-member, `clear`, a permission's `user_set`, no request."""
    a, b, outsider = new_user(), new_user(), new_user()
    group = new_group("editors")
    group.user_set.add(a, b)
    group.user_set.remove(outsider)  # not a member: Django still reports it; no event
    a.groups.clear()
    permission = Permission.objects.get(codename="delete_user")
    permission.user_set.add(b)
    b.user_permissions.remove(permission)
    group.permissions.add(permission)
    records = changes(security_events)
    summary = [(r["evt"]["type"], r["target"]["usr"]["id"] if "target" in r else None) for r in records]
    assert summary == [
        ("group_member_added", str(a.pk)),
        ("group_member_added", str(b.pk)),
        ("group_member_removed", str(a.pk)),
        ("authz_change", str(b.pk)),
        ("authz_change", str(b.pk)),
        ("privilege_permissions_changed", None),
    ]
    assert records[3]["evt"]["granted"] == ["auth.delete_user"]
    assert records[4]["evt"]["revoked"] == ["auth.delete_user"]
    assert records[5]["evt"]["object"] == f"group:{group.name}"
    assert all("usr" not in r for r in records)  # nobody bound: no actor is invented


def test_the_shell_save_without_a_change_and_a_login_write_nothing(security_events: Capture) -> None:
    user = new_user(is_staff=True)
    user.first_name = "Ada"
    user.save()  # not a watched field
    user.save()  # nothing changed
    assert Client().login(username=user.username, password=PASSWORD)  # save(update_fields=["last_login"])
    assert changes(security_events) == []


def test_a_rolled_back_change_writes_nothing(security_events: Capture) -> None:
    user = new_user()

    def promote_then_fail() -> None:
        with transaction.atomic():
            user.is_superuser = True
            user.save()
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        promote_then_fail()
    assert changes(security_events) == []
    user.refresh_from_db()
    user.is_active = False
    with transaction.atomic():
        user.save()
        assert changes(security_events) == []  # not before the commit
    assert [r["evt"]["type"] for r in changes(security_events)] == ["user_disabled"]


def test_reenabling_an_account_and_deleting_it_in_the_shell(security_events: Capture) -> None:
    user = new_user(is_active=False)
    pk = user.pk
    user.is_active = True
    user.save()
    user.delete()
    records = changes(security_events)
    assert [r["evt"]["type"] for r in records] == ["user_enabled", "user_deleted"]
    assert {r["target"]["usr"]["id"] for r in records} == {str(pk)}
    assert records[1]["target"]["usr"]["login"].startswith("anon_")  # privacy as for every login


def test_a_failing_lookup_never_breaks_the_change_but_strict_mode_sees_it(
    security_events: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graffer_secevents.integrations.django import _privileges

    def broken(pks: Any) -> list[str]:
        raise RuntimeError("permission table unreadable")

    monkeypatch.setattr(_privileges, "_permission_names", broken)
    reset_warnings()  # the warning is once per process: whichever test ran before
    permission = Permission.objects.get(codename="view_user")
    user = new_user()
    with pytest.warns(secevents.SecEventsWarning, match="account-change signals"):
        user.user_permissions.add(permission)  # the change itself goes through
    assert user.user_permissions.filter(pk=permission.pk).exists()
    assert changes(security_events) == []

    secevents.configure(strict=True)
    user.is_staff = True
    user.get_username = lambda: "x" * 5000  # type: ignore[method-assign]
    secevents.configure(privacy={"usr.login": "keep"})
    with pytest.raises(secevents.EventValidationError, match=r"target\.usr\.login"):
        user.save()


# --- the rules read what the integration writes -------------------------------------------------------------


def test_privilege_escalation_fires_on_the_real_admin_and_not_on_ordinary_administration(
    security_events: Capture,
) -> None:
    """A superuser logs in from the office, then from a new IP, and makes an account superuser in the admin."""
    from graffer_secevents.detect import default_rules, evaluate

    admin = get_user_model().objects.create_superuser(f"boss{next(_ids)}", "b@example.org", ADMIN_PASSWORD)
    office, elsewhere = Client(REMOTE_ADDR="198.51.100.10"), Client(REMOTE_ADDR="203.0.113.66")
    for client in (office, elsewhere):
        response = client.post("/login/", {"username": admin.username, "password": ADMIN_PASSWORD})
        assert response.status_code == 302
    post_change(office, new_user(), is_staff=True)  # from the usual IP: ordinary administration
    rules = default_rules(only=["privilege_escalation"])
    assert evaluate(rules, security_events.records) != []  # two IPs in the window, and a grant: fires

    security_events.clear()
    calm = get_user_model().objects.create_superuser(f"calm{next(_ids)}", "c@example.org", ADMIN_PASSWORD)
    client = Client(REMOTE_ADDR="198.51.100.10")
    assert client.post("/login/", {"username": calm.username, "password": ADMIN_PASSWORD}).status_code == 302
    post_change(client, new_user(), is_superuser=True)
    security_events.assert_emitted("authz_change", evt__granted=["superuser"], usr__id=str(calm.pk))
    assert evaluate(rules, security_events.records) == []  # one IP: silent


def test_sensitive_models_are_also_a_data_trail(
    security_events: Capture, admin_client: tuple[Client, Any]
) -> None:
    from graffer_secevents.integrations.django import _admin

    client, admin = admin_client
    with override_settings(SECEVENTS={"sensitive_models": ["auth.Group"]}):
        _admin.install()
        try:
            assert client.post("/admin/auth/group/add/", {"name": f"payroll-{next(_ids)}"}).status_code == 302
            post_change(client, new_user(), email="changed@example.org")  # auth.user: not sensitive here
        finally:
            _admin.install()  # back to the settings of the session (none)
    group = Group.objects.latest("pk")
    created = security_events.assert_emitted("sensitive_create", usr__id=str(admin.pk))
    assert created["evt"]["object"] == f"auth.group:{group.pk}"
    assert [r["evt"]["type"] for r in security_events.records].count("authz_admin") == 2
    security_events.assert_not_emitted("sensitive_update")


@pytest.mark.parametrize("value", ["auth.group", ["auth.nosuchmodel"], ["not-a-label"], [42]])
def test_a_bad_sensitive_models_setting_is_refused_at_start_up(value: Any) -> None:
    from graffer_secevents.integrations.django import _admin

    with (
        override_settings(SECEVENTS={"sensitive_models": value}),
        pytest.raises(secevents.ConfigurationError, match="sensitive_models"),
    ):
        _admin.install()
    _admin.install()


def test_a_bulk_update_in_the_shell_writes_each_changed_account_once(security_events: Capture) -> None:
    """`QuerySet.update()` sends no signal; the accounts it changed are events, the unchanged ones not."""
    plain, staff, other = new_user(), new_user(is_staff=True), new_user()
    users = get_user_model().objects.filter(pk__in=[plain.pk, staff.pk])
    assert users.update(is_staff=True, is_active=False) == 2
    Group.objects.filter(pk__in=[]).update(name="x")  # another model: nothing read, nothing written
    get_user_model().objects.filter(pk=other.pk).update(last_login=None)  # not a watched field
    records = changes(security_events)
    summary = sorted((r["target"]["usr"]["id"], r["evt"]["type"]) for r in records)
    assert summary == sorted(
        [(str(plain.pk), "authz_change"), (str(plain.pk), "user_disabled"), (str(staff.pk), "user_disabled")]
    )
    [grant] = of_type(records, "authz_change")
    assert grant["evt"]["granted"] == ["staff"] and (grant["evt"]["from_role"], grant["evt"]["to_role"]) == (
        "user",
        "staff",
    )


def test_a_partial_save_keeps_the_unsaved_flag_in_the_roles(security_events: Capture) -> None:
    """`save(update_fields=["is_superuser"])` of a staff account that loses superuser: it is still staff."""
    user = new_user(is_staff=True, is_superuser=True)
    user.is_superuser = False
    user.save(update_fields=["is_superuser"])
    [record] = changes(security_events)
    assert (record["evt"]["from_role"], record["evt"]["to_role"]) == ("superuser", "staff")
    assert record["evt"]["revoked"] == ["superuser"]


def test_only_a_save_that_changed_a_watched_field_reads_the_row(security_events: Capture) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    user = get_user_model().objects.get(pk=new_user().pk)  # loaded from the database, as a request's user is
    with CaptureQueriesContext(connection) as queries:
        user.first_name = "Grace"
        user.save()
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["UPDATE"]
    with CaptureQueriesContext(connection) as queries:
        user.is_staff = True
        user.save()
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["SELECT", "UPDATE"]
    with CaptureQueriesContext(connection) as queries:
        user.save()  # saved values are the new snapshot: nothing changed since
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["UPDATE"]
    assert [r["evt"]["type"] for r in changes(security_events)] == ["authz_change"]


@override_settings(ROOT_URLCONF=__name__)
def test_an_async_view_records_the_request_user_across_the_thread_hop(security_events: Capture) -> None:
    operator, user = new_user(), new_user()
    client = Client(REMOTE_ADDR="203.0.113.45")
    client.force_login(operator)
    assert client.post(f"/apromote/{user.pk}/", HTTP_X_REQUEST_ID="apromote-1").status_code == 200
    [record] = changes(security_events)
    assert record["evt"]["granted"] == ["superuser"]
    assert record["usr"]["id"] == str(operator.pk) and record["target"]["usr"]["id"] == str(user.pk)
    assert record["http"]["request_id"] == "apromote-1"


@csrf_exempt
def edit_profile(request: HttpRequest) -> HttpResponse:
    """A self-service profile page: the user changes their own e-mail (and, as a bug, their own flag)."""
    user = request.user
    user.email = request.POST["email"]
    if "staff" in request.POST:
        user.is_staff = True
    user.save()
    return HttpResponse("ok")


urlpatterns.append(path("profile/", edit_profile))


@override_settings(ROOT_URLCONF=__name__)
def test_editing_ones_own_profile_is_no_admin_event_but_a_self_grant_is(security_events: Capture) -> None:
    me = new_user()
    client = Client(REMOTE_ADDR="203.0.113.46")
    client.force_login(me)
    assert client.post("/profile/", {"email": "me@example.org"}).status_code == 200
    assert changes(security_events) == []
    assert client.post("/profile/", {"email": "me2@example.org", "staff": "1"}).status_code == 200
    [record] = changes(security_events)
    assert record["evt"]["type"] == "authz_change" and record["evt"]["granted"] == ["staff"]
    assert record["usr"]["id"] == record["target"]["usr"]["id"] == str(me.pk)


# --- paths no earlier test named (probe round) -------------------------------------------------------------


def test_bulk_update_of_a_privilege_is_one_authz_change_per_account(security_events: Capture) -> None:
    """`bulk_update` runs one `QuerySet.update()` of `Case`/`When` expressions: the same seam."""
    a, b = new_user(), new_user(is_staff=True)
    a.is_staff = True
    b.is_staff = True  # unchanged
    with secevents.actor("ops:bulk", user=secevents.User(id="svc-ops")):
        get_user_model().objects.bulk_update([a, b], ["is_staff"])
    records = changes(security_events)
    assert [(r["evt"]["type"], r["target"]["usr"]["id"], r["usr"]["id"]) for r in records] == [
        ("authz_change", str(a.pk), "svc-ops")
    ]
    assert records[0]["evt"]["granted"] == ["staff"]


def test_queryset_delete_is_one_user_deleted_per_account(security_events: Capture) -> None:
    a, b = new_user(), new_user()
    pks = {str(a.pk), str(b.pk)}
    get_user_model().objects.filter(pk__in=[a.pk, b.pk]).delete()
    records = changes(security_events)
    assert sorted(r["evt"]["type"] for r in records) == ["user_deleted", "user_deleted"]
    assert {r["target"]["usr"]["id"] for r in records} == pks


def test_createsuperuser_writes_the_privilege_the_account_is_born_with(
    security_events: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`manage.py createsuperuser` (no request): the new account's superuser grant is an `authz_change`."""
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a long root pw 9")
    name = f"root{next(_ids)}"
    with secevents.actor("cli:createsuperuser"):
        call_command("createsuperuser", "--noinput", username=name, email="root@example.org", verbosity=0)
    user = get_user_model().objects.get(username=name)
    records = of_type(changes(security_events), "authz_change")
    assert len(records) == 1, records
    [grant] = records
    assert grant["target"]["usr"]["id"] == str(user.pk)
    assert (grant["evt"]["from_role"], grant["evt"]["to_role"]) == ("user", "superuser")
    assert grant["evt"]["granted"] == ["superuser", "staff"]
    assert grant["actor"]["name"] == "cli:createsuperuser"
    assert b"a long root pw 9" not in b"\n".join(security_events.lines)


def test_a_plain_new_account_writes_no_privilege_change(security_events: Capture) -> None:
    new_user()
    assert of_type(changes(security_events), "authz_change") == []


def test_the_admins_change_password_form_names_the_admin_and_the_account(
    security_events: Capture, admin_client: tuple[Client, Any]
) -> None:
    client, admin = admin_client
    user = new_user()
    response = client.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"password1": "brand new pw 77", "password2": "brand new pw 77", "usable_password": "true"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    records = [r for r in security_events.records if r["evt"]["type"] == "authn_password_change"]
    assert len(records) == 1, records
    assert (records[0]["usr"]["id"], records[0]["target"]["usr"]["id"]) == (str(admin.pk), str(user.pk))
    assert records[0]["network"]["client"]["ip"] == "198.51.100.9"
    text = b"\n".join(security_events.lines)
    assert b"brand new pw 77" not in text and b"pbkdf2" not in text and b"md5$" not in text


def test_a_groups_permissions_changed_in_the_admin_name_the_admin(
    security_events: Capture, admin_client: tuple[Client, Any]
) -> None:
    client, admin = admin_client
    group = new_group("auditors")
    permission = Permission.objects.get(codename="change_user")
    response = client.post(
        f"/admin/auth/group/{group.pk}/change/", {"name": group.name, "permissions": [permission.pk]}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    [record] = of_type(changes(security_events), "privilege_permissions_changed")
    assert record["usr"]["id"] == str(admin.pk)
    assert record["evt"]["object"] == f"group:{group.name}" and record["evt"]["granted"] == [
        "auth.change_user"
    ]


def test_a_data_migration_s_historical_user_model_is_watched_too(security_events: Capture) -> None:
    """`RunPython` gets `apps.get_model("auth", "User")` from the migration state: another class than
    `AUTH_USER_MODEL`'s, whose signals and updates must still be seen."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    state = MigrationExecutor(connection).loader.project_state()
    historical = state.apps.get_model("auth", "User")
    assert historical is not get_user_model()
    user = new_user()
    row = historical.objects.get(pk=user.pk)
    row.is_superuser = True
    row.save()
    historical.objects.filter(pk=user.pk).update(is_active=False)
    records = changes(security_events)
    assert [(r["evt"]["type"], r["target"]["usr"]["id"]) for r in records] == [
        ("authz_change", str(user.pk)),
        ("user_disabled", str(user.pk)),
    ]
