"""How many runs of each job ended with each outcome, for the metrics' counters:
exact, shared by every process, kept when old history is pruned, and cheap
over millions of runs.

Counting the whole history on every scrape would cost a scan of it (about
0.2 s for a million runs on SQLite, even with a covering index). Instead the
runs are counted once into RunTally, a few minutes behind: each count takes the
runs whose ids lie between the end of the last count and the highest id seen
at the one before (so a row being written as the id was seen has long been
committed), and keeps the ids of those not finished yet to look at again next
time. A read adds the runs after the last count to the tallies.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution

from crm.scheduler import history
from crm.scheduler.models import RunTally, RunTallyMark

# The outcomes a run ends with; a run with another status has not ended yet.
ENDED = (
    history.SUCCEEDED,
    history.FAILED,
    history.TIMED_OUT,
    history.INTERRUPTED,
    history.MISSED,
    history.SKIPPED,
)
COUNT_EVERY = timedelta(minutes=5)
MARK_NAME = "default"
READ_ATTEMPTS = 3


@dataclass(frozen=True)
class Outcome:
    runs: int
    last_finished: float | None  # Unix time


def outcomes() -> dict[tuple[str, str], Outcome]:
    """Runs that ended so far, by (job id, status): counted ones plus newer ones."""
    mark = _mark()
    if timezone.now() - mark.counted_at >= COUNT_EVERY and count_runs(mark):
        mark = _mark()
    for _ in range(READ_ATTEMPTS):
        totals = _tallies()
        # Filtered and added up here: a status filter or a GROUP BY would have
        # SQLite walk the whole history by another index than these few ids.
        newer = DjangoJobExecution.objects.filter(_uncounted(mark)).order_by()
        for job_id, status, finished in newer.values_list("job_id", "status", "finished"):
            if status in ENDED:
                key = (job_id, status)
                totals[key] = _plus(totals.get(key), Outcome(1, _seconds(finished)))
        # A count that committed meanwhile moved runs from one part to the other.
        latest = _mark()
        if _position(latest) == _position(mark):
            break
        mark = latest
    return totals


def count_runs(mark: RunTallyMark | None = None) -> bool:
    """Move the runs due for counting into the tallies; False if another
    process did it first."""
    mark = mark or _mark()
    highest = DjangoJobExecution.objects.aggregate(highest=Max("pk"))["highest"] or 0
    due = Q(pk__gt=mark.counted_through, pk__lte=mark.next_through) | Q(pk__in=mark.pending)
    with transaction.atomic():
        claimed = RunTallyMark.objects.filter(
            pk=mark.pk, counted_through=mark.counted_through, next_through=mark.next_through
        ).update(counted_at=timezone.now())
        if not claimed:
            return False
        runs = DjangoJobExecution.objects.filter(due)
        pending = list(runs.exclude(status__in=ENDED).values_list("pk", flat=True))
        _add(_ended_runs(due))
        RunTallyMark.objects.filter(pk=mark.pk).update(
            counted_through=mark.next_through,
            next_through=highest,
            pending=pending,
        )
    return True


def _mark() -> RunTallyMark:
    mark = RunTallyMark.objects.filter(pk=MARK_NAME).first()
    if mark is None:
        highest = DjangoJobExecution.objects.aggregate(highest=Max("pk"))["highest"] or 0
        RunTallyMark.objects.bulk_create(
            [RunTallyMark(name=MARK_NAME, next_through=highest)], ignore_conflicts=True
        )
        mark = RunTallyMark.objects.get(pk=MARK_NAME)
    return mark


def _position(mark: RunTallyMark) -> tuple:
    return mark.counted_through, mark.next_through


def _uncounted(mark: RunTallyMark) -> Q:
    return Q(pk__gt=mark.counted_through) | Q(pk__in=mark.pending)


def _ended_runs(which: Q) -> dict[tuple[str, str], Outcome]:
    rows = (
        DjangoJobExecution.objects.filter(which, status__in=ENDED)
        .values("job_id", "status")
        .annotate(runs=Count("pk"), last_finished=Max("finished"))
        .order_by()
    )
    return {
        (row["job_id"], row["status"]): Outcome(row["runs"], _seconds(row["last_finished"]))
        for row in rows
    }


def _tallies() -> dict[tuple[str, str], Outcome]:
    rows = RunTally.objects.values_list("job_id", "status", "runs", "last_finished")
    return {(job_id, status): Outcome(runs, last) for job_id, status, runs, last in rows}


def _add(counted: dict[tuple[str, str], Outcome]) -> None:
    """Only ever called by the one process that claimed the count."""
    before = _tallies()
    RunTally.objects.bulk_create(
        [
            RunTally(job_id=job_id, status=status, **vars(_plus(before.get(key), outcome)))
            for key, outcome in counted.items()
            for job_id, status in [key]
        ],
        update_conflicts=True,
        # MySQL and MariaDB take the conflict on any unique key and refuse a target.
        unique_fields=[] if connection.vendor == "mysql" else ["job_id", "status"],
        update_fields=["runs", "last_finished"],
    )


def _plus(tally: Outcome | None, more: Outcome) -> Outcome:
    if tally is None:
        return more
    finished = [at for at in (tally.last_finished, more.last_finished) if at is not None]
    return Outcome(tally.runs + more.runs, max(finished, default=None))


def _seconds(finished) -> float | None:
    return None if finished is None else float(finished)
