"""The ticket services: which status changes are allowed, what each change writes,
and that a change and its history row commit or roll back together."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.db import IntegrityError

from crm import services
from crm.models import Ticket, TicketEvent
from tests import factories

pytestmark = pytest.mark.django_db

STATUSES = ["new", "open", "pending", "resolved", "closed"]
# Written out rather than read from services.ALLOWED_TRANSITIONS, so that a change
# to the workflow has to be made on purpose in both places.
ALLOWED = {
    ("new", "open"),
    ("open", "pending"),
    ("open", "resolved"),
    ("pending", "open"),
    ("pending", "resolved"),
    ("resolved", "closed"),
    ("resolved", "open"),
}
ILLEGAL = sorted(set(itertools.product(STATUSES, STATUSES)) - ALLOWED)
CREATED = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
NOW = datetime(2025, 3, 10, 12, 30, tzinfo=UTC)


def frozen(when):
    return time_machine.travel(when, tick=False)


def new_ticket(**fields):
    return factories.ticket(at=CREATED, **fields)


def ticket_in(status, **fields):
    """A ticket brought to `status` by legal steps, one hour apart after creation."""
    ticket = factories.ticket(status, at=CREATED, step=timedelta(hours=1), **fields)
    assert stored(ticket)["status"] == status
    return ticket


def stored(ticket):
    return Ticket.objects.filter(pk=ticket.pk).values().get()


def history(ticket):
    return list(
        TicketEvent.objects.filter(ticket_id=ticket.pk)
        .order_by("id")
        .values_list(
            "kind",
            "from_status",
            "to_status",
            "from_assignee",
            "to_assignee",
            "actor",
            "reason",
            "created_at",
        )
    )


def timestamps_after(to_status, before):
    """resolved_at and closed_at once a ticket has moved to `to_status` at NOW."""
    return {
        "open": {"resolved_at": None, "closed_at": None},
        "pending": {"resolved_at": None, "closed_at": None},
        "resolved": {"resolved_at": NOW, "closed_at": None},
        "closed": {"resolved_at": before["resolved_at"], "closed_at": NOW},
    }[to_status]


def test_it_allows_exactly_the_transitions_of_the_workflow():
    table = {(a, b) for a, targets in services.ALLOWED_TRANSITIONS.items() for b in targets}

    assert table == ALLOWED
    assert len(ALLOWED) + len(ILLEGAL) == len(STATUSES) ** 2


@pytest.mark.parametrize(("from_status", "to_status"), sorted(ALLOWED))
def test_it_makes_an_allowed_transition_and_records_one_event(user, from_status, to_status):
    ticket = ticket_in(from_status)
    before = stored(ticket)
    events_before = history(ticket)

    with frozen(NOW):
        returned = services.ticket_transition(
            ticket=ticket, to_status=to_status, actor=user, reason="customer called"
        )

    after = stored(ticket)
    assert after == {
        **before,
        "status": to_status,
        "updated_at": NOW,
        **timestamps_after(to_status, before),
    }
    assert history(ticket) == [
        *events_before,
        ("status", from_status, to_status, None, None, user.pk, "customer called", NOW),
    ]
    assert returned is ticket
    assert (ticket.status, ticket.resolved_at, ticket.closed_at) == (
        after["status"],
        after["resolved_at"],
        after["closed_at"],
    )


def test_it_keeps_resolved_at_when_closing_and_clears_it_when_reopening():
    closed = ticket_in("closed")
    reopened = ticket_in("resolved")
    with frozen(NOW):
        services.ticket_reopen(ticket=reopened)

    resolved_during_setup = CREATED + timedelta(hours=2)
    assert (stored(closed)["resolved_at"], stored(closed)["closed_at"]) == (
        resolved_during_setup,
        CREATED + timedelta(hours=3),
    )
    assert (stored(reopened)["resolved_at"], stored(reopened)["closed_at"]) == (None, None)


@pytest.mark.parametrize(("from_status", "to_status"), ILLEGAL)
def test_it_refuses_an_illegal_transition_and_changes_nothing(user, from_status, to_status):
    ticket = ticket_in(from_status)
    before = stored(ticket)
    events_before = history(ticket)

    with frozen(NOW), pytest.raises(services.TransitionNotAllowed) as refused:
        services.ticket_transition(ticket=ticket, to_status=to_status, actor=user)

    assert f"cannot go from {from_status} to {to_status}" in str(refused.value)
    assert (refused.value.from_status, refused.value.to_status) == (from_status, to_status)
    assert stored(ticket) == before
    assert history(ticket) == events_before
    assert ticket.status == from_status


@pytest.mark.parametrize(
    ("service", "from_status", "to_status"),
    [
        (services.ticket_open, "new", "open"),
        (services.ticket_set_pending, "open", "pending"),
        (services.ticket_open, "pending", "open"),
        (services.ticket_resolve, "pending", "resolved"),
        (services.ticket_close, "resolved", "closed"),
        (services.ticket_reopen, "resolved", "open"),
    ],
)
def test_it_moves_tickets_through_the_named_services(user, service, from_status, to_status):
    ticket = ticket_in(from_status)

    with frozen(NOW):
        service(ticket=ticket, actor=user, reason="by name")

    assert stored(ticket)["status"] == to_status
    assert history(ticket)[-1] == (
        "status",
        from_status,
        to_status,
        None,
        None,
        user.pk,
        "by name",
        NOW,
    )


@pytest.mark.parametrize("from_status", ["new", "open", "pending", "closed"])
def test_it_reopens_only_resolved_tickets(from_status):
    ticket = ticket_in(from_status)
    before = stored(ticket)
    events_before = history(ticket)

    with pytest.raises(services.TransitionNotAllowed) as refused:
        services.ticket_reopen(ticket=ticket)

    assert f"cannot go from {from_status} to open" in str(refused.value)
    assert stored(ticket) == before
    assert history(ticket) == events_before


def test_it_refuses_to_reopen_a_pending_ticket_that_ticket_open_may_open():
    ticket = ticket_in("pending")

    with pytest.raises(services.TransitionNotAllowed):
        services.ticket_reopen(ticket=ticket)
    assert stored(ticket)["status"] == "pending"

    services.ticket_open(ticket=ticket)
    assert stored(ticket)["status"] == "open"


def test_it_explains_a_refused_reopen_without_contradicting_itself():
    ticket = ticket_in("pending")

    with pytest.raises(services.TransitionNotAllowed) as refused:
        services.ticket_reopen(ticket=ticket)

    assert "allowed from pending: open" not in str(refused.value)


def test_a_refused_reopen_names_the_ticket_and_both_statuses():
    ticket = ticket_in("pending")

    with pytest.raises(services.ReopenNotAllowed) as refused:
        services.ticket_reopen(ticket=ticket)

    error = refused.value
    assert (error.ticket, error.from_status, error.to_status) == (ticket, "pending", "open")
    assert error.args == (
        f"Ticket #{ticket.pk} cannot go from pending to open by reopening: "
        "only resolved tickets can be reopened.",
    )


def test_it_creates_a_ticket_with_a_created_event(user):
    with frozen(CREATED):
        ticket = services.ticket_create(
            title="VPN drops",
            description="Every few minutes.",
            requester_name="Olga Ivanova",
            requester_email="olga@example.com",
            priority=Ticket.Priority.HIGH,
            actor=user,
        )

    row = stored(ticket)
    assert (row["title"], row["description"], row["requester_name"]) == (
        "VPN drops",
        "Every few minutes.",
        "Olga Ivanova",
    )
    assert (row["requester_email"], row["priority"], row["assignee_id"]) == (
        "olga@example.com",
        Ticket.Priority.HIGH,
        None,
    )
    assert (row["status"], row["created_at"], row["resolved_at"], row["closed_at"]) == (
        "new",
        CREATED,
        None,
        None,
    )
    assert history(ticket) == [("status", "", "new", None, None, user.pk, "created", CREATED)]


def test_it_records_the_assignee_given_at_creation(user):
    agent = get_user_model().objects.create_user("bob")

    with frozen(CREATED):
        ticket = services.ticket_create(
            title="VPN drops",
            requester_name="Olga Ivanova",
            requester_email="olga@example.com",
            assignee=agent,
            actor=user,
        )

    assert stored(ticket)["assignee_id"] == agent.pk
    assert history(ticket) == [
        ("status", "", "new", None, None, user.pk, "created", CREATED),
        ("assignment", "", "", None, agent.pk, user.pk, "", CREATED),
    ]


def test_it_records_the_system_as_actor_when_none_is_given():
    ticket = new_ticket()

    assert history(ticket) == [("status", "", "new", None, None, None, "created", CREATED)]


def test_it_assigns_a_ticket_and_records_from_and_to(user):
    bob = get_user_model().objects.create_user("bob")
    ticket = new_ticket(assignee=user)
    events_before = history(ticket)

    with frozen(NOW):
        services.ticket_assign(ticket=ticket, assignee=bob, actor=user, reason="holiday")

    row = stored(ticket)
    assert (row["assignee_id"], row["updated_at"]) == (bob.pk, NOW)
    assert history(ticket) == [
        *events_before,
        ("assignment", "", "", user.pk, bob.pk, user.pk, "holiday", NOW),
    ]
    assert ticket.assignee == bob


def test_it_writes_nothing_when_assigning_the_same_user_again(user):
    ticket = new_ticket(assignee=user)
    before = stored(ticket)
    events_before = history(ticket)
    same_user_loaded_again = get_user_model().objects.get(pk=user.pk)

    with frozen(NOW):
        services.ticket_assign(ticket=ticket, assignee=same_user_loaded_again, actor=user)

    assert stored(ticket) == before
    assert history(ticket) == events_before


def test_it_unassigns_a_ticket(user):
    ticket = new_ticket(assignee=user)
    events_before = history(ticket)

    with frozen(NOW):
        services.ticket_assign(ticket=ticket, assignee=None, actor=user)

    assert stored(ticket)["assignee_id"] is None
    assert history(ticket) == [
        *events_before,
        ("assignment", "", "", user.pk, None, user.pk, "", NOW),
    ]


def test_it_refuses_to_assign_over_someone_elses_reassignment(user):
    bob = get_user_model().objects.create_user("bob")
    mine = new_ticket()
    theirs = Ticket.objects.get(pk=mine.pk)
    services.ticket_assign(ticket=theirs, assignee=bob)
    events_before = history(mine)

    with pytest.raises(services.TicketChangedConcurrently, match="reassigned by someone else"):
        services.ticket_assign(ticket=mine, assignee=user)

    assert stored(mine)["assignee_id"] == bob.pk
    assert history(mine) == events_before


def test_it_updates_the_descriptive_fields_without_history(user):
    ticket = ticket_in("open")
    before = stored(ticket)
    events_before = history(ticket)
    edits = {
        "title": "Printer fixed?",
        "description": "Still offline after restart.",
        "requester_name": "Anna Kowalski",
        "requester_email": "anna.k@example.com",
        "priority": Ticket.Priority.URGENT,
    }

    with frozen(NOW):
        returned = services.ticket_update_details(ticket_id=ticket.pk, actor=user, **edits)

    assert stored(ticket) == {**before, **edits, "updated_at": NOW}
    assert history(ticket) == events_before
    assert returned.title == "Printer fixed?"


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "closed"},
        {"status": "resolved", "title": "Sneaky"},
        {"resolved_at": NOW},
        {"closed_at": NOW},
        {"created_at": NOW},
    ],
    ids=["status", "status-and-title", "resolved_at", "closed_at", "created_at"],
)
def test_it_refuses_to_update_status_or_timestamps_as_details(user, changes):
    ticket = ticket_in("open")
    before = stored(ticket)
    events_before = history(ticket)

    with pytest.raises(services.TicketError) as refused:
        services.ticket_update_details(ticket_id=ticket.pk, actor=user, **changes)

    assert next(field for field in changes if field != "title") in str(refused.value)
    assert stored(ticket) == before
    assert history(ticket) == events_before


def test_it_records_a_new_assignee_given_with_the_details(user):
    bob = get_user_model().objects.create_user("bob")
    ticket = new_ticket(assignee=user)
    events_before = history(ticket)

    with frozen(NOW):
        services.ticket_update_details(
            ticket_id=ticket.pk, actor=user, title="Printer on floor 2", assignee=bob
        )

    row = stored(ticket)
    assert (row["title"], row["assignee_id"]) == ("Printer on floor 2", bob.pk)
    assert history(ticket) == [
        *events_before,
        ("assignment", "", "", user.pk, bob.pk, user.pk, "", NOW),
    ]


def test_it_records_nothing_when_details_keep_the_assignee(user):
    ticket = new_ticket(assignee=user)
    events_before = history(ticket)

    services.ticket_update_details(ticket_id=ticket.pk, actor=user, title="New", assignee=user)

    assert stored(ticket)["title"] == "New"
    assert history(ticket) == events_before


@pytest.mark.parametrize("edited", ["title", "assignee"])
def test_it_refuses_details_edited_on_a_ticket_changed_since_it_was_seen(user, edited):
    ticket = ticket_in("open")
    seen = stored(ticket)["updated_at"]
    with frozen(NOW):
        services.ticket_update_details(ticket_id=ticket.pk, title="Theirs")
    after_theirs = stored(ticket)
    events_before = history(ticket)
    edits = {"title": {"title": "Mine"}, "assignee": {"assignee": user}}[edited]

    with pytest.raises(services.TicketChangedConcurrently, match="changed by someone else"):
        services.ticket_update_details(
            ticket_id=ticket.pk, actor=user, seen_updated_at=seen, **edits
        )

    assert stored(ticket) == after_theirs
    assert history(ticket) == events_before


def test_it_saves_details_edited_on_the_ticket_as_it_was_seen(user):
    ticket = ticket_in("open")
    seen = stored(ticket)["updated_at"]

    with frozen(NOW):
        services.ticket_update_details(
            ticket_id=ticket.pk, actor=user, seen_updated_at=seen, title="Mine", assignee=user
        )

    row = stored(ticket)
    assert (row["title"], row["assignee_id"], row["updated_at"]) == ("Mine", user.pk, NOW)


def test_it_refuses_a_transition_on_a_ticket_changed_by_a_plain_update_meanwhile(user):
    mine = ticket_in("open")
    Ticket.objects.filter(pk=mine.pk).update(status="pending")
    events_before = history(mine)

    with pytest.raises(services.TicketChangedConcurrently, match="no longer open"):
        services.ticket_resolve(ticket=mine, actor=user)

    row = stored(mine)
    assert (row["status"], row["resolved_at"]) == ("pending", None)
    assert history(mine) == events_before
    assert mine.status == "open"


def test_it_refuses_a_transition_on_a_ticket_changed_by_another_service_call(user):
    mine = ticket_in("resolved")
    theirs = Ticket.objects.get(pk=mine.pk)
    services.ticket_reopen(ticket=theirs, actor=user)
    events_before = history(mine)

    with pytest.raises(services.TicketChangedConcurrently, match="no longer resolved"):
        services.ticket_close(ticket=mine, actor=user)

    row = stored(mine)
    assert (row["status"], row["resolved_at"], row["closed_at"]) == ("open", None, None)
    assert history(mine) == events_before


def ghost():
    """A user the database does not have: writing an event with it as actor
    breaks the foreign key (at the INSERT or at COMMIT, depending on the backend)."""
    return get_user_model()(pk=987654, username="ghost")


@pytest.mark.django_db(transaction=True)
def test_it_rolls_back_a_transition_whose_event_cannot_be_written():
    ticket = ticket_in("open")
    before = stored(ticket)
    events_before = history(ticket)

    with pytest.raises(IntegrityError):
        services.ticket_resolve(ticket=ticket, actor=ghost())

    assert stored(ticket) == before
    assert history(ticket) == events_before


@pytest.mark.django_db(transaction=True)
def test_it_rolls_back_a_creation_whose_event_cannot_be_written():
    with pytest.raises(IntegrityError):
        services.ticket_create(
            title="Ghost", requester_name="Nobody", requester_email="n@example.com", actor=ghost()
        )

    assert not Ticket.objects.exists()
    assert not TicketEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_it_rolls_back_an_assignment_whose_event_cannot_be_written(user):
    ticket = new_ticket()
    before = stored(ticket)
    events_before = history(ticket)

    with pytest.raises(IntegrityError):
        services.ticket_assign(ticket=ticket, assignee=user, actor=ghost())

    assert stored(ticket) == before
    assert history(ticket) == events_before


@pytest.mark.django_db(transaction=True)
def test_it_leaves_the_callers_ticket_as_it_was_when_a_transition_rolls_back():
    ticket = ticket_in("open")

    with pytest.raises(IntegrityError):
        services.ticket_resolve(ticket=ticket, actor=ghost())

    assert (ticket.status, ticket.resolved_at) == ("open", None)
