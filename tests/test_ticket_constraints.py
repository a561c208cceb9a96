"""The database refuses tickets whose timestamps contradict their status, even
when written around the services."""

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from crm.models import Ticket, TicketEvent
from crm.services import ticket_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def ticket():
    return ticket_create(
        title="VPN", requester_name="Reza Karimi", requester_email="reza@example.com"
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "resolved"},  # resolved without resolved_at
        {"status": "open", "resolved_at": timezone.now()},
        {"status": "closed", "resolved_at": timezone.now()},  # closed without closed_at
        {"status": "open", "closed_at": timezone.now()},
        {"status": "archived"},
    ],
)
def test_the_database_rejects_a_status_that_contradicts_the_timestamps(ticket, fields):
    with pytest.raises(IntegrityError), transaction.atomic():
        Ticket.objects.filter(pk=ticket.pk).update(**fields)
    assert Ticket.objects.get(pk=ticket.pk).status == "new"


def test_consistent_rows_are_accepted(ticket):
    now = timezone.now()
    Ticket.objects.filter(pk=ticket.pk).update(status="closed", resolved_at=now, closed_at=now)
    assert Ticket.objects.get(pk=ticket.pk).status == "closed"


def test_history_rows_cannot_be_changed(ticket):
    event = TicketEvent.objects.get(ticket=ticket)
    event.reason = "rewritten"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    assert TicketEvent.objects.get(pk=event.pk).reason == "created"
