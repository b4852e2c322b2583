"""ASGI entry point: ``uvicorn --app-dir examples/django_app shop.asgi:application --no-proxy-headers``."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
application = get_asgi_application()
