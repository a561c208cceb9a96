from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

USERNAME = "admin"
PASSWORD = "admin"


class Command(BaseCommand):
    help = (
        "For local development: create the superuser admin/admin when DEBUG is on "
        "and no user exists yet. Does nothing otherwise."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        if not settings.DEBUG:
            self.stdout.write("No demo superuser: DEBUG is off.")
        elif User.objects.exists():
            self.stdout.write("No demo superuser: users already exist.")
        else:
            User.objects.create_superuser(USERNAME, "admin@example.com", PASSWORD)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Created demo superuser. Log in at /admin/ as {USERNAME} / {PASSWORD}."
                )
            )
