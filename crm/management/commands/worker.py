"""Stands in for django-prodserver's `worker` command when it is not installed
(with it, its own command takes precedence: it comes first in INSTALLED_APPS)."""

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Needs django-prodserver: pip install 'django-prodserver>=3'."

    def add_arguments(self, parser):
        parser.add_argument("process_name", nargs="?")

    def handle(self, *args, **options):
        raise CommandError(
            "`manage.py worker` comes from django-prodserver, which is not installed. "
            "Install it (pip install 'django-prodserver>=3') and run "
            "`python manage.py worker scheduler` again, or run the scheduler "
            "without it: `python manage.py runscheduler`."
        )
