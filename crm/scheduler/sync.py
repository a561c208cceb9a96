"""Make the job store match the declarations, without throwing away what the
store knows: a job whose trigger did not change keeps its next run time (so runs
missed while the app was down are caught up), and a paused job stays paused."""

import logging
from dataclasses import dataclass, field

from crm.scheduler.declarations import JobDeclaration
from crm.scheduler.execution import run_declared_job
from crm.scheduler.models import DisabledJob, JobPause

logger = logging.getLogger("crm.scheduler")


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __str__(self):
        return ", ".join(
            f"{change} {_listed(job_ids)}"
            for change, job_ids in (
                ("created", self.created),
                ("updated", self.updated),
                ("removed", self.removed),
            )
        )


LISTED_IDS = 10  # a sync of 10,000 jobs is one readable log line, not 200 kB


def _listed(job_ids: list[str]) -> str:
    if not job_ids:
        return "none"
    if len(job_ids) <= LISTED_IDS:
        return str(job_ids)
    return f"{len(job_ids):,} jobs ({', '.join(job_ids[:LISTED_IDS])}, ...)"


def job_options(declaration: JobDeclaration) -> dict:
    return {
        "func": run_declared_job,
        "args": [declaration.id],
        "kwargs": {},
        "name": declaration.description or declaration.id,
        "misfire_grace_time": declaration.misfire_grace_seconds,
        "coalesce": True,
        "max_instances": declaration.max_instances,
    }


def _differs(stored, declaration: JobDeclaration) -> bool:
    wanted = job_options(declaration)
    return (
        repr(stored.trigger) != repr(declaration.trigger())
        or any(
            getattr(stored, key) != wanted[key]
            for key in ("name", "misfire_grace_time", "coalesce", "max_instances")
        )
        or list(stored.args) != wanted["args"]
    )


def sync_jobs(scheduler, declarations: dict[str, JobDeclaration], dry_run=False) -> SyncReport:
    """`scheduler` must be started (paused is fine) so its store is readable."""
    report = SyncReport()
    stored = {job.id: job for job in scheduler.get_jobs()}
    disabled = set(DisabledJob.objects.values_list("job_id", flat=True))
    for job_id, declaration in declarations.items():
        job = stored.get(job_id)
        if job is None:
            report.created.append(job_id)
            if not dry_run:
                scheduler.add_job(
                    id=job_id,
                    trigger=declaration.trigger(),
                    **job_options(declaration),
                    **({} if declaration.enabled else {"next_run_time": None}),
                )
                if not declaration.enabled:
                    DisabledJob.objects.get_or_create(job_id=job_id)
        elif _differs(job, declaration) or _switched(job, declaration, disabled):
            report.updated.append(job_id)
            if not dry_run:
                _update(job, declaration, was_disabled=job_id in disabled)
    for job_id in sorted(set(stored) - set(declarations)):
        report.removed.append(job_id)
        if not dry_run:
            scheduler.remove_job(job_id)
            DisabledJob.objects.filter(job_id=job_id).delete()
            JobPause.objects.filter(job_id=job_id).delete()
    if not dry_run and (report.created or report.updated or report.removed):
        logger.info("scheduler sync: %s", report)
    return report


def _switched(job, declaration: JobDeclaration, disabled: set[str]) -> bool:
    if declaration.enabled:
        return job.id in disabled
    return job.next_run_time is not None


def _update(job, declaration: JobDeclaration, was_disabled: bool) -> None:
    paused = job.next_run_time is None
    trigger_changed = repr(job.trigger) != repr(declaration.trigger())
    options = job_options(declaration)
    options.pop("func")
    job.modify(**options)
    if trigger_changed:
        job.reschedule(declaration.trigger())
    # Only a job that disabling paused is marked, and enabling resumes only
    # that: a pause by an operator outlives both.
    if not declaration.enabled:
        if not paused:
            DisabledJob.objects.get_or_create(job_id=job.id)
        job.pause()
    elif was_disabled:
        DisabledJob.objects.filter(job_id=job.id).delete()
        job.resume()
    elif paused:
        job.pause()
