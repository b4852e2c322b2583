"""The apps the Django seams' tests drive: each stack set up as its own docs show, and classes, backends,
forms and views written here, for the tests, that the library was not written for. No event code.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth import get_user_model, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.backends import BaseBackend
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from django_otp.views import LoginView as OTPLoginView
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from oauth2_provider.views.generic import ProtectedResourceView
from rest_framework import exceptions, generics, serializers
from rest_framework.authentication import BaseAuthentication, TokenAuthentication
from rest_framework.permissions import AllowAny, IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

# --- a DRF authentication class of our own: `Authorization: Key <username>.<secret>` -----------------------


class KeyAuthentication(BaseAuthentication):
    """A minimal API-key class, as a product would write one: the key names its account."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header.startswith("Key "):
            return None
        username, _, secret = header[4:].partition(".")
        user = get_user_model().objects.filter(username=username).first()
        if user is None or secret != f"key-of-{username}":
            raise exceptions.AuthenticationFailed("Invalid key.")
        if not user.is_active:
            raise exceptions.AuthenticationFailed("Account disabled.")
        return user, None

    def authenticate_header(self, request: Request) -> str:
        return "Key"


class KeyMe(APIView):
    authentication_classes = (KeyAuthentication,)
    permission_classes = (IsAuthenticated,)

    def get(self, request: Request) -> Response:
        return Response({"id": request.user.pk})


class KeyAdmin(KeyMe):
    permission_classes = (IsAdminUser,)


# --- a backend that refuses before the password is checked ---------------------------------------------------

REFUSED_LOGINS: set[str] = set()


class RefuseListedBackend(BaseBackend):
    """A lock-out backend of our own: listed logins may not log in at all."""

    def authenticate(self, request: Any, username: str | None = None, **_credentials: Any) -> None:
        if username in REFUSED_LOGINS:
            raise PermissionDenied
        return


# --- a password-change form of our own, in a plain view ----------------------------------------------------


class FriendlyPasswordChangeForm(PasswordChangeForm):
    field_order: ClassVar[list[str]] = ["new_password1", "new_password2", "old_password"]


@csrf_exempt
@login_required
def change_password(request: HttpRequest) -> HttpResponse:
    form = FriendlyPasswordChangeForm(request.user, request.POST)
    if not form.is_valid():
        return HttpResponse("no", status=400)
    form.save()
    update_session_auth_hash(request, form.user)
    return HttpResponse("changed")


@csrf_exempt
@login_required
def set_someones_password(request: HttpRequest, pk: int) -> HttpResponse:
    """A staff page built on Django's AdminPasswordChangeForm (not a SetPasswordForm)."""
    from django.contrib.auth.forms import AdminPasswordChangeForm

    form = AdminPasswordChangeForm(get_user_model().objects.get(pk=pk), request.POST)
    if not form.is_valid():
        return HttpResponse("no", status=400)
    form.save()
    return HttpResponse("set")


# --- account creation that only calls create_user --------------------------------------------------------


@csrf_exempt
def signup(request: HttpRequest) -> HttpResponse:
    users = get_user_model()
    user = users.objects.create_user(
        request.POST["username"], request.POST["email"], request.POST["password"]
    )
    return JsonResponse({"id": user.pk}, status=201)


@csrf_exempt
def signup_two_step(request: HttpRequest) -> HttpResponse:
    user = get_user_model()(username=request.POST["username"], email=request.POST["email"])
    user.save()
    user.set_password(request.POST["password"])
    user.save()
    return JsonResponse({"id": user.pk}, status=201)


# --- a DRF registration endpoint (a ModelSerializer and CreateAPIView): a case the code was not written for -


class RegistrationSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = get_user_model()
        fields = ("username", "email", "password")
        extra_kwargs: ClassVar[dict[str, Any]] = {"password": {"write_only": True}}

    def create(self, validated_data: dict[str, Any]) -> Any:
        user = get_user_model()(username=validated_data["username"], email=validated_data["email"])
        user.set_password(validated_data["password"])
        user.save()
        return user


class Register(generics.CreateAPIView):  # type: ignore[type-arg]
    serializer_class = RegistrationSerializer
    authentication_classes = (TokenAuthentication,)
    permission_classes = (AllowAny,)


# --- django-oauth-toolkit's protected resources -------------------------------------------------------------


class OAuthProtected(ProtectedResourceView):
    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("protected")


class OAuthDRF(APIView):
    authentication_classes = (OAuth2Authentication,)
    permission_classes = (IsAuthenticated,)

    def get(self, request: Request) -> Response:
        return Response({"id": request.user.pk})


urlpatterns: list[Any] = [
    path("seams/key/me/", KeyMe.as_view()),
    path("seams/key/admin/", KeyAdmin.as_view()),
    path("seams/change-password/", change_password),
    path("seams/set-password/<int:pk>/", set_someones_password),
    path("seams/signup/", signup),
    path("seams/signup-two-step/", signup_two_step),
    path("seams/register/", Register.as_view()),
    path("seams/otp-login/", OTPLoginView.as_view(template_name="registration/login.html")),
    path("seams/password-change/", csrf_exempt(auth_views.PasswordChangeView.as_view(success_url="/done/"))),
    path("seams/password-reset/", csrf_exempt(auth_views.PasswordResetView.as_view(success_url="/done/"))),
    path(
        "seams/reset/<uidb64>/<token>/",
        csrf_exempt(auth_views.PasswordResetConfirmView.as_view(success_url="/done/")),
    ),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("oauth/protected/", OAuthProtected.as_view()),
    path("oauth/drf/", OAuthDRF.as_view()),
]
