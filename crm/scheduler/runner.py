"""One scheduler's life in a process: lease, APScheduler instance, executor,
run context, command intake and shutdown, owned by `SchedulerRunner`.

Two modes: continuous (web processes and `runscheduler`: `start()` or
`run_in_foreground()`) and one pass (`runscheduler --once`: `run_one_pass()`).
Exactly one scheduler is active across every process sharing the database.

In continuous mode a process starts one thread, the lease keeper. While the
lease is held by someone else it only retries now and then (a cheap standby:
no scheduler, no job threads). Of the standbys, one at a time is next in line
(it holds the NEXT_IN_LINE lease): it watches the lease closely, so that it
takes over within a quarter of a second of a clean stop, and checks alerts.
The others only look, every half lease, whether the next in line is still
there, and take its place if not: with 30 web processes, the database answers
one close watcher, not 30. When it takes the lease it starts APScheduler
on the database job store, syncs the declarations, and renews the lease; if a
renewal fails, or cannot be confirmed in time, it stops dispatching jobs before
the lease can pass to another process.

Every thread here survives a lost database connection (crm.scheduler.connections).
A host whose wall clock is off from the database's by more than
SCHEDULER_MAX_CLOCK_SKEW_SECONDS runs nothing and gives the lease up: fire times
come from the wall clock, and a clock hours ahead would run hours of fires at
once and push every next run time hours away.
"""

import atexit
import logging
import threading
import time
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connection

from crm.scheduler import alerts, history, intake, isolation, overlap, pings, recovery, retries
from crm.scheduler.checks import declaration_errors
from crm.scheduler.connections import close_unusable_connection, drop_connection
from crm.scheduler.declarations import declared_jobs
from crm.scheduler.execution import FireTimeThreadExecutor, RunContext
from crm.scheduler.lease import LEASE_NAME, NEXT_IN_LINE, Holder, Lease, current_holder
from crm.scheduler.recovery import OutageLog
from crm.scheduler.schedulers import Mode, build_scheduler
from crm.scheduler.sync import sync_jobs
from crm.scheduler.tracking import RunsInProcess

logger = logging.getLogger("crm.scheduler")
# How long --once waits for the scheduler's first pass over the due jobs.
FIRST_PASS_TIMEOUT = 60
# How long a stop waits for the runs whose processes it killed to be recorded.
CHILD_END_WAIT = 2


