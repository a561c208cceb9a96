"""Carrying out queued commands (crm.scheduler.commands) on a scheduler: the
active one each second or so, or, while none is active, the process that
asked (on a scheduler that only reads and writes the store)."""

import logging

from django.utils import timezone

from crm.scheduler import commands
from crm.scheduler.declarations import declared_jobs
from crm.scheduler.models import SchedulerCommand
from crm.scheduler.sync import sync_jobs

logger = logging.getLogger("crm.scheduler")
Action = SchedulerCommand.Action


def apply_pending(scheduler) -> int:
    """Carry out the commands not yet taken, oldest first; returns how many were looked at."""
    pending = commands.pending()
    for command in pending:
        if commands.claim(command):
            apply(scheduler, command)
    return len(pending)


def apply(scheduler, command: SchedulerCommand) -> None:
    """Carry out a command this process has claimed, and settle it (a run
    settles it as it ends)."""
    try:
        _apply(scheduler, command)
    except Exception as error:
        logger.exception("scheduler could not carry out %s", command)
        commands.settle(command.pk, False, f"{type(error).__name__}: {error}")


def _apply(scheduler, command: SchedulerCommand) -> None:
    if command.action == Action.SYNC:
        commands.settle(command.pk, True, str(sync_jobs(scheduler, declared_jobs())))
        return
    job = scheduler.get_job(command.job_id)
    if job is None:
        commands.settle(command.pk, False, f"Unknown job {command.job_id!r}.")
    elif command.action == Action.PAUSE:
        scheduler.pause_job(command.job_id)
        commands.settle(command.pk, True, "paused")
    elif command.action == Action.RESUME:
        scheduler.resume_job(command.job_id)
        commands.settle(command.pk, True, "resumed")
    elif command.action == Action.RUN:
        _submit_run(scheduler, job, command)
    else:
        commands.settle(command.pk, False, f"Unknown action {command.action!r}.")


def _submit_run(scheduler, job, command: SchedulerCommand) -> None:
    """Hand the job to the executor once, now, without touching its schedule."""
    kwargs = {"triggered_by": command.requested_by, "command_id": command.pk}
    if not scheduler.submit_once(job, timezone.now(), **kwargs):
        commands.settle(command.pk, False, f"Not run: {job.id} is running already.")
