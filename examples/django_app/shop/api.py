"""The shop's token API: simplejwt's own views (in urls.py) and one protected DRF view.

No event code: token logins, wrong passwords, forged or expired JWTs, refresh tokens used after rotation and
logouts through the blacklist view are recorded by ``graffer_secevents.integrations.django``.
"""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class Orders(APIView):
    """The signed-in customer's orders (needs a valid access token)."""

    def get(self, request: Request) -> Response:
        return Response({"customer": request.user.get_username(), "orders": []})
