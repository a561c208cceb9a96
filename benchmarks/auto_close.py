"""Auto-close at scale: the real job (crm.jobs.auto_close_resolved_tickets, in a
process of its own) against hand-written SQL doing the same writes, and against
the naive loop of one save() per ticket."""

from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from benchmarks.children import run_job_in_child
from benchmarks.data import insert_tickets
from benchmarks.measure import stopwatch
from benchmarks.report import Figure
from crm.jobs import auto_close_reason
from crm.models import Ticket, TicketEvent
from crm.scheduler import control

JOB = "auto_close_resolved_tickets"
RESOLVED_FROM = datetime(2026, 1, 1, tzinfo=UTC)
NAIVE_DUE = 20_000
REASON = auto_close_reason(24)


def run(sizes: list[int]) -> list[Figure]:
    control.sync("benchmark")
    figures, per_ticket = [], {}
    for size in sizes:
        due = size // 2
        clear_tickets()
        insert_tickets(size, due, RESOLVED_FROM)
        ours = run_job_in_child(JOB)
        assert ours["result"]["closed"] == due, ours
        reopen()
        with stopwatch() as elapsed:
            assert hand_written_sql() == due
        per_ticket[size] = ours["seconds"] / due
        figures.append(
            Figure(
                "auto-close",
                f"{size:,} tickets, {due:,} due: time",
                ours["seconds"],
                "s",
                elapsed(),
                "hand-written SQL",
                "≤ 1.5x" if size == sizes[-1] else "",
                ours["seconds"] <= 1.5 * elapsed() if size == sizes[-1] else None,
            )
        )
    largest = sizes[-1]
    figures += [
        Figure(
            "auto-close",
            f"{largest:,} tickets: longest transaction",
            ours["longest_transaction"],
            "s",
            target="< 1 s",
            met=ours["longest_transaction"] < 1,
        ),
        Figure(
            "auto-close",
            f"{largest:,} tickets: peak memory growth",
            ours["memory_growth_mb"],
            "MB",
            target="< 100 MB",
            met=ours["memory_growth_mb"] < 100,
        ),
        Figure(
            "auto-close",
            f"growth: time per ticket at {largest:,} vs {sizes[0]:,}",
            per_ticket[largest] * 1e6,
            "µs",
            per_ticket[sizes[0]] * 1e6,
            f"at {sizes[0]:,}",
            "≤ 1.5x (linear or better)",
            per_ticket[largest] <= 1.5 * per_ticket[sizes[0]],
        ),
    ]
    figures.append(naive_loop_figure())
    clear_tickets()
    return figures


def naive_loop_figure() -> Figure:
    clear_tickets()
    insert_tickets(2 * NAIVE_DUE, NAIVE_DUE, RESOLVED_FROM)
    ours = run_job_in_child(JOB)
    reopen()
    with stopwatch() as elapsed:
        naive_loop()
    return Figure(
        "auto-close",
        f"{NAIVE_DUE:,} due: time per ticket",
        ours["seconds"] / NAIVE_DUE * 1e6,
        "µs",
        elapsed() / NAIVE_DUE * 1e6,
        "save() per ticket",
    )


def cutoff() -> datetime:
    return timezone.now() - timedelta(hours=24)


def hand_written_sql() -> int:
    """What the job must write, in two statements and one transaction."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    before = connection.ops.adapt_datetimefield_value(cutoff())
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO crm_ticketevent (ticket_id, kind, from_status, to_status, reason, "
            "created_at) SELECT id, 'status', 'resolved', 'closed', %s, %s FROM crm_ticket "
            "WHERE status = 'resolved' AND resolved_at < %s",
            [REASON, now, before],
        )
        cursor.execute(
            "UPDATE crm_ticket SET status = 'closed', closed_at = %s, updated_at = %s "
            "WHERE status = 'resolved' AND resolved_at < %s",
            [now, now, before],
        )
        return cursor.rowcount


def naive_loop() -> None:
    """What the seed's version does: load each ticket, save() it, add its event."""
    for ticket in Ticket.objects.filter(status="resolved", resolved_at__lt=cutoff()):
        with transaction.atomic():
            ticket.status, ticket.closed_at = "closed", timezone.now()
            ticket.save()
            TicketEvent.objects.create(
                ticket=ticket, kind="status", from_status="resolved", to_status="closed",
                reason=REASON,
            )  # fmt: skip


def reopen() -> None:
    """Back to the state before the job ran."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM crm_ticketevent")
        cursor.execute(
            "UPDATE crm_ticket SET status = 'resolved', closed_at = NULL WHERE status = 'closed'"
        )


def clear_tickets() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("TRUNCATE crm_ticketevent, crm_ticket")
        else:
            cursor.execute("DELETE FROM crm_ticketevent")
            cursor.execute("DELETE FROM crm_ticket")
