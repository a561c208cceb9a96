"""How a stored job runs: every job in the store calls `run_declared_job` with
its id, so only declared jobs can run, and a job whose function went missing
stays in the store (with its history) instead of failing to load.

A run learns who runs it from the `RunContext` its executor was built with
(the active scheduler's lease check, its token, its runs in progress), and
tells how it went through the signals in crm.scheduler.signals; it calls
nothing above it (crm.scheduler.receivers finishes commands and checks alerts).
"""

import contextvars
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone
from django.utils.module_loading import import_string

from crm.scheduler import history, isolation, retries, run_label
from crm.scheduler.apscheduler_adapter import HookedExecutor
from crm.scheduler.connections import (
    CONNECTION_ERRORS,
    close_unusable_connection,
    reconnecting,
)
from crm.scheduler.declarations import JobDeclaration, declared_job
from crm.scheduler.history import BY_SCHEDULE
from crm.scheduler.overlap import QUEUE
from crm.scheduler.signals import job_finished, job_started, run_refused
from crm.scheduler.tracking import RunsInProcess
from crm.scheduler.workers import WorkerThreads

logger = logging.getLogger("crm.scheduler")


class LeaseLost(RuntimeError):
    pass


def _always() -> bool:
    return True


def _ignore(fire_time: datetime) -> None:
    pass


def _none_elsewhere(job_id: str) -> int:
    return 0


@dataclass(frozen=True)
class RunContext:
    """Who runs a job: written to its history, and asked before it starts.

    The default is a run by hand in this process (`scheduler run --here`):
    no lease to check, no scheduler token."""

    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    scheduler: str = ""  # the lease token when the active scheduler runs it
    may_run: Callable[[], bool] = _always  # False once the lease may have passed on
    runs: RunsInProcess = field(default_factory=RunsInProcess)
    # Told the fire time of a fire that could not start because the database
    # did not answer: the scheduler runs it once it does (crm.scheduler.recovery).
    not_started: Callable[[datetime], None] = _ignore
    # Set once the scheduler stops: a run waiting out its jitter starts no more.
    stopping: threading.Event = field(default_factory=threading.Event)
    # The processes of isolated runs (jobs with a timeout), for the scheduler to end.
    children: isolation.ChildRuns = field(default_factory=isolation.ChildRuns)
    # How many runs of a job go on in other processes (crm.scheduler.overlap).
    running_elsewhere: Callable[[str], int] = _none_elsewhere

    def call(self, func, *args, **kwargs):
        """Call `func` as a run in this context (in a copy of the caller's)."""

        def inside():
            _context.set(self)
            return func(*args, **kwargs)

        return contextvars.copy_context().run(inside)


_context: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "run_context", default=None
)
scheduled_fire_time: contextvars.ContextVar[datetime | None] = contextvars.ContextVar(
    "scheduled_fire_time", default=None
)
# Called as a scheduled run reaches its job function, or starts waiting out
# its jitter: FireTimeThreadExecutor.start_run's signal to the dispatch loop.
_on_begun: contextvars.ContextVar[Callable[[], None]] = contextvars.ContextVar(
    "on_begun", default=lambda: None
)


def current_context() -> RunContext:
    """The context of the run going on in this thread (a run by hand if none)."""
    return _context.get() or RunContext()


