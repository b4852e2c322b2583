"""Framework user objects type-check as users, as the integrations' docs pass them. Not run by pytest.

pyright checks these against Django's and Flask-Login's real classes (mypy sees them as ``Any``: they ship
no type information).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from flask_login import AnonymousUserMixin, UserMixin

import graffer_secevents as secevents


def django_users(user: AbstractBaseUser, anonymous: AnonymousUser) -> None:
    secevents.log_login(user, "success")
    secevents.log_access_denied(anonymous, "/admin")


class Account(UserMixin):  # type: ignore[misc]  # mypy sees flask_login as Any
    def __init__(self, account_id: int) -> None:
        self.id = account_id


def flask_login_users(user: Account, anonymous: AnonymousUserMixin) -> None:
    secevents.log_login(user, secevents.Outcome.SUCCESS)
    secevents.log_logout(anonymous)


@dataclass
class ServiceAccount:
    """Any class of one's own that has Django's two members is a user too."""

    pk: int
    username: str

    def get_username(self) -> str:
        return self.username


def own_user_class(account: ServiceAccount, outcome: secevents.OutcomeLike) -> None:
    secevents.log_login(account, outcome)
    secevents.log_user_created(account, secevents.User(id=7))


def user_records(row: dict[str, object]) -> None:
    """A user store's dict (fastapi-login's `user_loader`, a database row mapping) is a user too."""
    secevents.log_login(row, "success")
    secevents.log_login({"id": 1001, "email": "ada@example.com"}, "failure", exists=True)
