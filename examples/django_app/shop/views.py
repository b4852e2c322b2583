"""Views of the example shop.

Logins, failed logins and logouts need no code here: Django's ``LoginView``/``LogoutView`` send the auth
signals and the ``graffer_secevents.integrations.django`` app records them. A ``PermissionDenied`` becomes a
403, which the middleware records as ``authz_fail``. The views only record what Django cannot know.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_POST

import graffer_secevents as secevents


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"Hello {request.user.get_username()}")


@require_POST
def password_reset(request: HttpRequest) -> JsonResponse:
    login = request.POST.get("username", "")
    exists = get_user_model().objects.filter(username=login).exists()
    secevents.log_password_reset(None, login=login, exists=exists)
    return JsonResponse({"ok": True}, status=202)  # the same answer either way: no account enumeration


@login_required
def staff_users(request: HttpRequest) -> JsonResponse:
    if not request.user.is_staff:
        raise PermissionDenied
    return JsonResponse({"users": list(get_user_model().objects.values_list("username", flat=True))})


@login_required
@require_POST
def disable_user(request: HttpRequest, user_id: int) -> JsonResponse:
    if not request.user.is_staff:
        raise PermissionDenied
    target = get_object_or_404(get_user_model(), pk=user_id)
    target.is_active = False
    target.save(update_fields=["is_active"])
    secevents.log_admin_action(request.user, "disable_user", resource=f"/users/{user_id}")
    return JsonResponse({"ok": True})
