"""One pass of the scheduler, for hosts where cron starts it (`runscheduler --once`):
take the lease if free, run what is due and what was missed within its grace,
wait for those runs while renewing the lease, release it, and return."""

import logging
import threading
import time

from apscheduler.schedulers.base import STATE_RUNNING

from crm.scheduler import execution
from crm.scheduler.lease import current_holder
from crm.scheduler.runner import LEASE_NAME, SchedulerRunner
from crm.scheduler.schedulers import SafeBackgroundScheduler

logger = logging.getLogger("crm.scheduler")
FIRST_PASS_TIMEOUT = 60


class OnePassScheduler(SafeBackgroundScheduler):
    """Tells when it has looked for due jobs once."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.looked = threading.Event()

    def process_due_jobs(self):
        wait = super().process_due_jobs()
        if self.state == STATE_RUNNING:  # a real pass, not one skipped while paused
            self.looked.set()
        return wait


def run_once(runner: SchedulerRunner) -> str:
    """Returns a one-line account of what happened."""
    from crm.scheduler.checks import declaration_errors

    errors = declaration_errors()
    if errors:
        return f"Not run: {len(errors)} error(s) in the job declarations; see `manage.py check`."
    held = runner._try_acquire()
    if held is None:  # the server may have dropped the connection: once more, on a new one
        held = runner._try_acquire()
    if held is None:
        return (
            "The database is unreachable; nothing run. Check that the database server is "
            "running and DATABASE_URL points at it; the next pass catches up within the grace."
        )
    if not held:
        holder = current_holder(LEASE_NAME)
        who = f" (host {holder.host}, pid {holder.pid})" if holder else ""
        return f"Another scheduler is active{who}; nothing to do."
    execution.lease_guard["check"] = runner._lease_surely_held
    try:
        runner._activate(OnePassScheduler)
        scheduler = runner.scheduler
        if scheduler is None:
            return "The scheduler could not start; see logs/django.log."
        runner._take_commands()
        if not scheduler.looked.wait(FIRST_PASS_TIMEOUT):
            logger.warning(
                "scheduler --once: no pass over the due jobs within %ss", FIRST_PASS_TIMEOUT
            )
        scheduler.pause()
        _wait_for_runs(runner, scheduler)
        runner.scheduler = None
        scheduler.shutdown(wait=True)
        return "Ran the jobs that were due; lease released."
    finally:
        runner._release()


def _wait_for_runs(runner: SchedulerRunner, scheduler) -> None:
    """Keep the lease while submitted runs go on, so no standby takes over
    and marks them interrupted."""
    executor = scheduler.lookup_executor("default")
    next_renewal = time.monotonic() + runner.renew_every
    while executor.has_running_jobs():
        if time.monotonic() >= next_renewal:
            held = runner._try_acquire()
            if held is False or (held is None and not runner._lease_surely_held()):
                logger.warning("scheduler --once lost its lease while runs were going on")
                return
            # Not answered: try again soon, while the lease surely stays ours.
            next_renewal = time.monotonic() + (runner.renew_every if held else runner.standby_poll)
        time.sleep(0.2)
