"""Operate the scheduler's jobs from any process (the admin, the command line).

One path for every change: `operate` writes one command row per job
(crm.scheduler.commands), and every request (refused ones too) is recorded in
the audit trail (crm.scheduler.audit) with where it came from: `source`, the
command line unless the caller says otherwise. While a scheduler
is active it carries them out within a second or so; while none is, nobody
else writes the job store, so pause, resume and sync are carried out here, by
the same code the active scheduler uses (crm.scheduler.intake). A run and a
backfill are always left to the active scheduler (or the first to become active).
"""

import getpass
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from django_apscheduler.models import DjangoJob

from crm.scheduler import audit, backfill, commands, execution, intake
from crm.scheduler.checks import declaration_errors
from crm.scheduler.declarations import BUILTIN_SETTINGS, declared_jobs
from crm.scheduler.lease import LEASE_NAME, current_holder
from crm.scheduler.models import AuditEntry, SchedulerCommand
from crm.scheduler.schedulers import Mode, build_scheduler
from crm.scheduler.sync import SyncReport, sync_jobs

Action = commands.Action
Source = audit.Source
# How long the command line waits for the active scheduler to confirm a change.
CONFIRM_SECONDS = 15
DONE, QUEUED, FAILED = "done", "queued", "failed"


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


@dataclass(frozen=True)
class Operation:
    """What became of one request on one job: done, queued (for the active
    scheduler, or for a run, for the one that runs it), or failed (and why)."""

    action: str
    job_id: str
    state: str
    message: str
    command: SchedulerCommand | None = None
    error: ControlError | None = None  # why it failed before any command was sent

    def as_dict(self) -> dict:
        return {
            "action": self.action,
            "job": self.job_id,
            "state": self.state,
            "message": self.message,
            "command": self.command.pk if self.command else None,
        }


def on_the_command_line() -> str:
    return f"command line: {getpass.getuser()}@{socket.gethostname()} (pid {os.getpid()})"


def active_scheduler():
    """The lease row of the active scheduler, or None."""
    return current_holder(LEASE_NAME)


@contextmanager
def job_store():
    """A scheduler that never runs anything, only reads and writes the store."""
    scheduler = build_scheduler(Mode.STORE_ONLY)
    scheduler.start(paused=True)
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)


def operate(
    action: str,
    job_ids: list[str],
    requested_by: str,
    wait: float = 0,
    *,
    until=None,
    note: str = "",
    source: str = Source.CLI,
) -> list[Operation]:
    """Request `action` (pause, resume, skip, run) on each job; wait at most
    `wait` seconds for the active scheduler to carry the requests out. A pause
    may have an end (`until`, when it resumes by itself) and a `note`. One
    Operation per job, in order; one audit entry per job, from `source`."""
    problems = _problems(action, job_ids)
    details = audit.details(until=until, note=note)
    sent = {}
    for job_id in dict.fromkeys(job_ids):
        if job_id in problems:
            _refused(action, job_id, requested_by, source, problems[job_id], details)
            continue
        sent[job_id] = commands.submit(action, job_id, requested_by, until=until, note=note)
        audit.record(action, job_id, requested_by, source, details=details, command=sent[job_id])
    here = action != Action.RUN and sent and active_scheduler() is None
    if here:
        _carry_out_here(list(sent.values()))
    finished = _wait_for(list(sent.values()), wait if not here else 0)
    return [
        Operation(action, job_id, FAILED, str(problems[job_id]), error=problems[job_id])
        if job_id in problems
        else _operation(finished[sent[job_id].pk], here)
        for job_id in job_ids
    ]


def pause_job(
    job_id: str, requested_by: str, wait: float = CONFIRM_SECONDS, *, until=None, note=""
) -> str:
    operation = operate(Action.PAUSE, [job_id], requested_by, wait, until=until, note=note)
    return _confirmed(operation[0], wait)


def skip_next_fire(job_id: str, requested_by: str, wait: float = CONFIRM_SECONDS) -> str:
    return _confirmed(operate(Action.SKIP, [job_id], requested_by, wait)[0], wait)


