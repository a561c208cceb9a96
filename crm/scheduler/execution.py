"""How a stored job runs: every job in the store calls `run_declared_job` with
its id, so only declared jobs can run, and a job whose function went missing
stays in the store (with its history) instead of failing to load."""

import contextvars
import logging
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DatabaseError
from django.utils import timezone
from django.utils.module_loading import import_string

from crm.scheduler import alerts, commands, history, recovery
from crm.scheduler.apscheduler_adapter import HookedExecutor
from crm.scheduler.connections import (
    CONNECTION_ERRORS,
    close_stale_connection,
    drop_connection,
    reconnecting,
)
from crm.scheduler.history import BY_SCHEDULE
from crm.scheduler.signals import job_finished, job_started

logger = logging.getLogger("crm.scheduler")

scheduled_fire_time: contextvars.ContextVar[datetime | None] = contextvars.ContextVar(
    "scheduled_fire_time", default=None
)
# Set by the runner: returns False once this process may have lost the lease.
lease_guard = {"check": lambda: True}


class LeaseLost(RuntimeError):
    pass


@dataclass(frozen=True)
class RunContext:
    """Which process runs jobs, for the run history."""

    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    scheduler: str = ""  # the lease token when the active scheduler runs it


# Set by the runner when this process becomes the active scheduler.
run_context = {"current": RunContext()}
# History rows of the runs going on in this process.
_running: set[int] = set()
_running_lock = threading.Lock()


def runs_in_progress() -> frozenset[int]:
    """The runs this process has started and not yet recorded the end of."""
    with _running_lock:
        going = set(_running)
    return frozenset(going | history.unrecorded_execution_ids())


def run_declared_job(job_id: str, triggered_by: str = BY_SCHEDULE, command_id: int | None = None):
    """Run a declared job once and record the run. Returns what the job returned;
    raises what it raised (after recording it). A fire that already has a
    history row is not run again, nor anything once this process may have
    lost the lease (both return None)."""
    from crm.scheduler.declarations import declared_job

    if not lease_guard["check"]():
        # Expected when a scheduler stops or loses its lease as a fire falls
        # due: the next active scheduler runs it. A warning, not an error.
        refused = LeaseLost(f"Job {job_id} not run: this process may no longer hold the lease.")
        logger.warning("%s The next active scheduler runs it.", refused)
        if command_id is not None:
            commands.finish(command_id, None, "failed", refused)
        return None
    declaration = declared_job(job_id)
    if declaration is None:
        raise LookupError(f"Job {job_id} is in the job store but no longer declared.")
    func = import_string(declaration.func)
    scheduled_at = scheduled_fire_time.get() or timezone.now()
    kwargs = dict(declaration.kwargs)
    if declaration.fire_time_kwarg:
        kwargs[declaration.fire_time_kwarg] = scheduled_at
    close_stale_connection()
    context = run_context["current"]
    try:
        run = reconnecting(history.start_run)(
            job_id,
            scheduled_at,
            triggered_by,
            host=context.host,
            pid=context.pid,
            scheduler=context.scheduler,
        )
    except CONNECTION_ERRORS as error:
        # Not run, and no row says it was: the scheduler runs it once the
        # database answers, within its grace (crm.scheduler.recovery).
        logger.warning(
            "job %s: the fire of %s not started, the database did not answer: %s",
            job_id,
            scheduled_at.isoformat(),
            error,
        )
        recovery.outages.note(scheduled_at)
        raise
    if run is None:
        logger.warning(
            "job %s: the fire of %s has already run; not running it again",
            job_id,
            scheduled_at.isoformat(),
        )
        close_stale_connection()
        return None
    with _running_lock:
        _running.add(run.execution.pk)
    job_started.send(sender=run_declared_job, job_id=job_id, scheduled_at=scheduled_at)
    started = time.monotonic()
    outcome = {"status": "failed", "exception": None, "result": None}
    try:
        outcome["result"] = func(*declaration.args, **kwargs)
        outcome["status"] = "succeeded"
        history.finish_run(run, status=history.SUCCEEDED, result=outcome["result"])
        return outcome["result"]
    except Exception as error:
        outcome["exception"] = error
        details = traceback.format_exc()
        history.finish_run(run, status=history.FAILED, error=error, traceback_text=details)
        raise
    finally:
        with _running_lock:
            _running.discard(run.execution.pk)
        _finish_command(command_id, run.execution.pk, outcome)
        job_finished.send(
            sender=run_declared_job,
            job_id=job_id,
            scheduled_at=scheduled_at,
            duration=time.monotonic() - started,
            **outcome,
        )
        check_alerts([job_id])
        close_stale_connection()


def _finish_command(command_id: int | None, execution_id: int, outcome: dict) -> None:
    if command_id is None:
        return
    try:
        commands.finish(command_id, execution_id, outcome["status"], outcome["exception"])
    except DatabaseError as error:
        drop_connection()
        logger.warning(
            "scheduler could not mark run-now command %s finished: %s", command_id, error
        )


def check_alerts(job_ids: list[str] | None = None) -> None:
    try:
        alerts.check(job_ids)
    except CONNECTION_ERRORS as error:
        drop_connection()
        logger.warning("scheduler could not check alerts: %s", error)
    except Exception:
        # A broken mail server or database must not hide the job's own outcome,
        # nor stop the scheduler.
        logger.exception("scheduler could not check or mail alerts")


class FireTimeThreadExecutor(HookedExecutor):
    """Runs each job in a daemon thread of its own and tells it which fire time
    it serves.

    Not concurrent.futures' pool: Python joins those threads at interpreter exit,
    before atexit handlers, so a process asked to stop (SIGTERM to runscheduler,
    a gunicorn worker recycling) stayed alive, lease released, for as long as a
    job ran, while a standby started the same job. The runner waits a bounded
    time for running jobs instead (SCHEDULER_SHUTDOWN_WAIT_SECONDS); a run still
    going after that ends with the process and is marked interrupted.
    """

    def __init__(self):
        super().__init__()
        self._threads: set[threading.Thread] = set()

    def start_run(self, job, run_times):
        def run():
            scheduled_fire_time.set(run_times[-1])
            try:
                self.run_and_report(job, run_times)
            finally:
                self._threads.discard(threading.current_thread())
                drop_connection()  # this thread's own (kept with CONN_MAX_AGE); it ends here

        thread = threading.Thread(
            target=contextvars.copy_context().run, args=(run,), name=f"job {job.id}", daemon=True
        )
        self._threads.add(thread)
        thread.start()

    def shutdown(self, wait=True):
        if wait:
            for thread in list(self._threads):
                thread.join()
