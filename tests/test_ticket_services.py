"""Every change to a ticket goes through the services: allowed transitions change
the ticket and write one history row in the same transaction; others change nothing."""

import itertools

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError

from crm import services
from crm.models import Ticket, TicketEvent

pytestmark = pytest.mark.django_db
Status = Ticket.Status
STATUSES = list(Status.values)
# The legal path from new to each status, through the services.
PATH_TO = {
    "new": [],
    "open": ["open"],
    "pending": ["open", "pending"],
    "resolved": ["open", "resolved"],
    "closed": ["open", "resolved", "closed"],
}
ALLOWED = {
    ("new", "open"),
    ("open", "pending"),
    ("open", "resolved"),
    ("pending", "open"),
    ("pending", "resolved"),
    ("resolved", "closed"),
    ("resolved", "open"),
}


def new_ticket(**fields):
    return services.ticket_create(
        title="Printer offline",
        requester_name="Anna Nowak",
        requester_email="anna@example.com",
        **fields,
    )


def ticket_in(status):
    ticket = new_ticket()
    for step in PATH_TO[status]:
        services.ticket_transition(ticket=ticket, to_status=step)
    return ticket


def test_the_allowed_transitions_are_exactly_these():
    table = {(a, b) for a, targets in services.ALLOWED_TRANSITIONS.items() for b in targets}
    assert table == ALLOWED


@pytest.mark.parametrize(("from_status", "to_status"), sorted(ALLOWED))
def test_an_allowed_transition_changes_the_ticket_and_writes_one_event(
    user, from_status, to_status
):
    ticket = ticket_in(from_status)
    events_before = ticket.events.count()

    services.ticket_transition(ticket=ticket, to_status=to_status, actor=user, reason="because")

    stored = Ticket.objects.get(pk=ticket.pk)
    assert stored.status == to_status
    assert (stored.resolved_at is not None) == (to_status in ("resolved", "closed"))
    assert (stored.closed_at is not None) == (to_status == "closed")
    assert ticket.events.count() == events_before + 1
    event = ticket.events.last()
    assert (event.kind, event.from_status, event.to_status) == ("status", from_status, to_status)
    assert (event.actor, event.reason) == (user, "because")


@pytest.mark.parametrize(
    ("from_status", "to_status"),
    sorted(set(itertools.product(STATUSES, STATUSES)) - ALLOWED),
)
def test_an_illegal_transition_raises_and_changes_nothing(from_status, to_status):
    ticket = ticket_in(from_status)
    before = Ticket.objects.filter(pk=ticket.pk).values().get()
    events_before = ticket.events.count()

    with pytest.raises(services.TransitionNotAllowed) as refused:
        services.ticket_transition(ticket=ticket, to_status=to_status)

    assert f"from {from_status} to {to_status}" in str(refused.value)
    assert Ticket.objects.filter(pk=ticket.pk).values().get() == before
    assert ticket.events.count() == events_before


def test_resolving_sets_resolved_at_closing_keeps_it_and_reopening_clears_it():
    ticket = ticket_in("resolved")
    resolved_at = ticket.resolved_at

    services.ticket_close(ticket=ticket)
    assert Ticket.objects.get(pk=ticket.pk).resolved_at == resolved_at

    reopened = ticket_in("resolved")
    services.ticket_reopen(ticket=reopened)
    assert Ticket.objects.get(pk=reopened.pk).resolved_at is None


def test_reopen_is_only_for_resolved_tickets():
    ticket = ticket_in("pending")
    with pytest.raises(services.TransitionNotAllowed):
        services.ticket_reopen(ticket=ticket)
    assert Ticket.objects.get(pk=ticket.pk).status == "pending"


def test_creating_a_ticket_records_it_and_its_assignee(user):
    ticket = new_ticket(assignee=user, actor=user)

    events = list(ticket.events.values_list("kind", "to_status", "to_assignee", "actor", "reason"))
    assert events == [
        ("status", "new", None, user.pk, "created"),
        ("assignment", "", user.pk, user.pk, ""),
    ]


def test_assigning_records_from_and_to_and_the_same_assignee_twice_records_nothing(user):
    other = get_user_model().objects.create_user("bob")
    ticket = new_ticket(assignee=user)

    services.ticket_assign(ticket=ticket, assignee=other, actor=user)
    services.ticket_assign(ticket=ticket, assignee=other, actor=user)
    services.ticket_assign(ticket=ticket, assignee=None, actor=user)

    assignments = ticket.events.filter(kind="assignment").values_list(
        "from_assignee", "to_assignee"
    )
    assert list(assignments) == [(None, user.pk), (user.pk, other.pk), (other.pk, None)]
    assert Ticket.objects.get(pk=ticket.pk).assignee is None


def test_updating_details_saves_fields_and_records_a_new_assignee(user):
    ticket = new_ticket()

    services.ticket_update_details(
        ticket_id=ticket.pk, actor=user, title="Printer fixed?", assignee=user
    )

    stored = Ticket.objects.get(pk=ticket.pk)
    assert (stored.title, stored.assignee) == ("Printer fixed?", user)
    assert ticket.events.filter(kind="assignment", to_assignee=user, actor=user).count() == 1


def test_updating_details_refuses_status():
    ticket = new_ticket()
    with pytest.raises(services.TicketError, match="status"):
        services.ticket_update_details(ticket_id=ticket.pk, status="closed")
    assert Ticket.objects.get(pk=ticket.pk).status == "new"


def test_a_ticket_changed_by_someone_else_meanwhile_is_not_overwritten():
    mine = ticket_in("resolved")
    theirs = Ticket.objects.get(pk=mine.pk)
    services.ticket_reopen(ticket=theirs)
    events_before = mine.events.count()

    with pytest.raises(services.TicketChangedConcurrently, match="no longer resolved"):
        services.ticket_close(ticket=mine)

    assert Ticket.objects.get(pk=mine.pk).status == "open"
    assert mine.events.count() == events_before


@pytest.mark.django_db(transaction=True)
def test_the_change_and_its_history_row_commit_or_roll_back_together():
    ticket = ticket_in("open")
    ghost = get_user_model()(pk=987654, username="ghost")  # not in the database

    with pytest.raises(IntegrityError):
        services.ticket_resolve(ticket=ticket, actor=ghost)

    stored = Ticket.objects.get(pk=ticket.pk)
    assert (stored.status, stored.resolved_at) == ("open", None)
    assert not TicketEvent.objects.filter(ticket_id=ticket.pk, to_status="resolved").exists()
