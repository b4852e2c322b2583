"""The DRF + simplejwt API of the Django test project: the stacks' own views, no event code."""

from __future__ import annotations

from typing import Any

from django.urls import path
from rest_framework.authentication import SessionAuthentication
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView
from rest_framework_simplejwt.views import (
    TokenBlacklistView,
    TokenObtainPairView,
    TokenObtainSlidingView,
    TokenRefreshView,
)


class Me(APIView):
    def get(self, request: Request) -> Response:
        return Response({"id": request.user.pk})


class AdminOnly(APIView):
    permission_classes = (IsAdminUser,)

    def get(self, request: Request) -> Response:
        return Response({"admin": True})


class SessionWrite(APIView):
    authentication_classes = (SessionAuthentication,)

    def post(self, request: Request) -> Response:
        return Response({"written": True})


class TwoPerMinute(AnonRateThrottle):
    rate = "2/min"


class ThrottledTokenView(TokenObtainPairView):
    throttle_classes = (TwoPerMinute,)


urlpatterns: list[Any] = [
    path("drf/token/throttled/", ThrottledTokenView.as_view()),
    path("drf/token/", TokenObtainPairView.as_view()),
    path("drf/token/sliding/", TokenObtainSlidingView.as_view()),
    path("drf/token/refresh/", TokenRefreshView.as_view()),
    path("drf/token/blacklist/", TokenBlacklistView.as_view()),
    path("drf/auth-token/", obtain_auth_token),
    path("drf/me/", Me.as_view()),
    path("drf/admin/", AdminOnly.as_view()),
    path("drf/session-write/", SessionWrite.as_view()),
]
