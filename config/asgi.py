"""ASGI entry point (uvicorn and other ASGI servers)."""

import os

from django.core.asgi import get_asgi_application

from config.serving import load_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = load_application(get_asgi_application)
