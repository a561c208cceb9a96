"""The database itself refuses tickets whose timestamps contradict their status, even
when they are written around the services, and history rows cannot be rewritten."""

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction

from crm.models import Ticket, TicketEvent
from tests import factories

pytestmark = pytest.mark.django_db

WHEN = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
CONTRADICTIONS = [
    pytest.param({"status": "resolved"}, id="resolved-without-resolved_at"),
    pytest.param({"status": "open", "resolved_at": WHEN}, id="open-with-resolved_at"),
    pytest.param({"status": "closed", "resolved_at": WHEN}, id="closed-without-closed_at"),
    pytest.param({"status": "archived"}, id="unknown-status"),
    pytest.param({"status": "closed", "closed_at": WHEN}, id="closed-without-resolved_at"),
    pytest.param({"status": "new", "closed_at": WHEN}, id="new-with-closed_at"),
    pytest.param({"status": "pending", "resolved_at": WHEN}, id="pending-with-resolved_at"),
    pytest.param(
        {"status": "resolved", "resolved_at": WHEN, "closed_at": WHEN},
        id="resolved-with-closed_at",
    ),
]
CONSISTENT = [
    pytest.param({"status": "open"}, id="open"),
    pytest.param({"status": "pending"}, id="pending"),
    pytest.param({"status": "resolved", "resolved_at": WHEN}, id="resolved"),
    pytest.param({"status": "closed", "resolved_at": WHEN, "closed_at": WHEN}, id="closed"),
]


@pytest.fixture
def ticket():
    return factories.ticket(
        title="VPN drops", requester_name="Reza Karimi", requester_email="reza@example.com"
    )


def stored(ticket):
    return Ticket.objects.filter(pk=ticket.pk).values().get()


def write_with_update(ticket, fields):
    Ticket.objects.filter(pk=ticket.pk).update(**fields)


def write_with_save(ticket, fields):
    for name, value in fields.items():
        setattr(ticket, name, value)
    ticket.save()


@pytest.mark.parametrize("write", [write_with_update, write_with_save])
@pytest.mark.parametrize("fields", CONTRADICTIONS)
def test_it_rejects_a_status_that_contradicts_the_timestamps(ticket, write, fields):
    before = stored(ticket)

    with pytest.raises(IntegrityError), transaction.atomic():
        write(ticket, fields)

    assert stored(ticket) == before


@pytest.mark.parametrize("fields", CONTRADICTIONS)
def test_it_rejects_inserting_a_contradictory_ticket(fields):
    with pytest.raises(IntegrityError), transaction.atomic():
        Ticket.objects.create(
            title="Raw", requester_name="Eva Rossi", requester_email="eva@example.com", **fields
        )

    assert not Ticket.objects.exists()


@pytest.mark.parametrize("write", [write_with_update, write_with_save])
@pytest.mark.parametrize("fields", CONSISTENT)
def test_it_accepts_a_status_that_agrees_with_the_timestamps(ticket, write, fields):
    write(ticket, fields)

    row = stored(ticket)
    assert {name: row[name] for name in fields} == fields


def test_the_migrations_are_up_to_date_with_the_models():
    output = StringIO()

    call_command("makemigrations", "crm", "--check", "--dry-run", stdout=output)

    assert output.getvalue() == "No changes detected in app 'crm'\n"


def test_it_refuses_to_save_an_existing_event_again(ticket):
    event = TicketEvent.objects.get(ticket=ticket)
    event.reason = "rewritten"

    with pytest.raises(ValueError, match="append-only"):
        event.save()

    assert TicketEvent.objects.get(pk=event.pk).reason == "created"


def test_it_refuses_to_save_an_event_twice_right_after_creating_it(ticket):
    event = TicketEvent.objects.create(ticket=ticket, kind="status", to_status="new")

    with pytest.raises(ValueError, match="append-only"):
        event.save()

    assert TicketEvent.objects.filter(ticket=ticket).count() == 2


def test_it_saves_a_new_event(ticket):
    event = TicketEvent(ticket=ticket, kind="status", from_status="new", to_status="open")

    event.save()

    assert TicketEvent.objects.filter(ticket=ticket).count() == 2
    assert TicketEvent.objects.get(pk=event.pk).to_status == "open"


def test_it_refuses_to_overwrite_an_event_through_a_new_instance_with_its_pk(ticket):
    original = TicketEvent.objects.filter(ticket=ticket).values().get()
    forged = TicketEvent(
        pk=original["id"], ticket=ticket, kind="status", to_status="closed", reason="forged"
    )

    with pytest.raises((ValueError, IntegrityError)), transaction.atomic():
        forged.save()

    assert TicketEvent.objects.filter(ticket=ticket).values().get() == original
