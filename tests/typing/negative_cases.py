"""Calls that must NOT type-check: each line's ignore is required, and an unneeded one is an error.

mypy (``--strict`` includes ``warn_unused_ignores``) and pyright (the file-level setting below) both fail
``make typecheck`` if one of these calls starts to type-check, i.e. if the public types loosen again.
Not run by pytest.
"""
# pyright: reportUnnecessaryTypeIgnoreComment=true

from __future__ import annotations

import graffer_secevents as secevents


def misspelt_outcome(user_id: int) -> None:
    secevents.log_login(user_id, "succes")  # type: ignore[arg-type]
    secevents.log_mfa_challenge(user_id, "failed")  # type: ignore[arg-type]
    secevents.emit("authn_login_fail", user_id, "fail")  # type: ignore[arg-type]


def any_string_is_not_an_outcome(user_id: int, outcome: str) -> None:
    secevents.log_login(user_id, outcome)  # type: ignore[arg-type]


def an_arbitrary_object_is_not_a_user() -> None:
    secevents.log_login(object(), "success")  # type: ignore[arg-type]
    secevents.log_login(["id", 1], "success")  # type: ignore[arg-type]  # a list; a mapping is a user record
    secevents.log_privilege_change(1, 3.5, from_role="user", to_role="admin")  # type: ignore[arg-type]


def misspelt_account_change_choices(user_id: int) -> None:
    secevents.log_impersonation(user_id, 2, stage="begin")  # type: ignore[arg-type]
    secevents.log_group_membership(user_id, 2, "ops", action="delete")  # type: ignore[arg-type]


def unknown_configure_option() -> None:
    secevents.configure(hash_kye="k")  # type: ignore[arg-type]


def unknown_backend_or_output() -> None:
    secevents.configure(metrics="prometheus")  # type: ignore[arg-type]
    # output= takes any str since a path is an output (issue 20): "syslog" is refused at run time.
