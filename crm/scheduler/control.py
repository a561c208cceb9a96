"""Operate the scheduler from any process (admin, command line).

While a scheduler is active, pause, resume, sync and run-now are handed to it
as commands (crm.scheduler.commands) and take effect there within a second or
so. While none is active nobody else writes the job store, so pause, resume
and sync are applied to it directly.
"""

import getpass
import os
import socket
from contextlib import contextmanager

from django_apscheduler.models import DjangoJob

from crm.scheduler import commands, execution
from crm.scheduler.declarations import BUILTIN_SETTINGS, declared_jobs
from crm.scheduler.jobstore import KeepingDjangoJobStore
from crm.scheduler.lease import current_holder
from crm.scheduler.runner import LEASE_NAME, SCHEDULER_CLOCK_ZONE
from crm.scheduler.schedulers import StoreOnlyScheduler
from crm.scheduler.sync import SyncReport, sync_jobs

Action = commands.Action
# How long a pause, resume or sync waits for the active scheduler to confirm.
CONFIRM_SECONDS = 15


class ControlError(Exception):
    """A request that could not be carried out; the message says why and what to do."""


class UnknownJob(ControlError, LookupError):
    def __init__(self, job_id: str, known: list[str]):
        choices = f"Choose one of: {', '.join(sorted(known))}." if known else "No jobs exist yet."
        super().__init__(f"Unknown job {job_id!r}. {choices}")


class NoActiveScheduler(ControlError):
    pass


class Unconfirmed(ControlError):
    """Sent to the active scheduler, which did not confirm it in time."""


def on_the_command_line() -> str:
    return f"command line: {getpass.getuser()}@{socket.gethostname()} (pid {os.getpid()})"


def active_scheduler():
    """The lease row of the active scheduler, or None."""
    return current_holder(LEASE_NAME)


@contextmanager
def job_store():
    """A scheduler that never runs anything, only reads and writes the store."""
    scheduler = StoreOnlyScheduler(
        jobstores={"default": KeepingDjangoJobStore()}, timezone=SCHEDULER_CLOCK_ZONE
    )
    scheduler.start(paused=True)
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)


def pause_job(job_id: str, requested_by: str, wait: float = CONFIRM_SECONDS) -> str:
    return _change_job(Action.PAUSE, job_id, requested_by, wait)


def resume_job(job_id: str, requested_by: str, wait: float = CONFIRM_SECONDS) -> str:
    declaration = declared_jobs().get(job_id)
    if declaration is not None and not declaration.enabled:
        setting = BUILTIN_SETTINGS.get(job_id, (None, None))[1]
        where = f"{setting}=true in the environment" if setting else "its enabled to true"
        raise ControlError(
            f"{job_id} is disabled, so it cannot be resumed. Set {where} and restart "
            "the app (or run `python manage.py scheduler sync`)."
        )
    return _change_job(Action.RESUME, job_id, requested_by, wait)


def sync(requested_by: str, dry_run: bool = False) -> SyncReport:
    """What sync changes (computed here); carried out by the active scheduler if any."""
    with job_store() as scheduler:
        report = sync_jobs(scheduler, declared_jobs(), dry_run=True)
        if dry_run or not (report.created or report.updated or report.removed):
            return report
        if active_scheduler() is None:
            return sync_jobs(scheduler, declared_jobs())
    _confirmed(commands.submit(Action.SYNC, "", requested_by))
    return report


def run_now(job_id: str, requested_by: str, wait: float):
    """Hand a run to the active scheduler; return the command, finished or not
    (it finishes when the run ends) after waiting at most `wait` seconds."""
    _check_runnable(job_id)
    holder = active_scheduler()
    if holder is None:
        raise NoActiveScheduler(
            f"No scheduler is active to run {job_id}. Start one (a web process or "
            "`python manage.py runscheduler`), or run it in this process with --here."
        )
    command = commands.submit(Action.RUN, job_id, requested_by)
    return commands.wait_for(command, wait)


def request_run(job_id: str, requested_by: str) -> bool:
    """Ask for a run without waiting for it; returns whether a scheduler is
    active to take it now (otherwise the first to become active within
    commands.EXPIRY does)."""
    _check_runnable(job_id)
    commands.submit(Action.RUN, job_id, requested_by)
    return active_scheduler() is not None


def run_here(job_id: str, requested_by: str):
    """Run the job in this process, now; returns what it returned."""
    _check_runnable(job_id)
    return execution.run_declared_job(job_id, triggered_by=requested_by)


def _check_runnable(job_id: str) -> None:
    declared = declared_jobs()
    if job_id not in declared:
        raise UnknownJob(job_id, list(declared))
    if not DjangoJob.objects.filter(id=job_id).exists():
        raise ControlError(
            f"Job {job_id!r} is declared but not in the job store yet. "
            "Run `python manage.py scheduler sync` first."
        )


def _change_job(action: str, job_id: str, requested_by: str, wait: float) -> str:
    """Every change is a command row, so who did what stays on record."""
    stored = list(DjangoJob.objects.values_list("id", flat=True))
    if job_id not in stored:
        raise UnknownJob(job_id, stored)
    command = commands.submit(action, job_id, requested_by)
    if active_scheduler() is None and commands.claim(command):
        with job_store() as scheduler:
            getattr(scheduler, f"{action}_job")(job_id)
        outcome = f"{action}d in the job store (no scheduler is active)"
        commands.finish_here(command, outcome)
        return outcome
    return _confirmed(command, wait)


def _confirmed(command, wait: float = CONFIRM_SECONDS) -> str:
    command = commands.wait_for(command, wait)
    if command.finished_at is None:
        raise Unconfirmed(
            f"The active scheduler did not confirm the {command.action} within "
            f"{wait:g} s; it is queued and is carried out when a scheduler takes it "
            f"(within {commands.EXPIRY.seconds // 60} minutes), or dropped."
        )
    if not command.succeeded:
        raise ControlError(command.outcome)
    return f"{command.outcome} by the active scheduler"
