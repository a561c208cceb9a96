"""APScheduler's BackgroundScheduler, minus a shutdown race that loses fires.

APScheduler 3 sets the state to stopped, shuts the executors down and wakes its
thread, which then processes due jobs once more (only a paused scheduler skips
that): the submission fails, yet the job's next run time is advanced, so that
fire is neither run nor recorded. Here due jobs are processed only while the
scheduler is running, checked under the lock that shutdown takes first.
"""

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from django.db import connection


class ClosingBackgroundScheduler(BackgroundScheduler):
    """Closes its thread's database connection when the thread ends, so a
    scheduler stopped on losing the lease leaves no connection behind."""

    def _main_loop(self):
        try:
            super()._main_loop()
        finally:
            connection.close()


class SafeBackgroundScheduler(ClosingBackgroundScheduler):
    def _process_jobs(self):
        with self._jobstores_lock:
            if self.state != STATE_RUNNING:
                return None
            return super()._process_jobs()


class StoreOnlyScheduler(ClosingBackgroundScheduler):
    """Reads and writes the job store (for other processes: sync, pause, resume)
    and never runs, skips or reschedules a due job."""

    def _process_jobs(self):
        return None
