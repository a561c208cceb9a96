"""Permissions for the admin's scheduler actions, on django-apscheduler's job model.

Created after every migrate (and after the test database is flushed), as
Django creates the default ones; superusers have them all.
"""

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType

JOB_PERMISSIONS = {
    "run_djangojob": "Can run scheduled jobs now",
    "pause_djangojob": "Can pause scheduled jobs",
    "resume_djangojob": "Can resume scheduled jobs",
}


def create_job_permissions(using="default", **kwargs) -> None:
    from django_apscheduler.models import DjangoJob

    job_type = ContentType.objects.db_manager(using).get_for_model(DjangoJob)
    for codename, name in JOB_PERMISSIONS.items():
        Permission.objects.using(using).get_or_create(
            content_type=job_type, codename=codename, defaults={"name": name}
        )
