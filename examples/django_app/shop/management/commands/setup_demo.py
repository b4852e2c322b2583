"""``python manage.py setup_demo``: create the tables and the three demo accounts."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

import graffer_secevents as secevents


class Command(BaseCommand):
    help = "Create the database tables and the demo accounts ada, grace and root."

    @secevents.actor("manage:setup_demo")  # root is created staff: its authz_change names this command
    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", verbosity=0, interactive=False)
        users = get_user_model()
        for username, password, staff in (
            ("ada", "correct horse battery staple", False),
            ("grace", "hopper-1906", False),
            ("root", "root-admin-pass", True),
        ):
            if not users.objects.filter(username=username).exists():
                users.objects.create_user(username, f"{username}@example.com", password, is_staff=staff)
        self.stdout.write("ready: ada / grace / root (staff)")