class SchedulerRunner:
    def __init__(self):
        holder = Holder.of_this_process()
        self.lease_duration = timedelta(seconds=settings.SCHEDULER_LEASE_SECONDS)
        self.renew_every = self.lease_duration.total_seconds() / 3
        # The active scheduler re-reads the job store this often.
        # Also how often it takes commands (run now, pause, ...) from other processes.
        self.store_poll = min(1.0, self.renew_every)
        # A standby notices a lease given up on a clean stop within this: well
        # under a second, so that a job firing every second loses no fire to
        # a handover (fires due while none is active are coalesced). A read.
        self.standby_poll = min(0.25, self.renew_every)
        # The other standbys look this often whether the next in line is still there.
        self.in_line_poll = self.lease_duration.total_seconds() / 2
        self.shutdown_wait = settings.SCHEDULER_SHUTDOWN_WAIT_SECONDS
        self.max_clock_skew = settings.SCHEDULER_MAX_CLOCK_SKEW_SECONDS
        self.lease = Lease(LEASE_NAME, self.lease_duration, holder)
        self.in_line = Lease(NEXT_IN_LINE, self.lease_duration, holder)
        self._in_line_renewal = 0.0
        self.scheduler = None
        # Outlive each activation: see crm.scheduler.tracking and .recovery.
        self.runs = RunsInProcess()
        self.outages = OutageLog()
        self.children = isolation.ChildRuns()
        holder = self.lease.holder
        self.elsewhere = overlap.RunsElsewhere(
            host=holder.host, pid=holder.pid, live_within=self.lease_duration
        )
        self._stopping = threading.Event()
        self._nudge = threading.Event()  # stop, or try the lease now
        self._retry_now = False
        self._thread = None
        self._waiting_logged = False
        self._next_alert_check = 0.0
        self._alert_check = None
        self._skew_logged = False
        self._next_beat = 0.0
        self.heartbeat = pings.Heartbeat()

    @property
    def active(self) -> bool:
        return self.scheduler is not None

    def holds(self, lease_row) -> bool:
        """Whether a lease row (crm.scheduler.lease.current_holder) is this process's."""
        holder = self.lease.holder
        return (lease_row.host, lease_row.pid) == (holder.host, holder.pid)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._keep_lease, name="crm-scheduler", daemon=True)
        self._thread.start()
        atexit.register(self.stop)

    def run_in_foreground(self) -> None:
        self._keep_lease()

    def run_one_pass(self) -> str:
        """Take the lease if free, run what is due and what was missed within its
        grace, wait for those runs while renewing the lease, release it. Returns
        a one-line account of what happened."""
        errors = declaration_errors()
        if errors:
            return (
                f"Not run: {len(errors)} error(s) in the job declarations; see `manage.py check`."
            )
        held = self._try_acquire()
        if held is None:  # the server may have dropped the connection: once more, on a new one
            held = self._try_acquire()
        if held is None:
            return (
                "The database is unreachable; nothing run. Check that the database server is "
                "running and DATABASE_URL points at it; the next pass catches up within the grace."
            )
        if not held:
            holder = current_holder(LEASE_NAME)
            who = f" (host {holder.host}, pid {holder.pid})" if holder else ""
            return f"Another scheduler is active{who}; nothing to do."
        try:
            self._activate(Mode.ONE_PASS)
            scheduler = self.scheduler
            if scheduler is None:
                return "The scheduler could not start; see logs/django.log."
            self._take_commands()
            self._start_waiting_fires()
            if not scheduler.looked.wait(FIRST_PASS_TIMEOUT):
                logger.warning(
                    "scheduler --once: no pass over the due jobs within %ss", FIRST_PASS_TIMEOUT
                )
            dispatched = scheduler.looked.is_set()
            scheduler.pause()
            self._wait_for_runs(scheduler)
            self.scheduler = None
            scheduler.shutdown(wait=True)
            self._record_unrecorded_runs()
            # Each pass is a beat: a monitor whose period is the cron interval
            # notices when the passes stop (sent before the process exits).
            holder = self.lease.holder
            self.heartbeat.beat_if_due(dispatched, f"host {holder.host}, pid {holder.pid}")
            return "Ran the jobs that were due; lease released."
        finally:
            self._release()

    def request_stop(self) -> None:
        """Safe from a signal handler: only sets a flag the lease keeper checks."""
        self._stopping.set()
        self._nudge.set()

    def wake(self) -> None:
        """Try to take the lease now instead of at the next standby poll."""
        self._retry_now = True
        self._nudge.set()

    def stop(self) -> None:
        """Take no new runs, wait a bounded time for running ones, release the lease."""
        self.request_stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.shutdown_wait + self.renew_every + 5)

    def _lease_surely_held(self) -> bool:
        """Checked by each run as it starts: a fire already dispatched runs
        even as the process stops (the stop waits for it), unless the lease
        may have passed on."""
        return self.lease.surely_held(timedelta(seconds=self.renew_every))

    def _lease_still_safe(self) -> bool:
        return not self._stopping.is_set() and self._lease_surely_held()

    def _may_dispatch(self) -> bool:
        """Checked before each pass over the due jobs: nothing is dispatched
        once a stop was asked for, so no fire is handed on and then refused."""
        return self._lease_still_safe() and not self._clock_skewed()

    def _clock_skewed(self) -> bool:
        offset = self.lease.clock_offset()
        skewed = offset is not None and abs(offset) > self.max_clock_skew
        if skewed and not self._skew_logged:
            logger.error(
                "scheduler: this host's clock is %.0f s %s the database's (more than "
                "SCHEDULER_MAX_CLOCK_SKEW_SECONDS=%s); running no jobs here until it is "
                "corrected. Check NTP (timedatectl status).",
                abs(offset),
                "ahead of" if offset > 0 else "behind",
                self.max_clock_skew,
            )
        if not skewed and self._skew_logged:
            logger.info("scheduler: this host's clock agrees with the database's again")
        self._skew_logged = skewed
        return skewed

    def _keep_lease(self) -> None:
        # Started from CrmConfig.ready(): let Django finish loading the apps
        # after crm before touching the database.
        while not apps.ready and not self._stopping.wait(0.05):
            pass
        errors = declaration_errors()
        if errors:
            logger.error(
                "scheduler not started: %d error(s) in the job declarations; "
                "run `python manage.py check` for details (first: %s)",
                len(errors),
                errors[0].msg,
            )
            return
        try:
            next_attempt = 0.0
            while not self._stopping.is_set():
                if self._retry_now or time.monotonic() >= next_attempt:
                    woken, self._retry_now = self._retry_now, False
                    watching = self.active or woken or self._watch_lease() is not False
                    held = self._try_acquire() if watching else False
                    if held:
                        self._leave_line()
                    next_attempt = time.monotonic() + (
                        self.renew_every
                        if held
                        else self.standby_poll
                        if watching
                        else self.in_line_poll
                    )
                    if held is None:
                        # The database did not answer: keep dispatching while
                        # the lease surely stays ours, and try again soon.
                        held = self.active and self._lease_still_safe()
                    if held and self._clock_skewed():
                        held = False
                        self._deactivate()
                        self._release()
                        next_attempt = time.monotonic() + self.lease_duration.total_seconds()
                    self._follow_lease(held)
                if self.scheduler is not None:
                    self._refresh_runs_elsewhere()
                    self._take_commands()
                    self._start_waiting_fires()
                    self._recover_after_outage()
                    self.scheduler.wakeup()
                    self._ping_heartbeat_now_and_then()
                self._record_unrecorded_runs()
                self._beat_now_and_then()
                self._check_alerts_now_and_then()
                pause = max(0.0, next_attempt - time.monotonic())
                self._nudge.wait(min(pause, self.store_poll) if self.active else pause)
                self._nudge.clear()
        finally:
            self._deactivate()
            self._record_unrecorded_runs()
            self._abandon_own_runs()
            self._release()
            self._leave_line()
            connection.close()  # this thread's own; it ends here

    def _watch_lease(self) -> bool | None:
        """Whether this standby is the next in line, and so watches the lease
        closely (taking that place if it is free); None if the database did not
        answer (then it watches: the lease keeper deals with the outage)."""
        if self.in_line.renewed_at and time.monotonic() < self._in_line_renewal:
            return True
        try:
            first = self.in_line.acquire()
        except DatabaseError:
            drop_connection()
            return None
        finally:
            close_unusable_connection()
        if not first:
            # Looks every half lease need no connection of their own meanwhile:
            # 30 web processes must not hold 30 (hosts limit them per user).
            drop_connection()
        self._in_line_renewal = time.monotonic() + self.renew_every
        return first

    def _leave_line(self) -> None:
        if not self.in_line.renewed_at:
            return
        try:
            self.in_line.release()
        except DatabaseError:
            self.in_line.renewed_at = None  # it expires on its own
            drop_connection()
        finally:
            close_unusable_connection()

    def _follow_lease(self, held: bool) -> None:
        if held and not self.active:
            self._activate()
        elif not held and self.active:
            logger.warning("scheduler lost its lease; no new runs in this process")
            self._deactivate()

    def _refresh_runs_elsewhere(self) -> None:
        try:
            self.elsewhere.refresh()
        except DatabaseError:
            drop_connection()  # the last look stands until the next pass
        finally:
            close_unusable_connection()

    def _take_commands(self) -> None:
        try:
            intake.apply_pending(self.scheduler)
            intake.resume_ended_pauses(self.scheduler)
        except DatabaseError as error:
            logger.warning("scheduler could not read commands: %s", error)
            drop_connection()
        finally:
            close_unusable_connection()

    def _start_waiting_fires(self) -> None:
        try:
            retries.start_due(self.scheduler)
            overlap.start_queued(self.scheduler)
        except DatabaseError as error:
            logger.warning("scheduler could not look for fires waiting to run: %s", error)
            drop_connection()
        finally:
            close_unusable_connection()

    def _beat_now_and_then(self) -> None:
        """Say which runs go on here, so that a scheduler in another process
        counts them as running (and does not mark them interrupted); the active
        one also marks the runs of processes that stopped saying so."""
        if time.monotonic() < self._next_beat:
            return
        self._next_beat = time.monotonic() + self.renew_every
        try:
            going = self.runs.going()
            if going:
                history.beat(going)
            if self.active:
                self._mark_interrupted_runs()
        except DatabaseError:
            drop_connection()
        finally:
            close_unusable_connection()

    def _mark_interrupted_runs(self) -> None:
        interrupted = history.mark_interrupted_runs(
            self.lease.previous_holder,
            still_going=self.runs.in_progress(),
            live_within=self.lease_duration,
        )
        if interrupted:
            logger.warning("scheduler marked %d unfinished run(s) as interrupted", interrupted)

    def _abandon_own_runs(self) -> None:
        """On the way out: the runs still going here end with the process."""
        going = self.runs.going()
        if not going:
            return
        try:
            history.mark_own_runs_interrupted(going, self.lease.holder)
        except DatabaseError:
            drop_connection()  # the next active scheduler marks them
        finally:
            close_unusable_connection()

    def _recover_after_outage(self) -> None:
        since = self.outages.take()
        if since is None:
            return
        try:
            recovery.recover(self.scheduler, since - timedelta(seconds=self.renew_every))
        except DatabaseError:
            self.outages.note(since)  # still away: again next time
            drop_connection()
        finally:
            close_unusable_connection()

    def _record_unrecorded_runs(self) -> None:
        try:
            self.runs.record_unrecorded_ends()
        finally:
            close_unusable_connection()

    def _check_alerts_now_and_then(self) -> None:
        # In a thread of its own: a slow mail server must not delay the lease.
        # The next in line checks too: when no scheduler is active, jobs fall late.
        if not (self.active or self.in_line.renewed_at):
            return
        if time.monotonic() < self._next_alert_check or (
            self._alert_check is not None and self._alert_check.is_alive()
        ):
            return
        self._next_alert_check = time.monotonic() + settings.SCHEDULER_ALERT_CHECK_SECONDS
        self._alert_check = threading.Thread(
            target=self._check_alerts, name="crm-scheduler-alerts", daemon=True
        )
        self._alert_check.start()

    @staticmethod
    def _check_alerts() -> None:
        try:
            alerts.check_safely()
        finally:
            connection.close()  # this thread's own; it ends here

    def _ping_heartbeat_now_and_then(self) -> None:
        # Only while it dispatches: a stalled scheduler falls silent too.
        ago = self._dispatched_seconds_ago()
        dispatching = ago is not None and ago < settings.SCHEDULER_STALL_SECONDS
        holder = self.lease.holder
        self.heartbeat.beat_if_due(
            dispatching and self._lease_still_safe(), f"host {holder.host}, pid {holder.pid}"
        )

    def _dispatched_seconds_ago(self) -> float | None:
        last_pass = self.scheduler.last_pass if self.scheduler is not None else None
        return None if last_pass is None else max(0.0, time.monotonic() - last_pass)

    def _try_acquire(self) -> bool | None:
        """Whether this process holds the lease now; None if the database did not answer."""
        try:
            held = self.lease.acquire(self._dispatched_seconds_ago())
        except DatabaseError as error:
            # Before `migrate` the table is missing; the database may be down.
            if not self._waiting_logged:
                logger.warning("scheduler waiting for the database: %s", error)
                self._waiting_logged = True
            drop_connection()
            return None
        finally:
            close_unusable_connection()
        if self._waiting_logged:
            logger.info("scheduler reaches the database again")
        self._waiting_logged = False
        return held

    def _run_context(self) -> RunContext:
        holder = self.lease.holder
        return RunContext(
            host=holder.host,
            pid=holder.pid,
            scheduler=holder.token,
            may_run=self._lease_surely_held,
            runs=self.runs,
            not_started=self.outages.note,
            stopping=self._stopping,
            children=self.children,
            running_elsewhere=self._running_elsewhere,
        )

    def _running_elsewhere(self, job_id: str) -> int:
        try:
            return self.elsewhere.count(job_id)
        except DatabaseError:
            drop_connection()
            return 0  # the run's own start then meets the outage (crm.scheduler.recovery)

    def _activate(self, mode: Mode = Mode.CONTINUOUS) -> None:
        scheduler = build_scheduler(
            mode,
            FireTimeThreadExecutor(self._run_context()),
            may_dispatch=self._may_dispatch,
            on_outage=self.outages.note,
        )
        try:
            self._mark_interrupted_runs()
            self.elsewhere.refresh()
            scheduler.start(paused=True)
            report = sync_jobs(scheduler, declared_jobs())
            if self.lease.previous_heartbeat is not None:
                # Fires the previous holder dispatched in its last moments.
                recovery.recover(scheduler, self.lease.previous_heartbeat - self.lease_duration)
            scheduler.resume()
        except DatabaseError as error:
            logger.warning("scheduler could not start (%s); releasing the lease", error)
            drop_connection()
            self._give_up(scheduler)
            return
        except Exception:
            logger.exception("scheduler could not start; releasing the lease")
            self._give_up(scheduler)
            return
        self.scheduler = scheduler
        logger.info(
            "scheduler active in this process (host %s, pid %s); sync: %s",
            self.lease.holder.host,
            self.lease.holder.pid,
            report,
        )

    def _give_up(self, scheduler) -> None:
        scheduler.shutdown(wait=False)
        self._release()

    def _deactivate(self) -> None:
        if self.scheduler is None:
            return
        scheduler, self.scheduler = self.scheduler, None
        scheduler.pause()
        waiter = threading.Thread(target=scheduler.shutdown, kwargs={"wait": True}, daemon=True)
        waiter.start()
        waiter.join(self.shutdown_wait)
        if waiter.is_alive() and self.children.stop_all(
            "Interrupted: the scheduler stopped while it ran, and killed its process after "
            f"SCHEDULER_SHUTDOWN_WAIT_SECONDS={self.shutdown_wait}."
        ):
            waiter.join(CHILD_END_WAIT)  # for the killed runs to be recorded
        if waiter.is_alive():
            logger.warning(
                "scheduler stopped with jobs still running after %ss", self.shutdown_wait
            )
        else:
            logger.info("scheduler stopped")

    def _release(self) -> None:
        try:
            self.lease.release()
        except DatabaseError:
            logger.warning("scheduler could not release its lease; it expires on its own")
            self.lease.renewed_at = None
            drop_connection()
        finally:
            close_unusable_connection()

    def _wait_for_runs(self, scheduler) -> None:
        """Keep the lease while submitted runs go on, so no standby takes over
        and marks them interrupted."""
        executor = scheduler.lookup_executor("default")
        next_renewal = time.monotonic() + self.renew_every
        while executor.has_running_jobs():
            if time.monotonic() >= next_renewal:
                held = self._try_acquire()
                if held is False or (held is None and not self._lease_surely_held()):
                    logger.warning("scheduler --once lost its lease while runs were going on")
                    return
                # Not answered: try again soon, while the lease surely stays ours.
                next_renewal = time.monotonic() + (self.renew_every if held else self.standby_poll)
            time.sleep(0.2)
