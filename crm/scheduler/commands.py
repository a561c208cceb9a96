"""The queue of requests to the scheduler from any process: run now, pause, resume,
sync, backfill.

A process that is not the active one (the admin, the command line) writes a
SchedulerCommand row; the active scheduler takes it within a second or so and
carries it out (crm.scheduler.intake), so only one process ever writes its
jobs, and a run started this way goes through the same executor, history and
`max_instances` as a scheduled one. This module only queues and settles.
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


def submit(
    action: str,
    job_id: str,
    requested_by: str,
    *,
    until=None,
    note: str = "",
    range_start=None,
    range_end=None,
    force: bool = False,
) -> SchedulerCommand:
    return SchedulerCommand.objects.create(
        action=action,
        job_id=job_id,
        requested_by=requested_by[:200],
        until=until,
        note=note,
        range_start=range_start,
        range_end=range_end,
        force=force,
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
    if status == "retrying":
        outcome += " (it is tried again; see `scheduler status`)"
    settle(command_id, ok, outcome, execution_id)


def claim(command: SchedulerCommand) -> bool:
    """Take a command for this process to carry out itself; False if a scheduler took it."""
    return bool(
        SchedulerCommand.objects.filter(pk=command.pk, taken_at__isnull=True).update(
            taken_at=timezone.now()
        )
    )


def pending(limit: int = 50) -> list[SchedulerCommand]:
    """The commands not yet taken, oldest first; expired ones are settled first."""
    _expire_stale()
    return list(SchedulerCommand.objects.filter(taken_at__isnull=True).order_by("id")[:limit])


def settle(command_id: int, ok: bool, outcome: str, execution_id: int | None = None) -> None:
    """Record how a command ended."""
    changes = {"finished_at": timezone.now(), "succeeded": ok, "outcome": outcome}
    if execution_id is not None:
        changes["execution_id"] = execution_id
    SchedulerCommand.objects.filter(pk=command_id).update(**changes)


def _expire_stale() -> None:
    SchedulerCommand.objects.filter(
        taken_at__isnull=True, requested_at__lt=timezone.now() - EXPIRY
    ).update(
        taken_at=timezone.now(),
        finished_at=timezone.now(),
        succeeded=False,
        outcome=f"Expired: no active scheduler took it within {EXPIRY.seconds // 60} minutes.",
    )
