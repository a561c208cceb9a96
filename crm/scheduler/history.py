"""Run history: django-apscheduler's DjangoJobExecution, one row per fire, plus
our RunDetail (who triggered it, real start, host, result).

The process that runs a job writes its row itself, when the run starts and
when it ends, so the row says what really happened: its duration is the run's
own (django-apscheduler's listeners count from the scheduled time, so a late
run looked long), and a fire that already has a row is never run again.
"""

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from crm.scheduler.connections import drop_connection
from crm.scheduler.models import RunDetail

logger = logging.getLogger("crm.scheduler")

RUNNING = DjangoJobExecution.SENT
SUCCEEDED = DjangoJobExecution.SUCCESS
FAILED = DjangoJobExecution.ERROR
MISSED = DjangoJobExecution.MISSED
SKIPPED = DjangoJobExecution.MAX_INSTANCES
INTERRUPTED = "Interrupted"
TIMED_OUT = "Timed out"
BY_SCHEDULE = "schedule"
EXCEPTION_LENGTH = DjangoJobExecution._meta.get_field("exception").max_length


class JobNotStored(LookupError):
    def __init__(self, job_id: str):
        super().__init__(
            f"Job {job_id!r} is declared but not in the job store yet. "
            "Run `python manage.py scheduler sync` first."
        )


@dataclass
class Run:
    execution: DjangoJobExecution
    started: float  # monotonic


def start_run(
    job_id: str, scheduled_at: datetime, triggered_by: str, *, host: str, pid: int, scheduler=""
) -> Run | None:
    """Record that a run starts. Returns None if this fire already has a row:
    some process has run it (or is running it), and it must not run twice."""
    if not DjangoJob.objects.filter(id=job_id).exists():
        raise JobNotStored(job_id)
    try:
        with transaction.atomic():
            execution = DjangoJobExecution.objects.create(
                job_id=job_id, run_time=scheduled_at, status=RUNNING
            )
            RunDetail.objects.create(
                execution=execution,
                triggered_by=triggered_by[:200],
                started_at=timezone.now(),
                host=host,
                pid=pid,
                scheduler=scheduler,
            )
    except IntegrityError:
        return None
    return Run(execution, time.monotonic())


@dataclass(frozen=True)
class Ending:
    """How a run ended, as written to its history row."""

    execution_id: int
    changes: dict
    result: object


def finish_run(
    run: Run, *, status: str, result=None, error_text=None, traceback_text=None
) -> Ending | None:
    """Record how a run ended. Returns the ending if the database did not
    answer, for the caller to keep and write later (`write_ending`)."""
    duration = time.monotonic() - run.started
    ending = Ending(
        run.execution.pk,
        {
            "status": status,
            "duration": Decimal(f"{duration:.2f}"),
            "finished": Decimal(f"{time.time():.2f}"),
            "exception": _short(error_text) if error_text is not None else None,
            "traceback": traceback_text,
        },
        _as_json(result),
    )
    try:
        _write(ending)
    except DatabaseError as database_error:
        drop_connection()
        logger.warning(
            "scheduler: run %s of %s ended (%s) but the database did not take it (%s); "
            "it is recorded when the database answers again",
            run.execution.pk,
            run.execution.job_id,
            status,
            database_error,
        )
        return ending
    return None


def write_ending(ending: Ending) -> bool:
    """Write an ending `finish_run` could not; False if the database still does not answer."""
    try:
        _write(ending)
    except DatabaseError:
        drop_connection()
        return False
    return True


def _write(ending: Ending) -> None:
    with transaction.atomic():
        DjangoJobExecution.objects.filter(pk=ending.execution_id).update(**ending.changes)
        RunDetail.objects.filter(execution_id=ending.execution_id).update(result=ending.result)


def record_missed(job_id: str, scheduled_at: datetime, grace_seconds) -> None:
    late = (timezone.now() - scheduled_at).total_seconds()
    _record_not_run(
        job_id,
        scheduled_at,
        MISSED,
        f"Missed: no scheduler ran it within its misfire grace of {grace_seconds} s "
        f"(a scheduler became active {late:.0f} s after the fire time).",
    )


def record_skipped(job_id: str, scheduled_at: datetime, by: str | None = None) -> None:
    """A fire not run: the previous run was still going, or someone skipped it (`by`)."""
    message = f"Skipped by {by}." if by else "Skipped: the previous run was still going."
    _record_not_run(job_id, scheduled_at, SKIPPED, message)


def _record_not_run(job_id, scheduled_at, status, message) -> None:
    try:
        with transaction.atomic():
            DjangoJobExecution.objects.create(
                job_id=job_id, run_time=scheduled_at, status=status, exception=_short(message)
            )
    except IntegrityError:
        pass  # that fire already has a row, or the job was removed meanwhile


def has_run(job_id: str, scheduled_at: datetime) -> bool:
    """Whether that fire has a row other than `Missed!`: run, going on, or skipped."""
    rows = DjangoJobExecution.objects.filter(job_id=job_id, run_time=scheduled_at)
    return rows.exclude(status=MISSED).exists()


def forget_missed(job_id: str, scheduled_at: datetime) -> None:
    """Drop the `Missed!` row of a fire about to run after all (a backfill):
    the run's own row takes its place."""
    DjangoJobExecution.objects.filter(job_id=job_id, run_time=scheduled_at, status=MISSED).delete()


def mark_interrupted_runs(previous_holder: str, still_going: frozenset[int] = frozenset()) -> int:
    """Runs still marked as running when a scheduler becomes active were cut
    short: only the lease holder runs scheduled jobs, and the previous one is
    gone. Left alone: `still_going`, the runs this process itself is running
    or has yet to record the end of (it may take the lease again after an
    outage), and runs started by hand in another process (`scheduler run --here`)."""
    stale = (
        DjangoJobExecution.objects.filter(status=RUNNING)
        .exclude(detail__scheduler="")
        .exclude(pk__in=still_going)
    )
    return stale.update(
        status=INTERRUPTED,
        exception=_short(
            f"Interrupted: the process running it stopped ({previous_holder or 'unknown'})."
        ),
    )


def detail_of(execution: DjangoJobExecution) -> RunDetail | None:
    try:
        return execution.detail
    except RunDetail.DoesNotExist:  # a row written before run details existed
        return None


def _short(text: str) -> str:
    return text if len(text) <= EXCEPTION_LENGTH else text[: EXCEPTION_LENGTH - 1] + "…"


def _as_json(value):
    try:
        return json.loads(json.dumps(value, cls=DjangoJSONEncoder))
    except (TypeError, ValueError):
        return repr(value)