def resume_job(job_id: str, requested_by: str, wait: float = CONFIRM_SECONDS) -> str:
    return _confirmed(operate(Action.RESUME, [job_id], requested_by, wait)[0], wait)


def sync(requested_by: str, dry_run: bool = False, *, source: str = Source.CLI) -> SyncReport:
    """What sync changes (computed here); carried out by the active scheduler if
    any, else here (the job store's own state, not an operation on a job: no
    command row, like the sync each scheduler does as it becomes active). A
    sync that is not a dry run is recorded in the audit trail."""
    if dry_run:
        return _sync(requested_by, entry=None)
    with audit.recorded(Action.SYNC, "", requested_by, source) as entry:
        return _sync(requested_by, entry)


def run_now(
    job_id: str, requested_by: str, wait: float, *, source: str = Source.CLI
) -> SchedulerCommand:
    """Hand a run to the active scheduler; return the command, finished or not
    (it finishes when the run ends) after waiting at most `wait` seconds."""
    problem = _problems(Action.RUN, [job_id]).get(job_id)
    if problem is None and active_scheduler() is None:
        problem = NoActiveScheduler(
            f"No scheduler is active to run {job_id}. Start one (a web process or "
            "`python manage.py runscheduler`), or run it in this process with --here."
        )
    if problem is not None:
        _refused(Action.RUN, job_id, requested_by, source, problem)
        raise problem
    return operate(Action.RUN, [job_id], requested_by, wait, source=source)[0].command


def run_here(job_id: str, requested_by: str, *, source: str = Source.CLI):
    """Run the job in this process, now; returns what it returned."""
    with audit.recorded(Action.RUN, job_id, requested_by, source, "in this process") as entry:
        _raise_problem(Action.RUN, job_id)
        result = execution.run_declared_job(job_id, triggered_by=requested_by)
        entry.outcome = "run succeeded in this process"
    return result


def request_backfill(
    job_id: str,
    start: datetime,
    end: datetime,
    requested_by: str,
    *,
    force: bool = False,
    wording: backfill.Wording | None = None,
    source: str = Source.CLI,
) -> tuple[backfill.Plan, SchedulerCommand | None]:
    """Queue a backfill (crm.scheduler.backfill) for the active scheduler, which
    plans it again as it takes it and runs its fires in a thread of its own.
    Refused (BackfillRefused) as `backfill.plan` refuses; returns the plan as it
    is now, and the command (None: nothing to run, nothing queued)."""
    details = audit.details(start=start, end=end, force=force)
    with audit.recorded(Action.BACKFILL, job_id, requested_by, source, details) as entry:
        plan = backfill.plan(job_id, start, end, force=force, wording=wording)
        if not plan.fires:
            entry.outcome = "nothing to backfill: every fire of the range has run"
            return plan, None
        command = commands.submit(
            Action.BACKFILL, job_id, requested_by, range_start=start, range_end=end, force=force
        )
        audit.link(entry, command)
    return plan, command


def backfill_here(
    job_id: str,
    start: datetime,
    end: datetime,
    requested_by: str,
    *,
    force: bool = False,
    progress=None,
    source: str = Source.CLI,
) -> tuple[backfill.Plan, list[tuple[datetime, str]]]:
    """Run a backfill in this process, now (`scheduler backfill`): the plan,
    and each fire's outcome (`backfill.run`). Refused as `backfill.plan` refuses."""
    details = audit.details(start=start, end=end, force=force)
    with audit.recorded(Action.BACKFILL, job_id, requested_by, source, details) as entry:
        plan = backfill.plan(job_id, start, end, force=force)
        outcomes = backfill.run(plan, requested_by, progress=progress)
        entry.succeeded = backfill.all_succeeded(outcomes)
        entry.outcome = backfill.summary(plan, outcomes) + " (in this process)"
    return plan, outcomes


