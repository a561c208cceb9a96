"""Requests to the active scheduler from any process: run now, pause, resume, sync.

A process that is not the active one (the admin, the command line) writes a
SchedulerCommand row; the active scheduler takes it within a second or so and
carries it out itself, so only one process ever writes its jobs, and a run
started this way goes through the same executor, history and `max_instances`
as a scheduled one.
"""

import logging
import time
from datetime import timedelta

from django.utils import timezone

from crm.scheduler.models import SchedulerCommand

logger = logging.getLogger("crm.scheduler")
Action = SchedulerCommand.Action
# A command nobody took in this time is dropped: the scheduler that was active
# when it was sent died, and acting on it much later would surprise.
EXPIRY = timedelta(minutes=5)
# Times here are the writing process's clock, like `requested_at`; the lease is
# the only thing that needs the database's.


def submit(action: str, job_id: str, requested_by: str) -> SchedulerCommand:
    return SchedulerCommand.objects.create(
        action=action, job_id=job_id, requested_by=requested_by[:200]
    )


def wait_for(command: SchedulerCommand, timeout: float, poll: float = 0.2) -> SchedulerCommand:
    """The command as it is when finished, or when `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        command.refresh_from_db()
        if command.finished_at is not None or time.monotonic() >= deadline:
            return command
        time.sleep(poll)


def finish(command_id: int, execution_id: int | None, status: str, error=None) -> None:
    ok = status == "succeeded"
    outcome = "run succeeded" if ok else f"run failed: {type(error).__name__}: {error}"
    _finish(command_id, ok, outcome, execution_id=execution_id)


def claim(command: SchedulerCommand) -> bool:
    """Take a command for this process to carry out itself; False if a scheduler took it."""
    return bool(
        SchedulerCommand.objects.filter(pk=command.pk, taken_at__isnull=True).update(
            taken_at=timezone.now()
        )
    )


def finish_here(command: SchedulerCommand, outcome: str) -> None:
    _finish(command.pk, True, outcome)


def apply_pending(scheduler) -> int:
    """Carry out the commands not yet taken, oldest first (in the active scheduler)."""
    _expire_stale()
    pending = list(SchedulerCommand.objects.filter(taken_at__isnull=True).order_by("id")[:50])
    for command in pending:
        if not claim(command):
            continue
        try:
            _apply(scheduler, command)
        except Exception as error:
            logger.exception("scheduler could not carry out %s", command)
            _finish(command.pk, False, f"{type(error).__name__}: {error}")
    return len(pending)


def _apply(scheduler, command: SchedulerCommand) -> None:
    if command.action == Action.SYNC:
        from crm.scheduler.declarations import declared_jobs
        from crm.scheduler.sync import sync_jobs

        _finish(command.pk, True, str(sync_jobs(scheduler, declared_jobs())))
        return
    job = scheduler.get_job(command.job_id)
    if job is None:
        _finish(command.pk, False, f"Unknown job {command.job_id!r}.")
    elif command.action == Action.PAUSE:
        scheduler.pause_job(command.job_id)
        _finish(command.pk, True, "paused")
    elif command.action == Action.RESUME:
        scheduler.resume_job(command.job_id)
        _finish(command.pk, True, "resumed")
    elif command.action == Action.RUN:
        _submit_run(scheduler, job, command)
    else:
        _finish(command.pk, False, f"Unknown action {command.action!r}.")


def _submit_run(scheduler, job, command: SchedulerCommand) -> None:
    """Hand the job to the executor once, now, without touching its schedule.
    The run finishes the command (crm.scheduler.execution)."""
    kwargs = {"triggered_by": command.requested_by, "command_id": command.pk}
    if not scheduler.submit_once(job, timezone.now(), **kwargs):
        _finish(command.pk, False, f"Not run: {job.id} is running already.")


def _expire_stale() -> None:
    SchedulerCommand.objects.filter(
        taken_at__isnull=True, requested_at__lt=timezone.now() - EXPIRY
    ).update(
        taken_at=timezone.now(),
        finished_at=timezone.now(),
        succeeded=False,
        outcome=f"Expired: no active scheduler took it within {EXPIRY.seconds // 60} minutes.",
    )


def _finish(command_id: int, ok: bool, outcome: str, execution_id=None) -> None:
    changes = {"finished_at": timezone.now(), "succeeded": ok, "outcome": outcome}
    if execution_id is not None:
        changes["execution_id"] = execution_id
    SchedulerCommand.objects.filter(pk=command_id).update(**changes)
