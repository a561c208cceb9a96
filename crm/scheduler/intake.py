"""Carrying out queued commands (crm.scheduler.commands) on a scheduler: the
active one each second or so, or, while none is active, the process that
asked (on a scheduler that only reads and writes the store). A run and a
backfill are carried out only by the active scheduler, in threads of their own."""

import logging
from datetime import timedelta

from django.utils import timezone

from crm.scheduler import audit, backfill, commands, history
from crm.scheduler.declarations import declared_jobs
from crm.scheduler.execution import FireTimeThreadExecutor
from crm.scheduler.models import JobPause, SchedulerCommand
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
    """Carry out a command this process has claimed, and settle it (a run or a
    backfill settles it as it ends)."""
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
        JobPause.objects.update_or_create(
            job_id=command.job_id,
            defaults={
                "paused_by": command.requested_by,
                "paused_at": timezone.now(),
                "until": command.until,
                "note": command.note,
            },
        )
        until = f" until {command.until.isoformat()}" if command.until else ""
        commands.settle(command.pk, True, f"paused{until}")
    elif command.action == Action.RESUME:
        scheduler.resume_job(command.job_id)
        JobPause.objects.filter(job_id=command.job_id).delete()
        commands.settle(command.pk, True, "resumed")
    elif command.action == Action.SKIP:
        _skip_next_fire(job, command)
    elif command.action == Action.RUN:
        _submit_run(scheduler, job, command)
    elif command.action == Action.BACKFILL:
        _start_backfill(scheduler, command)
    else:
        commands.settle(command.pk, False, f"Unknown action {command.action!r}.")


def _submit_run(scheduler, job, command: SchedulerCommand) -> None:
    """Hand the job to the executor once, now, without touching its schedule."""
    kwargs = {"triggered_by": command.requested_by, "command_id": command.pk}
    if not scheduler.submit_once(job, timezone.now(), **kwargs):
        commands.settle(command.pk, False, f"Not run: {job.id} is running already.")


def _start_backfill(scheduler, command: SchedulerCommand) -> None:
    """Plan and run the backfill in a thread of its own, in the scheduler's
    RunContext: its fires may take hours, and the lease keeper's loop takes
    the commands."""
    executor = scheduler.lookup_executor("default")
    if not isinstance(executor, FireTimeThreadExecutor):  # a scheduler that runs nothing
        commands.settle(command.pk, False, "Not run: only the active scheduler runs a backfill.")
        return
    executor.start_in_context(f"backfill {command.job_id}", _backfill, command)


def _backfill(command: SchedulerCommand) -> None:
    try:
        plan = backfill.plan(
            command.job_id, command.range_start, command.range_end, force=command.force
        )
        outcomes = backfill.run(plan, command.requested_by)
    except backfill.BackfillRefused as refusal:
        commands.settle(command.pk, False, f"Not run: {refusal}")
    except Exception as error:
        logger.exception("scheduler could not carry out %s", command)
        commands.settle(command.pk, False, f"{type(error).__name__}: {error}")
    else:
        ok = backfill.all_succeeded(outcomes)
        commands.settle(command.pk, ok, backfill.summary(plan, outcomes))


def _skip_next_fire(job, command: SchedulerCommand) -> None:
    fire = job.next_run_time
    if fire is None:
        commands.settle(command.pk, False, f"Not skipped: {job.id} is paused; no fire is next.")
        return
    following = job.trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    history.record_skipped(job.id, fire, by=command.requested_by)
    job.modify(next_run_time=following)
    commands.settle(command.pk, True, f"skipped the fire of {fire.isoformat()}")


def resume_ended_pauses(scheduler) -> list[str]:
    """Resume the jobs whose pause has reached its `until`, each through a
    command row (so the history says who resumed it: the pause's end)."""
    ended = JobPause.objects.filter(until__lte=timezone.now()).order_by("until")
    declared, resumed = declared_jobs(), []
    for pause in ended:
        if scheduler.get_job(pause.job_id) is None:
            pause.delete()  # the job is gone; nothing to resume
            continue
        declaration = declared.get(pause.job_id)
        if declaration is not None and not declaration.enabled:
            continue  # disabled by its settings: sync keeps it paused
        by = f"the pause until {pause.until.isoformat()} by {pause.paused_by}"
        command = commands.submit(Action.RESUME, pause.job_id, by)
        audit.record(Action.RESUME, pause.job_id, by, audit.Source.SCHEDULER, command=command)
        if commands.claim(command):
            apply(scheduler, command)
            resumed.append(pause.job_id)
    return resumed