def _sync(requested_by: str, entry: AuditEntry | None) -> SyncReport:
    """The sync's report; without an audit entry, a dry run."""
    errors = declaration_errors()
    if errors:
        raise ControlError(
            f"Not synced: {len(errors)} error(s) in the job declarations; run "
            f"`python manage.py check` for details (first: {errors[0].msg})"
        )
    with job_store() as scheduler:
        report = sync_jobs(scheduler, declared_jobs(), dry_run=True)
        if entry is None:
            return report
        if not (report.created or report.updated or report.removed):
            entry.outcome = "nothing to change"
            return report
        if active_scheduler() is None:
            report = sync_jobs(scheduler, declared_jobs())
            entry.outcome = f"{report} in the job store (no scheduler is active)"
            return report
    command = commands.submit(Action.SYNC, "", requested_by)
    audit.link(entry, command)
    _confirmed(_operation(_wait_for([command], CONFIRM_SECONDS)[command.pk], here=False))
    return report


def _refused(
    action: str, job_id: str, requested_by: str, source: str, problem: ControlError, details=""
) -> None:
    audit.record(
        action, job_id, requested_by, source, details=details, succeeded=False, outcome=str(problem)
    )


def _problems(action: str, job_ids: list[str]) -> dict[str, ControlError]:
    """Why a request cannot be made, by job."""
    declared = declared_jobs()
    stored = set(DjangoJob.objects.filter(id__in=job_ids).values_list("id", flat=True))
    problems = {}
    for job_id in job_ids:
        try:
            _check(action, job_id, declared, stored)
        except ControlError as error:
            problems[job_id] = error
    return problems


def _raise_problem(action: str, job_id: str) -> None:
    problem = _problems(action, [job_id]).get(job_id)
    if problem is not None:
        raise problem


def _check(action: str, job_id: str, declared: dict, stored: set[str]) -> None:
    if action == Action.RUN and job_id not in declared:
        raise UnknownJob(job_id, list(declared))
    if job_id not in stored:
        if action == Action.RUN:
            raise ControlError(
                f"Job {job_id!r} is declared but not in the job store yet. "
                "Run `python manage.py scheduler sync` first."
            )
        raise UnknownJob(job_id, list(DjangoJob.objects.values_list("id", flat=True)))
    declaration = declared.get(job_id)
    if action == Action.RESUME and declaration is not None and not declaration.enabled:
        setting = BUILTIN_SETTINGS.get(job_id, (None, None))[1]
        where = f"{setting}=true in the environment" if setting else "its enabled to true"
        raise ControlError(
            f"{job_id} is disabled, so it cannot be resumed. Set {where} and restart "
            "the app (or run `python manage.py scheduler sync`)."
        )


def _carry_out_here(sent: list[SchedulerCommand]) -> None:
    with job_store() as scheduler:
        for command in sent:
            if commands.claim(command):  # else an active scheduler took it meanwhile
                intake.apply(scheduler, command)


def _wait_for(sent: list[SchedulerCommand], wait: float) -> dict[int, SchedulerCommand]:
    """The commands as they are once all are finished, or after `wait` seconds."""
    ids = [command.pk for command in sent]
    deadline = time.monotonic() + wait
    while True:
        rows = {row.pk: row for row in SchedulerCommand.objects.filter(pk__in=ids)}
        done = all(row.finished_at is not None for row in rows.values())
        if done or time.monotonic() >= deadline:
            return rows
        time.sleep(0.2)


def _operation(command: SchedulerCommand, here: bool) -> Operation:
    action, job_id = command.action, command.job_id
    if command.finished_at is None:
        message = (
            f"{action} requested; the active scheduler carries it out within seconds"
            if command.taken_at is None or action != Action.RUN
            else "running"
        )
        return Operation(action, job_id, QUEUED, message, command)
    if not command.succeeded:
        return Operation(action, job_id, FAILED, command.outcome, command)
    where = "in the job store (no scheduler is active)" if here else "by the active scheduler"
    return Operation(action, job_id, DONE, f"{command.outcome} {where}", command)


def _confirmed(operation: Operation, wait: float = CONFIRM_SECONDS) -> str:
    if operation.error is not None:
        raise operation.error
    if operation.state == FAILED:
        raise ControlError(operation.message)
    if operation.state == QUEUED:
        raise Unconfirmed(
            f"The active scheduler did not confirm the {operation.action} within "
            f"{wait:g} s; it is queued and is carried out when a scheduler takes it "
            f"(within {commands.EXPIRY.seconds // 60} minutes), or dropped."
        )
    return operation.message
