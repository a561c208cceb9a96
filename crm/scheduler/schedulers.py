"""APScheduler's BackgroundScheduler, minus what loses fires or stops it silently.

* A shutdown race: APScheduler 3 sets the state to stopped, shuts the executors
  down and wakes its thread, which then processes due jobs once more (only a
  paused scheduler skips that): the submission fails, yet the job's next run
  time is advanced, so that fire is neither run nor recorded. Here due jobs are
  processed only while the scheduler is running, checked under the lock that
  shutdown takes first.
* A pass that raises (the database went away while a job's next run time was
  written) ended APScheduler's thread for good. Here it is logged and retried
  a second later on a new connection.
* Nobody could tell a dispatch loop that no longer reads the store from a
  working one. Here each pass that read the store sets `last_pass`, which the
  lease keeper publishes with the lease (crm.scheduler.status: "stalled").
"""

import logging
import time
from datetime import UTC, datetime

from apscheduler.executors.base import MaxInstancesReachedError
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from django.db import connection

from crm.scheduler.connections import drop_connection

logger = logging.getLogger("crm.scheduler")
RETRY_SECONDS = 1.0


class ClosingBackgroundScheduler(BackgroundScheduler):
    """Closes its thread's database connection when the thread ends, so a
    scheduler stopped on losing the lease leaves no connection behind."""

    def _main_loop(self):
        try:
            super()._main_loop()
        finally:
            connection.close()


class SafeBackgroundScheduler(ClosingBackgroundScheduler):
    def __init__(self, *args, may_dispatch=None, on_outage=None, **kwargs):
        """`may_dispatch()` is asked before each pass (the lease may be lost,
        the clock off); `on_outage(since)` is called once when passes start
        failing (the database went away), with the time they started to."""
        super().__init__(*args, **kwargs)
        self.may_dispatch = may_dispatch or (lambda: True)
        self.on_outage = on_outage or (lambda since: None)
        self.last_pass: float | None = None  # monotonic
        self._store_failing = False

    def submit_once(self, job: Job, run_time: datetime, **kwargs) -> bool:
        """Hand `job` to its executor once, for `run_time`, without touching
        its schedule; `kwargs` go to the job's function. False if the job is
        running already (its max_instances)."""
        single = Job.__new__(Job)
        single.__setstate__(job.__getstate__())
        single._scheduler, single._jobstore_alias = self, job._jobstore_alias
        single.kwargs = kwargs
        single.misfire_grace_time = None
        try:
            self._lookup_executor(job.executor).submit_job(single, [run_time])
        except MaxInstancesReachedError:
            return False
        return True

    def _process_jobs(self):
        with self._jobstores_lock:
            if self.state != STATE_RUNNING:
                return None
            if not self.may_dispatch():
                return RETRY_SECONDS
            started = datetime.now(UTC)
            try:
                wait = super()._process_jobs()
            except Exception as error:
                drop_connection()
                logger.warning("scheduler pass failed (%s); retrying in %g s", error, RETRY_SECONDS)
                self._failed(started)
                return RETRY_SECONDS
            if any(getattr(store, "read_failed", False) for store in self._jobstores.values()):
                self._failed(started)
                return RETRY_SECONDS
            self.last_pass = time.monotonic()
            if self._store_failing:
                self._store_failing = False
                logger.info("scheduler reads its job store again")
            return wait

    def _failed(self, since: datetime) -> None:
        if not self._store_failing:
            self._store_failing = True
            self.on_outage(since)


class StoreOnlyScheduler(ClosingBackgroundScheduler):
    """Reads and writes the job store (for other processes: sync, pause, resume)
    and never runs, skips or reschedules a due job."""

    def _process_jobs(self):
        return None
