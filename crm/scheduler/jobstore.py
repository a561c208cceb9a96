"""django-apscheduler's job store, minus two behaviours that lose data."""

import logging
import pickle

from django.db import close_old_connections, connection
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob

logger = logging.getLogger("crm.scheduler")


class KeepingDjangoJobStore(DjangoJobStore):
    """A job that cannot be loaded (its pickled state refers to code that moved)
    is reported and skipped, not deleted together with its run history; and
    shutting down does not close a connection inside a transaction."""

    def _get_jobs(self, **filters):
        jobs = []
        for job_id, job_state in DjangoJob.objects.filter(**filters).values_list("id", "job_state"):
            try:
                jobs.append(self._reconstitute_job(job_state))
            except (
                pickle.UnpicklingError,
                ImportError,
                AttributeError,
                EOFError,
                TypeError,
            ) as error:
                logger.error(
                    "scheduler cannot load stored job %r (%s); it is kept with its history. "
                    "Declare it again or remove it with `python manage.py scheduler sync`.",
                    job_id,
                    error,
                )
        return jobs

    def unreadable_job_ids(self) -> list[str]:
        readable = {job.id for job in self._get_jobs()}
        return sorted(set(DjangoJob.objects.values_list("id", flat=True)) - readable)

    def shutdown(self):
        if not connection.in_atomic_block:
            close_old_connections()
