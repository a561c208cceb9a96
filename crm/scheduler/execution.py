"""How a stored job runs: every job in the store calls `run_declared_job` with
its id, so only declared jobs can run, and a job whose function went missing
stays in the store (with its history) instead of failing to load."""

import contextvars
import logging
import time
import traceback
from datetime import datetime

from apscheduler.executors.base import run_job
from apscheduler.executors.pool import ThreadPoolExecutor
from django.db import close_old_connections, connection
from django.utils.module_loading import import_string

from crm.scheduler import alerts
from crm.scheduler.signals import job_finished, job_started

logger = logging.getLogger("crm.scheduler")

scheduled_fire_time: contextvars.ContextVar[datetime | None] = contextvars.ContextVar(
    "scheduled_fire_time", default=None
)
# Set by the runner: returns False once this process may have lost the lease.
lease_guard = {"check": lambda: True}


class LeaseLost(RuntimeError):
    pass


def run_declared_job(job_id: str):
    from crm.scheduler.declarations import declared_jobs

    if not lease_guard["check"]():
        raise LeaseLost(f"Job {job_id} not run: this process may no longer hold the lease.")
    declaration = declared_jobs().get(job_id)
    if declaration is None:
        raise LookupError(f"Job {job_id} is in the job store but no longer declared.")
    func = import_string(declaration.func)
    scheduled_at = scheduled_fire_time.get()
    kwargs = dict(declaration.kwargs)
    if declaration.fire_time_kwarg:
        kwargs[declaration.fire_time_kwarg] = scheduled_at
    _drop_stale_connections()
    job_started.send(sender=run_declared_job, job_id=job_id, scheduled_at=scheduled_at)
    started = time.monotonic()
    outcome = {"status": "failed", "exception": None, "result": None}
    try:
        outcome["result"] = func(*declaration.args, **kwargs)
        outcome["status"] = "succeeded"
        return outcome["result"]
    except Exception as error:
        outcome["exception"] = error
        _report_failure(job_id, error)
        raise
    finally:
        job_finished.send(
            sender=run_declared_job,
            job_id=job_id,
            scheduled_at=scheduled_at,
            duration=time.monotonic() - started,
            **outcome,
        )
        _drop_stale_connections()


def _drop_stale_connections() -> None:
    # Never inside a transaction: tests wrap each test in one, and closing
    # there would break it.
    if not connection.in_atomic_block:
        close_old_connections()


def _report_failure(job_id: str, error: Exception) -> None:
    try:
        alerts.mail_failure(job_id, error, traceback.format_exc())
    except Exception:
        # A broken mail server must not hide the job's own error.
        logger.exception("scheduler could not mail ADMINS about the failure of %s", job_id)


def _run_with_fire_time(job, jobstore_alias, run_times, logger_name):
    scheduled_fire_time.set(run_times[-1])
    return run_job(job, jobstore_alias, run_times, logger_name)


class FireTimeThreadPoolExecutor(ThreadPoolExecutor):
    """A thread pool that tells the job which fire time it serves."""

    def _do_submit_job(self, job, run_times):
        def callback(future):
            error = future.exception()
            if error:
                self._run_job_error(job.id, error, error.__traceback__)
            else:
                self._run_job_success(job.id, future.result())

        future = self._pool.submit(
            contextvars.copy_context().run,
            _run_with_fire_time,
            job,
            job._jobstore_alias,
            run_times,
            self._logger.name,
        )
        future.add_done_callback(callback)
