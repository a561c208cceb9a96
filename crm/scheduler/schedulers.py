"""APScheduler's BackgroundScheduler, minus what loses fires or stops it silently,
and `build_scheduler`, which makes every APScheduler instance the app uses.

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

import enum
import logging
import threading
import time
from datetime import UTC, datetime

from apscheduler.schedulers.base import STATE_RUNNING
from django.db import connection

from crm.scheduler.apscheduler_adapter import HookedBackgroundScheduler
from crm.scheduler.connections import drop_connection
from crm.scheduler.jobstore import KeepingDjangoJobStore

logger = logging.getLogger("crm.scheduler")
RETRY_SECONDS = 1.0
# APScheduler compares run times with `now` in its own zone; aware datetimes that
# share a zone compare as wall clock, which is wrong in a repeated hour. In UTC
# there is none. Each trigger carries its own zone (TIME_ZONE or per job).
SCHEDULER_CLOCK_ZONE = "UTC"


class ClosingBackgroundScheduler(HookedBackgroundScheduler):
    """Closes its thread's database connection when the thread ends, so a
    scheduler stopped on losing the lease leaves no connection behind."""

    def thread_ended(self):
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

    def process_due_jobs(self):
        with self.jobstores_lock:
            if self.state != STATE_RUNNING:
                return None
            if not self.may_dispatch():
                return RETRY_SECONDS
            started = datetime.now(UTC)
            try:
                wait = super().process_due_jobs()
            except Exception as error:
                drop_connection()
                logger.warning("scheduler pass failed (%s); retrying in %g s", error, RETRY_SECONDS)
                self._failed(started)
                return RETRY_SECONDS
            if any(getattr(store, "read_failed", False) for store in self.job_stores()):
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

    def process_due_jobs(self):
        return None


class OnePassScheduler(SafeBackgroundScheduler):
    """Tells when it has looked for due jobs once (`runscheduler --once`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.looked = threading.Event()

    def process_due_jobs(self):
        wait = super().process_due_jobs()
        if self.state == STATE_RUNNING:  # a real pass, not one skipped while paused
            self.looked.set()
        return wait


class Mode(enum.Enum):
    CONTINUOUS = SafeBackgroundScheduler  # the active scheduler of a web process or runscheduler
    ONE_PASS = OnePassScheduler  # runscheduler --once
    STORE_ONLY = StoreOnlyScheduler  # pause, resume and sync from a process with no scheduler


def build_scheduler(mode: Mode, executor=None, **hooks) -> ClosingBackgroundScheduler:
    """An APScheduler instance on the Django job store, not started. `executor`
    runs the jobs (none for STORE_ONLY); `hooks` are SafeBackgroundScheduler's."""
    return mode.value(
        jobstores={"default": KeepingDjangoJobStore()},
        executors={"default": executor} if executor is not None else {},
        job_defaults={"coalesce": True, "max_instances": 1},
        timezone=SCHEDULER_CLOCK_ZONE,
        **hooks,
    )
