"""URLs of the example shop: Django's own LoginView and LogoutView, and three pages."""

from django.contrib.auth import views as auth_views
from django.urls import path

from shop import views

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password-reset/", views.password_reset, name="password_reset"),
    path("", views.home, name="home"),
    path("staff/users/", views.staff_users, name="staff_users"),
    path("staff/users/<int:user_id>/disable/", views.disable_user, name="disable_user"),
]
