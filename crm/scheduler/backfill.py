"""Running the fires of a past range that never ran (`scheduler backfill`, and
the admin's Backfill page through the active scheduler).

Each fire of the job's schedule from `start` to `end` that has no run (no
history row, or one recorded `Missed!`) runs once, oldest first, one at a
time, in the calling thread's RunContext, with its own fire time (the
declaration's `fire_time_kwarg`), recorded as triggered by the operator. A job
that does not take its fire time would do the same work each time: refused
unless forced.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from crm.scheduler import execution, history
from crm.scheduler.checks import declaration_errors
from crm.scheduler.declarations import JobDeclaration, declared_jobs

MAX_FIRES = 10_000  # more than this in one range needs force
SUCCEEDED, ALREADY_RUN = "succeeded", "already run"
STOPPED = "not run: the scheduler stopped or may have lost its lease"
FAILURES_NAMED = 3  # in a summary


class BackfillRefused(ValueError):
    """The message says why, and what to do instead."""


@dataclass(frozen=True)
class Wording:
    """How the caller names the backfill's inputs, so that a refusal names the fix."""

    start: str = "--from"
    end: str = "--to"
    force: str = "pass --force"
    run_once: str = "Run it once with `scheduler run`"


@dataclass(frozen=True)
class Plan:
    job_id: str
    fires: list[datetime]  # to run, oldest first
    already_run: int  # fires of the range that have a run


def plan(
    job_id: str,
    start: datetime,
    end: datetime,
    force: bool = False,
    wording: Wording | None = None,
) -> Plan:
    words = wording or Wording()
    declaration = _declaration(job_id)
    if start > end:
        raise BackfillRefused(
            f"{words.start} {start.isoformat()} is after {words.end} {end.isoformat()}."
        )
    if end > timezone.now():
        raise BackfillRefused(
            f"{words.end} {end.isoformat()} is in the future; a backfill runs past fires only."
        )
    if not declaration.fire_time_kwarg and not force:
        raise BackfillRefused(
            f"{job_id} does not take its fire time (no fire_time_kwarg in its declaration), "
            f"so each backfilled fire would do the same work as a run now. {words.run_once}, "
            f"or {words.force} to run it once per fire anyway."
        )
    fires = _fires(declaration, start, end, limit=None if force else MAX_FIRES, words=words)
    run = set(
        DjangoJobExecution.objects.filter(job_id=job_id, run_time__range=(start, end))
        .exclude(status=history.MISSED)
        .values_list("run_time", flat=True)
    )
    return Plan(job_id, [fire for fire in fires if fire not in run], len(set(fires) & run))


def run(plan: Plan, requested_by: str, progress=None) -> list[tuple[datetime, str]]:
    """Run each fire of the plan; returns (fire, "succeeded" / "failed: …" /
    "already run"). In a scheduler's RunContext it stops at the first fire
    that cannot run there (STOPPED): the scheduler stops, or may have lost its lease."""
    context = execution.current_context()
    outcomes = []
    for fire in plan.fires:
        if context.stopping.is_set() or not context.may_run():
            outcome = STOPPED
        else:
            outcome = _run_fire(plan.job_id, fire, requested_by)
        outcomes.append((fire, outcome))
        if progress:
            progress(fire, outcome)
        if outcome == STOPPED:
            break
    return outcomes


def summary(plan: Plan, outcomes: list[tuple[datetime, str]]) -> str:
    """One line: how many fires ran and how they went, failures named."""
    ran = [(fire, outcome) for fire, outcome in outcomes if outcome != STOPPED]
    failures = [(fire, outcome) for fire, outcome in ran if outcome.startswith("failed")]
    succeeded = sum(outcome == SUCCEEDED for _, outcome in ran)
    already = len(ran) - succeeded - len(failures)
    parts = [f"{succeeded:,} succeeded"] if succeeded else []
    if already:
        parts.append(f"{already:,} already run meanwhile")
    if failures:
        named = "; ".join(
            f"{fire.isoformat()}: {outcome.removeprefix('failed: ')}"
            for fire, outcome in failures[:FAILURES_NAMED]
        )
        if len(failures) > FAILURES_NAMED:
            named += f"; and {len(failures) - FAILURES_NAMED:,} more"
        parts.append(f"{len(failures):,} failed ({named})")
    text = f"ran {len(ran):,} fires" + (": " + ", ".join(parts) if parts else "")
    if len(ran) < len(outcomes):
        text += (
            f"; stopped before the fire of {outcomes[-1][0].isoformat()}: the scheduler "
            "stopped or may have lost its lease (backfill the range again for the rest)"
        )
    if plan.already_run:
        text += f"; {plan.already_run:,} of the range had run already"
    return text


def all_succeeded(outcomes: list[tuple[datetime, str]]) -> bool:
    return all(outcome in (SUCCEEDED, ALREADY_RUN) for _, outcome in outcomes)


def _run_fire(job_id: str, fire: datetime, requested_by: str) -> str:
    history.forget_missed(job_id, fire)
    if history.has_run(job_id, fire):  # meanwhile, by a scheduler
        return ALREADY_RUN
    try:
        execution.run_for_fire(job_id, fire, triggered_by=requested_by)
    except Exception as error:
        return f"failed: {type(error).__name__}: {error}"
    # A run refused (the lease may have passed on as it was to start) leaves no row.
    return SUCCEEDED if history.has_run(job_id, fire) else STOPPED


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


def _fires(
    declaration: JobDeclaration, start: datetime, end: datetime, limit, words: Wording
) -> list[datetime]:
    trigger = declaration.trigger()
    fires = []
    fire = trigger.get_next_fire_time(None, start - timedelta(microseconds=1))
    while fire is not None and fire <= end:
        if fire >= start:
            fires.append(fire)
        if limit is not None and len(fires) > limit:
            raise BackfillRefused(
                f"{declaration.id} fires more than {limit:,} times from {start.isoformat()} "
                f"to {end.isoformat()}; narrow the range, or {words.force}."
            )
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return fires
