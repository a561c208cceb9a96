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
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from crm.scheduler.connections import drop_connection
from crm.scheduler.lease import DatabaseNow, database_now_plus
from crm.scheduler.models import RunAttempt, RunDetail

logger = logging.getLogger("crm.scheduler")

RUNNING = DjangoJobExecution.SENT
SUCCEEDED = DjangoJobExecution.SUCCESS
FAILED = DjangoJobExecution.ERROR
MISSED = DjangoJobExecution.MISSED
SKIPPED = DjangoJobExecution.MAX_INSTANCES
INTERRUPTED = "Interrupted"
TIMED_OUT = "Timed out"
RETRYING = "Retrying"  # failed, and waits for its next attempt (crm.scheduler.retries)
QUEUED = "Queued"  # due while a run went on; runs once it ends (crm.scheduler.overlap)
WAITING = (RETRYING, QUEUED)
# Every status a run can have, in the order filters offer them.
STATUSES = (SUCCEEDED, FAILED, RUNNING, INTERRUPTED, TIMED_OUT, RETRYING, QUEUED, MISSED, SKIPPED)
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
    host: str
    pid: int
    attempt: int = 1  # of its fire (crm.scheduler.retries)


def start_run(
    job_id: str,
    scheduled_at: datetime,
    triggered_by: str,
    *,
    host: str,
    pid: int,
    scheduler="",
    ends_retries: bool = True,
) -> Run | None:
    """Record that a run starts. Returns None if this fire already has a row:
    some process has run it (or is running it), and it must not run twice.
    `ends_retries`: whether earlier fires of the job may wait for a retry
    (the job declares retries), which this fire then ends; without retries
    declared, crm.scheduler.retries ends those as the next fire falls due."""
    if connection.in_atomic_block and not DjangoJob.objects.filter(id=job_id).exists():
        # The foreign key is checked as the outermost transaction commits:
        # in a caller's, too late to tell.
        raise JobNotStored(job_id)
    who = {"triggered_by": triggered_by[:200], "host": host, "pid": pid, "scheduler": scheduler}
    try:
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            execution = _insert_run_in_one_statement(job_id, scheduled_at, **who)
        else:
            with transaction.atomic():
                execution = DjangoJobExecution.objects.create(
                    job_id=job_id, run_time=scheduled_at, status=RUNNING
                )
                RunDetail.objects.create(
                    execution=execution,
                    started_at=timezone.now(),
                    heartbeat_at=DatabaseNow(),
                    **who,
                )
    except IntegrityError:
        # A missing job is looked up only now, off every run's way to its job.
        if not DjangoJob.objects.filter(id=job_id).exists():
            raise JobNotStored(job_id) from None
        return None
    if ends_retries:
        for waiting in DjangoJobExecution.objects.filter(
            job_id=job_id, status=RETRYING, run_time__lt=scheduled_at
        ).values_list("pk", flat=True):
            give_up_retrying(waiting, f"the fire of {scheduled_at.isoformat()} started first")
    return Run(execution, time.monotonic(), host, pid)


def _insert_run_in_one_statement(
    job_id, scheduled_at, *, triggered_by, host, pid, scheduler
) -> DjangoJobExecution:
    """The run's row and its detail in one statement, in autocommit its own
    transaction: one round trip to the server instead of four (BEGIN, two
    INSERTs, COMMIT), on the way from the fire to its job. Not inside a
    caller's transaction, which a duplicate fire would abort."""
    execution_table, detail_table = (
        connection.ops.quote_name(model._meta.db_table) for model in (DjangoJobExecution, RunDetail)
    )
    columns = "execution_id, triggered_by, started_at, host, pid, scheduler, attempt, heartbeat_at"
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH execution AS ("
            f" INSERT INTO {execution_table} (job_id, status, run_time) VALUES (%s, %s, %s)"
            f" RETURNING id)"
            f" INSERT INTO {detail_table} ({columns})"
            f" SELECT id, %s, %s, %s, %s, %s, 1, STATEMENT_TIMESTAMP() FROM execution"
            f" RETURNING execution_id",
            [job_id, RUNNING, scheduled_at, triggered_by, timezone.now(), host, pid, scheduler],
        )
        [execution_id] = cursor.fetchone()
    return DjangoJobExecution.from_db(
        connection.alias,
        ["id", "job_id", "status", "run_time"],
        [execution_id, job_id, RUNNING, scheduled_at],
    )


