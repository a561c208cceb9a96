"""Operate on the job store from any process (admin, command line). The active
scheduler re-reads the store every couple of seconds, so changes made here
take effect there without a restart."""

from contextlib import contextmanager

from crm.scheduler.declarations import declared_jobs
from crm.scheduler.jobstore import KeepingDjangoJobStore
from crm.scheduler.runner import SCHEDULER_CLOCK_ZONE
from crm.scheduler.sync import SyncReport, sync_jobs


class UnknownJob(LookupError):
    def __init__(self, job_id: str, known: list[str]):
        choices = f"Choose one of: {', '.join(sorted(known))}." if known else "No jobs exist yet."
        super().__init__(f"Unknown job {job_id!r}. {choices}")


@contextmanager
def job_store():
    """A scheduler that never runs anything, only reads and writes the store."""
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(
        jobstores={"default": KeepingDjangoJobStore()}, timezone=SCHEDULER_CLOCK_ZONE
    )
    scheduler.start(paused=True)
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)


def _stored_job(scheduler, job_id: str):
    job = scheduler.get_job(job_id)
    if job is None:
        raise UnknownJob(job_id, [stored.id for stored in scheduler.get_jobs()])
    return job


def pause_job(job_id: str):
    with job_store() as scheduler:
        _stored_job(scheduler, job_id).pause()
        return scheduler.get_job(job_id)


def resume_job(job_id: str):
    with job_store() as scheduler:
        _stored_job(scheduler, job_id).resume()
        return scheduler.get_job(job_id)


def sync(dry_run: bool = False) -> SyncReport:
    with job_store() as scheduler:
        return sync_jobs(scheduler, declared_jobs(), dry_run=dry_run)