def run_declared_job(
    job_id: str,
    triggered_by: str = BY_SCHEDULE,
    command_id: int | None = None,
    waiting: int | None = None,
):
    """Run a declared job once and record the run. Returns what the job returned;
    raises what it raised (after recording it). A fire that already has a
    history row is not run again, nor anything once this process may have
    lost the lease (both return None). `waiting`: the history row of a fire
    that waits, for its next attempt (crm.scheduler.retries) or for the run
    before it to end (crm.scheduler.overlap), run now."""
    context = current_context()
    if not context.may_run():
        # Expected when a scheduler stops or loses its lease as a fire falls
        # due: the next active scheduler runs it. A warning, not an error.
        refused = LeaseLost(f"Job {job_id} not run: this process may no longer hold the lease.")
        logger.warning("%s The next active scheduler runs it.", refused)
        _refuse(job_id, command_id, refused)
        return None
    declaration = declared_job(job_id)
    if declaration is None:
        missing = LookupError(f"Job {job_id} is in the job store but no longer declared.")
        _refuse(job_id, command_id, missing)
        raise missing
    scheduled_at = scheduled_fire_time.get() or timezone.now()
    if waiting is not None:
        run = reconnecting(history.claim_waiting)(
            waiting, host=context.host, pid=context.pid, scheduler=context.scheduler
        )
    elif triggered_by == BY_SCHEDULE and not _waited_out_jitter(context, declaration, scheduled_at):
        return None
    else:
        run = _queued_instead(context, declaration, scheduled_at, triggered_by)
        run = run or _start(context, declaration, scheduled_at, triggered_by)
    if run is None:
        return None
    scheduled_at = run.execution.run_time
    try:
        with run_label.labelled(job_id, scheduled_at, run.execution.pk):
            return _call(context, declaration, run, scheduled_at, command_id)
    finally:
        close_unusable_connection()


def run_for_fire(job_id: str, fire_time: datetime, triggered_by: str):
    """Run a declared job here, now, as its fire of `fire_time` (a backfill);
    as `run_declared_job`, nothing runs if that fire has a run already."""

    def as_that_fire():
        scheduled_fire_time.set(fire_time)
        return run_declared_job(job_id, triggered_by=triggered_by)

    return contextvars.copy_context().run(as_that_fire)


def _waited_out_jitter(context: RunContext, declaration: JobDeclaration, fire) -> bool:
    """Wait until the fire's jittered start; False if the scheduler stopped or
    may have lost the lease meanwhile (the next active one runs it, with the
    same delay)."""
    start = fire + declaration.jitter_for(fire)
    wait = (start - timezone.now()).total_seconds()
    if wait <= 0:
        return True
    _on_begun.get()()
    if context.stopping.wait(wait) or not context.may_run():
        logger.warning(
            "job %s: the fire of %s not started, the scheduler stopped during its jitter; "
            "the next active scheduler runs it",
            declaration.id,
            fire.isoformat(),
        )
        return False
    return True


def _queued_instead(context: RunContext, declaration: JobDeclaration, fire, triggered_by):
    """With overlap "queue", a fire that finds an earlier one queued runs that
    one, into which it is coalesced: the queue keeps the order of the fires."""
    if triggered_by != BY_SCHEDULE or declaration.overlap != QUEUE:
        return None
    return reconnecting(history.run_queued_instead)(
        declaration.id, fire, host=context.host, pid=context.pid, scheduler=context.scheduler
    )


def _refuse(job_id: str, command_id: int | None, error: Exception) -> None:
    run_refused.send(sender=run_declared_job, job_id=job_id, command_id=command_id, error=error)