def claim_waiting(execution_id: int, *, host: str, pid: int, scheduler: str) -> Run | None:
    """Take a fire that waits (for its next attempt, or for the run before it
    to end), to run it here; None if another process took it, or it stopped
    waiting."""
    with transaction.atomic():
        waiting = DjangoJobExecution.objects.filter(pk=execution_id, status__in=WAITING).first()
        if waiting is None:
            return None
        claimed = DjangoJobExecution.objects.filter(pk=execution_id, status=waiting.status)
        if not claimed.update(status=RUNNING):
            return None
        who = {"host": host, "pid": pid, "scheduler": scheduler, "heartbeat_at": DatabaseNow()}
        if waiting.status == RETRYING:
            RunDetail.objects.filter(execution_id=execution_id).update(
                attempt=F("attempt") + 1, retry_at=None, started_at=timezone.now(), **who
            )
        else:
            RunDetail.objects.create(
                execution_id=execution_id,
                triggered_by=BY_SCHEDULE,
                started_at=timezone.now(),
                **who,
            )
    execution = DjangoJobExecution.objects.select_related("detail").get(pk=execution_id)
    return Run(execution, time.monotonic(), host, pid, execution.detail.attempt)


def run_queued_instead(job_id: str, scheduled_at: datetime, **who) -> Run | None:
    """Claim the job's earliest fire queued before `scheduled_at` (see
    `claim_waiting`, `who`) and record `scheduled_at` as coalesced into it;
    None if there is none, or another process took it."""
    queued = (
        DjangoJobExecution.objects.filter(job_id=job_id, status=QUEUED, run_time__lt=scheduled_at)
        .order_by("run_time")
        .first()
    )
    run = queued and claim_waiting(queued.pk, **who)
    if run:
        _coalesced(job_id, scheduled_at, queued.run_time)
    return run or None


def _coalesced(job_id: str, scheduled_at: datetime, into: datetime) -> None:
    message = f"Skipped: coalesced into the queued fire of {into.isoformat()}."
    _record_not_run(job_id, scheduled_at, SKIPPED, message)


def queue_fire(job_id: str, scheduled_at: datetime) -> None:
    """A fire due while the job's runs were going on, to run once one ends:
    queued, unless a fire is queued already, into which it is coalesced."""
    queued = DjangoJobExecution.objects.filter(job_id=job_id, status=QUEUED).first()
    if queued is None:
        _record_not_run(job_id, scheduled_at, QUEUED, "Queued: the previous run was still going.")
    else:
        _coalesced(job_id, scheduled_at, queued.run_time)


def beat(execution_ids) -> None:
    """Say that these runs are still going in this process."""
    RunDetail.objects.filter(execution_id__in=execution_ids).update(heartbeat_at=DatabaseNow())


def running_elsewhere(job_id: str, *, host: str, pid: int, live_within: timedelta) -> int:
    """Runs of the job that a scheduler in another process started and that its
    process said within `live_within` are still going."""
    return _live_elsewhere(host, pid, live_within).filter(job_id=job_id).count()


def jobs_running_elsewhere(*, host: str, pid: int, live_within: timedelta) -> frozenset[str]:
    """The jobs that have runs going on elsewhere, as `running_elsewhere` counts them."""
    jobs = _live_elsewhere(host, pid, live_within).values_list("job_id", flat=True).distinct()
    return frozenset(jobs)


def _live_elsewhere(host: str, pid: int, live_within: timedelta):
    return (
        DjangoJobExecution.objects.filter(status=RUNNING)
        .exclude(detail__scheduler="")
        .exclude(detail__host=host, detail__pid=pid)
        .filter(detail__heartbeat_at__gte=database_now_plus(-live_within))
    )


