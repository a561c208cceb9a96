"""Pruning at scale: the real job (crm.jobs.delete_old_job_executions, in a
process of its own) against a single DELETE of the same rows."""

from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone
from django_apscheduler.models import DjangoJob

from benchmarks.children import run_job_in_child
from benchmarks.data import delete_run_history, insert_executions
from benchmarks.measure import LongestStatement, stopwatch
from benchmarks.report import Figure
from crm.scheduler import control

JOB = "delete_old_job_executions"
RETENTION_DAYS = 7
JOBS = ["nightly", "hourly", "heartbeat"]


def run(sizes: list[int]) -> list[Figure]:
    control.sync("benchmark")
    figures, per_row = [], {}
    for size in sizes:
        old = size * 9 // 10
        fill(size, old)
        ours = run_job_in_child(JOB, EXECUTION_RETENTION_DAYS=str(RETENTION_DAYS))
        # Each job's latest run is kept even when old; here none is.
        assert ours["result"]["deleted"] == old, ours
        fill(size, old)
        with LongestStatement().watching() as reference, stopwatch() as elapsed:
            assert single_delete() == old
        per_row[size] = ours["seconds"] / old
        largest = size == sizes[-1]
        figures.append(
            Figure(
                "pruning",
                f"{size:,} executions, {old:,} past retention: time",
                ours["seconds"],
                "s",
                elapsed(),
                "one DELETE",
                "≤ 2x" if largest else "",
                ours["seconds"] <= 2 * elapsed() if largest else None,
            )
        )
    figures += [
        Figure(
            "pruning",
            f"{sizes[-1]:,} executions: longest statement",
            ours["longest_statement"],
            "s",
            reference.longest_statement,
            "one DELETE",
            "< 0.5 s",
            ours["longest_statement"] < 0.5,
        ),
        Figure(
            "pruning",
            f"growth: time per row at {sizes[-1]:,} vs {sizes[0]:,}",
            per_row[sizes[-1]] * 1e6,
            "µs",
            per_row[sizes[0]] * 1e6,
            f"at {sizes[0]:,}",
            "≤ 1.5x (linear or better)",
            per_row[sizes[-1]] <= 1.5 * per_row[sizes[0]],
        ),
    ]
    clear()
    return figures


def fill(size: int, old: int) -> None:
    """`old` runs from long ago, then the rest within the retention period."""
    clear()
    for job_id in JOBS:
        DjangoJob.objects.get_or_create(id=job_id, defaults={"job_state": b""})
    now = timezone.now().replace(microsecond=0)
    insert_executions(old, JOBS, now - timedelta(days=RETENTION_DAYS + 30))
    insert_executions(size - old, JOBS, now - timedelta(days=RETENTION_DAYS - 2))


def single_delete() -> int:
    cutoff = timezone.now() - timedelta(days=RETENTION_DAYS)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM django_apscheduler_djangojobexecution WHERE run_time < %s",
            [connection.ops.adapt_datetimefield_value(cutoff)],
        )
        return cursor.rowcount


def clear() -> None:
    delete_run_history()
    DjangoJob.objects.filter(id__in=JOBS).delete()
