"""URLs of the example shop: Django's own LoginView and LogoutView, three pages, and a token API (DRF +
simplejwt: obtain, refresh, blacklist, and one protected view)."""

from django.contrib.auth import views as auth_views
from django.urls import path
from rest_framework_simplejwt.views import TokenBlacklistView, TokenObtainPairView, TokenRefreshView

from shop import api, views

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password-reset/", views.password_reset, name="password_reset"),
    path("", views.home, name="home"),
    path("staff/users/", views.staff_users, name="staff_users"),
    path("staff/users/<int:user_id>/disable/", views.disable_user, name="disable_user"),
    path("api/token/", TokenObtainPairView.as_view(), name="token_obtain"),
    path("api/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("api/token/blacklist/", TokenBlacklistView.as_view(), name="token_blacklist"),
    path("api/orders/", api.Orders.as_view(), name="api_orders"),
]
