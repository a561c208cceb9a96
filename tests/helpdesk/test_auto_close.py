"""Auto-closing resolved tickets: the service, the job and `auto_close_tickets`."""

import threading
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from crm import jobs, services
from crm.models import Ticket, TicketEvent
from tests import factories

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def resolved(hours_ago: float, title="Printer offline") -> Ticket:
    """A ticket resolved `hours_ago` before NOW, through the services."""
    return factories.resolved_ticket(hours_ago, now=NOW, title=title)


def statuses():
    return dict(Ticket.objects.values_list("title", "status"))


def auto_close(*args):
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("auto_close_tickets", *args, stdout=out)
    return out.getvalue()


def test_it_closes_exactly_the_tickets_resolved_more_than_24_hours_ago(settings):
    settings.AUTO_CLOSE_AFTER_HOURS = 24
    resolved(25, "due")
    resolved(24.01, "just due")
    resolved(23, "not yet")
    factories.ticket("open", title="open")
    factories.ticket("pending", title="pending")

    with time_machine.travel(NOW, tick=False):
        counts = jobs.auto_close_resolved_tickets()

    assert counts == {"closed": 2, "skipped": 0}
    assert statuses()["due"] == statuses()["just due"] == "closed"
    assert statuses()["not yet"] == "resolved"
    assert (statuses()["open"], statuses()["pending"]) == ("open", "pending")
    closed = Ticket.objects.get(title="due")
    assert closed.closed_at == NOW and closed.updated_at == NOW


def test_it_writes_one_history_row_per_closed_ticket_as_the_system(settings):
    settings.AUTO_CLOSE_AFTER_HOURS = 24
    ticket = resolved(30)

    with time_machine.travel(NOW, tick=False):
        jobs.auto_close_resolved_tickets()

    last = TicketEvent.objects.filter(ticket=ticket).order_by("id").last()
    assert (last.kind, last.from_status, last.to_status) == ("status", "resolved", "closed")
    assert last.actor is None
    assert last.reason == "auto-closed after 24 h resolved"
    assert last.created_at == NOW
    assert TicketEvent.objects.filter(ticket=ticket, to_status="closed").count() == 1


def written(ticket):
    """The ticket's row and its history rows, all but the events' ids."""
    events = TicketEvent.objects.filter(ticket=ticket).order_by("id")
    fields = [field.attname for field in TicketEvent._meta.concrete_fields if field.name != "id"]
    return Ticket.objects.filter(pk=ticket.pk).values().get(), list(events.values(*fields))


def test_it_closes_a_ticket_exactly_as_closing_it_alone_does():
    ticket = resolved(30)
    with transaction.atomic():
        with time_machine.travel(NOW, tick=False):
            services.ticket_close(ticket=Ticket.objects.get(pk=ticket.pk), reason="auto")
        closed_alone = written(ticket)
        transaction.set_rollback(True)
    assert statuses() == {"Printer offline": "resolved"}

    with time_machine.travel(NOW, tick=False):
        result = services.tickets_auto_close(
            resolved_before=NOW - timedelta(hours=24), reason="auto"
        )

    assert result.closed == 1
    assert written(ticket) == closed_alone
    row, events = closed_alone
    assert (row["status"], row["closed_at"], row["updated_at"]) == ("closed", NOW, NOW)
    assert events[-1]["to_status"] == "closed"


def test_it_works_through_several_batches():
    for index in range(7):
        resolved(48, f"due {index}")
    resolved(1, "recent")

    with time_machine.travel(NOW, tick=False):
        result = services.tickets_auto_close(
            resolved_before=NOW - timedelta(hours=24), reason="test", batch_size=3
        )

    assert (result.closed, result.skipped) == (7, 0)
    assert TicketEvent.objects.filter(to_status="closed").count() == 7
    assert statuses()["recent"] == "resolved"


def test_the_command_honours_hours_and_says_what_it_did():
    resolved(10, "ten hours")
    resolved(30, "thirty hours")

    output = auto_close("--hours", "12")

    assert output == "Closed 1 tickets resolved more than 12 h ago; skipped 0 changed meanwhile.\n"
    assert statuses() == {"ten hours": "resolved", "thirty hours": "closed"}
    assert TicketEvent.objects.get(to_status="closed").reason == "auto-closed after 12 h resolved"


def test_a_dry_run_counts_and_writes_nothing():
    resolved(30)
    resolved(40)
    events = TicketEvent.objects.count()

    output = auto_close("--dry-run")

    assert (
        output == "Would close 2 tickets resolved more than 24 h ago (dry run: nothing changed).\n"
    )
    assert set(statuses().values()) == {"resolved"}
    assert TicketEvent.objects.count() == events


def test_progress_is_shown_per_batch_at_verbosity_2():
    for _ in range(3):
        resolved(30)

    output = auto_close("--batch-size", "2", "-v", "2")

    assert "  closed 2, skipped 0\n  closed 3, skipped 0\n" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hours", "0"], "--hours must be 1 or more, not 0."),
        (["--batch-size", "-5"], "--batch-size must be 1 or more, not -5."),
    ],
)
def test_bad_arguments_are_one_line_errors(args, message):
    with pytest.raises(CommandError) as error:
        auto_close(*args)
    assert str(error.value) == message


@pytest.mark.django_db(transaction=True)
def test_a_ticket_reopened_by_another_connection_meanwhile_stays_open():
    """The job reads the due ids, then writes each batch re-checking them on
    locked rows. Here another connection reopens a due ticket in between: its
    transaction holds the row (or, on SQLite, the write lock) while the job
    starts, and commits while the job waits."""
    stays = resolved(30, "reopened meanwhile")
    resolved(30, "closes")
    result = {}
    # Set when the job, its reads of the due ids done, starts the statement
    # that must wait for the transaction below: its batch's BEGIN on SQLite
    # (which takes the write lock), elsewhere the first statement in the batch's
    # transaction (which locks the rows).
    locking = threading.Event()

    def announce_locking(execute, sql, params, many, context):
        if sql.startswith("BEGIN") or context["connection"].in_atomic_block:
            locking.set()
        return execute(sql, params, many, context)

    def run_job():
        try:
            with connection.execute_wrapper(announce_locking):
                result["value"] = services.tickets_auto_close(
                    resolved_before=NOW - timedelta(hours=24), reason="test"
                )
        finally:
            connection.close()

    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=stays.pk)
        services.ticket_reopen(ticket=ticket, reason="customer replied")
        job = threading.Thread(target=run_job)
        job.start()
        # The job has read the ids and waits for this transaction.
        assert locking.wait(30), "the job never came to lock its batch"
        assert job.is_alive()

    job.join(30)
    assert (result["value"].closed, result["value"].skipped) == (1, 1)
    assert statuses() == {"reopened meanwhile": "open", "closes": "closed"}
    assert not TicketEvent.objects.filter(ticket=stays, to_status="closed").exists()


def test_run_as_a_scheduled_job_its_counts_go_into_the_run_history(settings):
    from django_apscheduler.models import DjangoJobExecution

    from crm.scheduler import control

    settings.SCHEDULER_JOBS = []
    resolved(30)
    control.sync("tests")

    with time_machine.travel(NOW, tick=False):
        call_command("scheduler", "run", "auto_close_resolved_tickets", "--here", stdout=StringIO())

    run = DjangoJobExecution.objects.select_related("detail").get(
        job_id="auto_close_resolved_tickets"
    )
    assert run.status == DjangoJobExecution.SUCCESS
    assert run.detail.result == {"closed": 1, "skipped": 0}
