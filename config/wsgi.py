"""WSGI entry point for gunicorn and other WSGI servers (Passenger uses passenger_wsgi.py)."""

import os

from django.core.wsgi import get_wsgi_application

from config.serving import load_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = load_application(get_wsgi_application)