def give_up_retrying(execution_id: int, because: str) -> None:
    """End a fire that waits for its next attempt, as failed: its last attempt's error stays."""
    for execution in DjangoJobExecution.objects.filter(pk=execution_id, status=RETRYING):
        DjangoJobExecution.objects.filter(pk=execution.pk, status=RETRYING).update(
            status=FAILED,
            exception=_short(f"No more attempts ({because}). {execution.exception or ''}".strip()),
        )
        RunDetail.objects.filter(execution_id=execution.pk).update(retry_at=None)


@dataclass(frozen=True)
class Ending:
    """How a run ended, as written to its history row."""

    execution_id: int
    changes: dict
    detail_changes: dict
    attempt: dict | None  # the RunAttempt row, for a job with retries


def finish_run(
    run: Run,
    *,
    status: str,
    result=None,
    error_text=None,
    traceback_text=None,
    attempt: tuple[int, int] | None = None,
    retry_at: datetime | None = None,
) -> Ending | None:
    """Record how a run ended: with `attempt` (number, of how many), as one
    attempt of its fire; with `retry_at`, the fire waits for its next attempt.
    Returns the ending if the database did not answer, for the caller to keep
    and write later (`write_ending`)."""
    duration = Decimal(f"{time.monotonic() - run.started:.2f}")
    error_text = _short(error_text) if error_text is not None else None
    shown_error = error_text
    if retry_at is not None:
        number, attempts = attempt
        shown_error = _short(
            f"Attempt {number} of {attempts} failed ({error_text}); the next starts at "
            f"{timezone.localtime(retry_at):%Y-%m-%d %H:%M:%S %Z}."
        )
    ending = Ending(
        run.execution.pk,
        {
            "status": RETRYING if retry_at is not None else status,
            "duration": duration,
            "finished": Decimal(f"{time.time():.2f}"),
            "exception": shown_error,
            "traceback": traceback_text,
        },
        {"result": _as_json(result), "retry_at": retry_at},
        None
        if attempt is None
        else {
            "number": attempt[0],
            "status": status,
            "started_at": timezone.now() - timedelta(seconds=float(duration)),
            "duration": duration,
            "host": run.host,
            "pid": run.pid,
            "error": error_text or "",
            "traceback": traceback_text or "",
        },
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
        RunDetail.objects.filter(execution_id=ending.execution_id).update(**ending.detail_changes)
        if ending.attempt is not None:
            RunAttempt.objects.update_or_create(
                execution_id=ending.execution_id,
                number=ending.attempt["number"],
                defaults=ending.attempt,
            )


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


def mark_interrupted_runs(
    previous_holder: str = "",
    still_going: frozenset[int] = frozenset(),
    live_within: timedelta | None = None,
) -> int:
    """Runs still marked as running whose process is gone were cut short.
    Left alone: `still_going`, the runs this process itself is running or has
    yet to record the end of (it may take the lease again after an outage),
    runs started by hand in another process (`scheduler run --here`), and,
    given `live_within`, runs whose process said within it that they go on (it
    lost the lease but lives)."""
    stale = (
        DjangoJobExecution.objects.filter(status=RUNNING)
        .exclude(detail__scheduler="")
        .exclude(pk__in=still_going)
    )
    if live_within is not None:
        stale = stale.exclude(detail__heartbeat_at__gte=database_now_plus(-live_within))
    by_process = {}
    for pk, host, pid in stale.values_list("pk", "detail__host", "detail__pid"):
        by_process.setdefault((host, pid), []).append(pk)
    marked = 0
    for (host, pid), pks in by_process.items():
        who = f"host {host}, pid {pid}" if host else previous_holder or "unknown"
        marked += DjangoJobExecution.objects.filter(pk__in=pks, status=RUNNING).update(
            status=INTERRUPTED,
            exception=_short(f"Interrupted: the process running it stopped ({who})."),
        )
    return marked


def mark_own_runs_interrupted(execution_ids, holder) -> int:
    """Runs this process leaves behind as it stops: they end with it."""
    return DjangoJobExecution.objects.filter(pk__in=execution_ids, status=RUNNING).update(
        status=INTERRUPTED,
        exception=_short(
            f"Interrupted: its process stopped (host {holder.host}, pid {holder.pid}) while it ran."
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
