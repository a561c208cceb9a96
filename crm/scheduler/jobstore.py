"""django-apscheduler's job store, minus behaviours that lose data."""

import logging
import pickle

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.jobstores.base import JobLookupError
from django.db import DatabaseError
from django_apscheduler.models import DjangoJob
from django_apscheduler.util import get_django_internal_datetime

from crm.scheduler import history
from crm.scheduler.apscheduler_adapter import HookedDjangoJobStore
from crm.scheduler.connections import close_stale_connection, drop_connection, reconnecting
from crm.scheduler.declarations import declared_job, declared_jobs
from crm.scheduler.overlap import QUEUE

logger = logging.getLogger("crm.scheduler")


class KeepingDjangoJobStore(HookedDjangoJobStore):
    """A job that cannot be loaded (its pickled state refers to code that moved)
    is reported and skipped, not deleted together with its run history; and
    shutting down does not close a connection inside a transaction; and run
    history is written by the process running the job (crm.scheduler.history),
    so only the fires that never started are recorded from events here.

    Every method that reads or writes the store survives a lost connection
    (crm.scheduler.connections): django-apscheduler's own retry is bypassed
    by the `load_jobs` override, which left APScheduler's thread with a dead
    connection after a database restart."""

    read_failed = False  # whether the last look for due jobs failed

    def get_due_jobs(self, now):
        try:
            jobs = self._get_due_jobs(now)
        except DatabaseError:
            self.read_failed = True
            raise
        self.read_failed = False
        return jobs

    _get_due_jobs = reconnecting(HookedDjangoJobStore.get_due_jobs)
    get_next_run_time = reconnecting(HookedDjangoJobStore.get_next_run_time)
    lookup_job = reconnecting(HookedDjangoJobStore.lookup_job)
    get_all_jobs = reconnecting(HookedDjangoJobStore.get_all_jobs)

    @reconnecting
    def update_job(self, job):
        """One UPDATE in autocommit, not django-apscheduler's SELECT ... FOR
        UPDATE and save() in a transaction: each pass writes each fire's next
        run time, beside the run starting, and on SQLite a transaction holds
        the one write lock the run's history row waits for."""
        updated = DjangoJob.objects.filter(id=job.id).update(
            next_run_time=get_django_internal_datetime(job.next_run_time),
            job_state=pickle.dumps(job.__getstate__(), self.pickle_protocol),
        )
        if not updated:
            raise JobLookupError(job.id)

    _remove_job = reconnecting(HookedDjangoJobStore.remove_job)

    def remove_job(self, job_id):
        """APScheduler removes a job that will fire no more, and with it (by
        cascade) its run history: a declared one-shot job is kept instead, done."""
        declaration = declared_job(job_id)
        if declaration is None or declaration.run_at is None:
            self._remove_job(job_id)
            return
        job = self.lookup_job(job_id)
        if job is not None and job.next_run_time is not None:
            job.next_run_time = None
            self.update_job(job)

    def start(self, scheduler, alias):
        super().start(scheduler, alias)
        scheduler.add_listener(_record_fire_not_run, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)

    def register_event_listeners(self):
        """Not django-apscheduler's listeners, which record runs from events:
        `start` adds the one kept."""

    def load_jobs(self, **filters):
        jobs = []
        for job_id, job_state in DjangoJob.objects.filter(**filters).values_list("id", "job_state"):
            try:
                jobs.append(self.job_from_state(job_state))
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
        readable = {job.id for job in self.load_jobs()}
        return sorted(set(DjangoJob.objects.values_list("id", flat=True)) - readable)

    def shutdown(self):
        close_stale_connection()


def _record_fire_not_run(event) -> None:
    close_stale_connection()
    try:
        if event.code == EVENT_JOB_MISSED:
            grace = event.job_id and _grace_of(event.job_id)
            history.record_missed(event.job_id, event.scheduled_run_time, grace)
        else:
            declaration = declared_job(event.job_id)
            for fire_time in event.scheduled_run_times:
                if declaration is not None and declaration.overlap == QUEUE:
                    history.queue_fire(event.job_id, fire_time)
                else:
                    history.record_skipped(event.job_id, fire_time)
    except DatabaseError as error:
        drop_connection()
        logger.warning(
            "scheduler could not record a fire of %s that did not run: %s", event.job_id, error
        )


def _grace_of(job_id: str):
    declaration = declared_jobs().get(job_id)
    return declaration.misfire_grace_seconds if declaration else "?"
