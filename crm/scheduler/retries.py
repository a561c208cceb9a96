"""Retries: a failed run of a job that declares `retries` is tried again, as
the same fire, after a growing wait.

The fire's history row waits as `Retrying`, with the time of its next attempt
(RunDetail.retry_at), so the state is in the database and not in a process:
whichever scheduler is active when that time comes claims the row (a
conditional UPDATE, so no attempt runs twice) and runs the next attempt. A
retry never starts once the job's next regular fire is due; the fire then
keeps its last failure.
"""

import hashlib
import logging
from datetime import datetime, timedelta

from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution

from crm.scheduler import history, isolation
from crm.scheduler.declarations import JobDeclaration, class_name, declared_jobs, exception_class
from crm.scheduler.models import DisabledJob, JobPause

logger = logging.getLogger("crm.scheduler")


def wait_before(declaration: JobDeclaration, fire_time: datetime, attempt: int) -> timedelta:
    """The wait after failed attempt `attempt` (1 for the first): the backoff,
    doubled for each attempt before, at most the maximum, and then between
    half of that and all of it, drawn from the fire (every process draws the same)."""
    longest = min(
        declaration.retry_backoff_seconds * 2 ** (attempt - 1),
        declaration.retry_backoff_max_seconds,
    )
    digest = hashlib.sha256(f"{declaration.id}@{fire_time.timestamp()!r}#{attempt}".encode())
    fraction = int.from_bytes(digest.digest()[:8], "big") / 2**64
    return timedelta(seconds=longest * (0.5 + 0.5 * fraction))


def next_attempt_at(
    declaration: JobDeclaration, fire_time: datetime, attempt: int, error: Exception
) -> datetime | None:
    """When the fire's attempt after `attempt` starts; None when there is none:
    no retries left, an error not named in retry_on, or a wait that would
    reach the job's next regular fire."""
    if attempt > declaration.retries or not retried(declaration, error):
        return None
    at = timezone.now() + wait_before(declaration, fire_time, attempt)
    next_fire = next_regular_fire(declaration, fire_time)
    return at if next_fire is None or at < next_fire else None


def retried(declaration: JobDeclaration, error: Exception) -> bool:
    if not declaration.retry_on:
        return True
    wanted = [exception_class(name) for name in declaration.retry_on]
    if isinstance(error, isolation.ChildFailed):  # raised in another process: by class names
        return any(class_name(cls) in error.classes for cls in wanted)
    return isinstance(error, tuple(wanted))


def next_regular_fire(declaration: JobDeclaration, fire_time: datetime) -> datetime | None:
    return declaration.trigger().get_next_fire_time(
        fire_time, fire_time + timedelta(microseconds=1)
    )


def start_due(scheduler) -> int:
    """Hand each fire whose next attempt is due to `scheduler` (the active one);
    returns how many were handed on. Fires of paused jobs wait."""
    declared = declared_jobs()
    waiting = (
        DjangoJobExecution.objects.filter(
            status=history.RETRYING, detail__retry_at__lte=timezone.now()
        )
        .exclude(job_id__in=JobPause.objects.values("job_id"))
        .exclude(job_id__in=DisabledJob.objects.values("job_id"))
        .order_by("detail__retry_at")
    )
    started = 0
    for execution in waiting:
        declaration = declared.get(execution.job_id)
        if declaration is None:
            history.give_up_retrying(execution.pk, "the job is no longer declared")
            continue
        next_fire = next_regular_fire(declaration, execution.run_time)
        if next_fire is not None and next_fire <= timezone.now():
            history.give_up_retrying(execution.pk, "the job's next fire was due first")
            continue
        job = scheduler.get_job(execution.job_id)
        if job is not None and scheduler.submit_once(job, execution.run_time, waiting=execution.pk):
            started += 1
    return started