def _start(context: RunContext, declaration: JobDeclaration, scheduled_at, triggered_by: str):
    """The run's history row, or None if that fire has one already."""
    job_id = declaration.id
    try:
        run = reconnecting(history.start_run)(
            job_id,
            scheduled_at,
            triggered_by,
            host=context.host,
            pid=context.pid,
            scheduler=context.scheduler,
            ends_retries=declaration.retries > 0,
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
        context.not_started(scheduled_at)
        raise
    if run is None:
        logger.warning(
            "job %s: the fire of %s has already run; not running it again",
            job_id,
            scheduled_at.isoformat(),
        )
    return run


def _call(context, declaration: JobDeclaration, run, scheduled_at, command_id):
    kwargs = dict(declaration.kwargs)
    if declaration.fire_time_kwarg:
        kwargs[declaration.fire_time_kwarg] = scheduled_at
    execution_id = run.execution.pk
    context.runs.started(execution_id)
    job_started.send(
        sender=run_declared_job,
        job_id=declaration.id,
        scheduled_at=scheduled_at,
        execution_id=execution_id,
    )
    _on_begun.get()()
    started = time.monotonic()
    outcome = {"status": "failed", "exception": None, "result": None}
    unrecorded = None
    try:
        outcome["result"] = _call_job(context, declaration, kwargs)
        outcome["status"] = "succeeded"
        unrecorded = history.finish_run(
            run,
            status=history.SUCCEEDED,
            result=outcome["result"],
            attempt=_attempt(declaration, run),
        )
        return outcome["result"]
    except Exception as error:
        outcome["exception"] = error
        status, error_text, details = _failure(error)
        retry_at = _retry_at(context, declaration, run, scheduled_at, status, error)
        outcome["status"] = "retrying" if retry_at is not None else "failed"
        unrecorded = history.finish_run(
            run,
            status=status,
            error_text=error_text,
            traceback_text=details,
            attempt=_attempt(declaration, run),
            retry_at=retry_at,
        )
        raise
    finally:
        context.runs.ended(execution_id, unrecorded)
        job_finished.send(
            sender=run_declared_job,
            job_id=declaration.id,
            scheduled_at=scheduled_at,
            duration=time.monotonic() - started,
            execution_id=execution_id,
            command_id=command_id,
            **outcome,
        )


def _call_job(context: RunContext, declaration: JobDeclaration, kwargs: dict):
    if declaration.isolated:
        return isolation.run_in_child(
            declaration.func,
            declaration.args,
            kwargs,
            timeout=declaration.timeout_seconds,
            children=context.children,
        )
    return import_string(declaration.func)(*declaration.args, **kwargs)


def _attempt(declaration: JobDeclaration, run) -> tuple[int, int] | None:
    return (run.attempt, declaration.retries + 1) if declaration.retries else None


def _retry_at(context, declaration, run, scheduled_at, status, error):
    """When the fire's next attempt starts, if it has one: only the active
    scheduler retries (a run by hand is tried once), and not a run it stopped."""
    if not declaration.retries or not context.scheduler or status == history.INTERRUPTED:
        return None
    return retries.next_attempt_at(declaration, scheduled_at, run.attempt, error)


def _failure(error: Exception) -> tuple[str, str, str | None]:
    """How a run that raised `error` is recorded: status, error, traceback."""
    if isinstance(error, isolation.JobTimedOut):
        return history.TIMED_OUT, str(error), None
    if isinstance(error, isolation.RunStopped):
        return history.INTERRUPTED, str(error), None
    if isinstance(error, isolation.ChildFailed):
        return history.FAILED, f"{error.type_name}: {error}", error.traceback_text
    return history.FAILED, f"{type(error).__name__}: {error}", traceback.format_exc()


class FireTimeThreadExecutor(HookedExecutor):
    """Runs each job in a daemon thread (crm.scheduler.workers: kept between
    runs with its database connection), in its `RunContext`, and tells it
    which fire time it serves.

    Not concurrent.futures' pool: Python joins those threads at interpreter exit,
    before atexit handlers, so a process asked to stop (SIGTERM to runscheduler,
    a gunicorn worker recycling) stayed alive, lease released, for as long as a
    job ran, while a standby started the same job. The runner waits a bounded
    time for running jobs instead (SCHEDULER_SHUTDOWN_WAIT_SECONDS); a run still
    going after that ends with the process and is marked interrupted.
    """

    def __init__(self, context: RunContext | None = None):
        super().__init__()
        self.context = context or RunContext()
        self.workers = WorkerThreads()

    def start_run(self, job, run_times):
        begun = threading.Event()

        def run():
            scheduled_fire_time.set(run_times[-1])
            _on_begun.set(begun.set)
            try:
                # APScheduler's own lines about the fire (its error, after the run) too.
                with run_label.labelled(job.id, run_times[-1]):
                    self.run_and_report(job, run_times)
            finally:
                begun.set()

        self.workers.run(f"job {job.id}", lambda: self.context.call(run))
        return begun

    def start_in_context(self, name: str, func, *args) -> None:
        """Call `func(*args)` in a worker thread, in this executor's RunContext,
        as a run is (a backfill's runs one after the other): the scheduler
        waits for it as it stops, like for a run."""
        self.workers.run(name, lambda: self.context.call(func, *args))

    def has_running_jobs(self) -> bool:
        """Whether a run or a task started here is still going."""
        return super().has_running_jobs() or self.workers.running() > 0

    def runs_elsewhere(self, job) -> int:
        return self.context.running_elsewhere(job.id)

    def shutdown(self, wait=True):
        self.workers.close()
        if wait:
            self.workers.wait()
