"""Running the fires of a past range that never ran (`scheduler backfill`).

Each fire of the job's schedule from `start` to `end` that has no run (no
history row, or one recorded `Missed!`) runs once, oldest first, one at a
time, in this process, with its own fire time (the declaration's
`fire_time_kwarg`), recorded as triggered by the operator. A job that does not
take its fire time would do the same work each time: refused unless forced.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from crm.scheduler import execution, history
from crm.scheduler.checks import declaration_errors
from crm.scheduler.declarations import JobDeclaration, declared_jobs

MAX_FIRES = 10_000  # more than this in one range needs force


class BackfillRefused(ValueError):
    """The message says why, and what to do instead."""


@dataclass(frozen=True)
class Plan:
    job_id: str
    fires: list[datetime]  # to run, oldest first
    already_run: int  # fires of the range that have a run


def plan(job_id: str, start: datetime, end: datetime, force: bool = False) -> Plan:
    declaration = _declaration(job_id)
    if start > end:
        raise BackfillRefused(f"--from {start.isoformat()} is after --to {end.isoformat()}.")
    if end > timezone.now():
        raise BackfillRefused(
            f"--to {end.isoformat()} is in the future; a backfill runs past fires only."
        )
    if not declaration.fire_time_kwarg and not force:
        raise BackfillRefused(
            f"{job_id} does not take its fire time (no fire_time_kwarg in its declaration), "
            "so each backfilled fire would do the same work as a run now. Run it once with "
            "`scheduler run`, or pass --force to run it once per fire anyway."
        )
    fires = _fires(declaration, start, end, limit=None if force else MAX_FIRES)
    run = set(
        DjangoJobExecution.objects.filter(job_id=job_id, run_time__range=(start, end))
        .exclude(status=history.MISSED)
        .values_list("run_time", flat=True)
    )
    return Plan(job_id, [fire for fire in fires if fire not in run], len(set(fires) & run))


def run(plan: Plan, requested_by: str, progress=None) -> list[tuple[datetime, str]]:
    """Run each fire of the plan; returns (fire, "succeeded" / "failed: …" / "already run")."""
    outcomes = []
    for fire in plan.fires:
        history.forget_missed(plan.job_id, fire)
        if history.has_run(plan.job_id, fire):  # meanwhile, by a scheduler
            outcome = "already run"
        else:
            try:
                execution.run_for_fire(plan.job_id, fire, triggered_by=requested_by)
            except Exception as error:
                outcome = f"failed: {type(error).__name__}: {error}"
            else:
                outcome = "succeeded"
        outcomes.append((fire, outcome))
        if progress:
            progress(fire, outcome)
    return outcomes


def _declaration(job_id: str) -> JobDeclaration:
    errors = declaration_errors()
    if errors:
        raise BackfillRefused(
            f"Nothing run: {len(errors)} error(s) in the job declarations; run "
            f"`python manage.py check` for details (first: {errors[0].msg})"
        )
    declared = declared_jobs()
    if job_id not in declared:
        known = ", ".join(sorted(declared)) or "none are declared"
        raise BackfillRefused(f"Unknown job {job_id!r}. Choose one of: {known}.")
    if not DjangoJob.objects.filter(id=job_id).exists():
        raise BackfillRefused(
            f"Job {job_id!r} is declared but not in the job store yet. "
            "Run `python manage.py scheduler sync` first."
        )
    return declared[job_id]


def _fires(declaration: JobDeclaration, start: datetime, end: datetime, limit) -> list[datetime]:
    trigger = declaration.trigger()
    fires = []
    fire = trigger.get_next_fire_time(None, start - timedelta(microseconds=1))
    while fire is not None and fire <= end:
        if fire >= start:
            fires.append(fire)
        if limit is not None and len(fires) > limit:
            raise BackfillRefused(
                f"{declaration.id} fires more than {limit:,} times from {start.isoformat()} "
                f"to {end.isoformat()}; narrow the range, or pass --force."
            )
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return fires
