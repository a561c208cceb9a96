"""A django-prodserver worker backend: `python manage.py worker scheduler` runs
the dedicated scheduler (`runscheduler`). django-prodserver is optional; the
settings list this backend in PRODUCTION_PROCESSES only when it is installed."""

from django.core import management
from django_prodserver.backends.base import BaseWorkerBackend


class SchedulerWorker(BaseWorkerBackend):
    def start_server(self, *args: str) -> None:
        management.call_command("runscheduler", *args)
