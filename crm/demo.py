"""Demo data: realistic tickets in every state, generated in bounded batches."""

import random
from collections.abc import Iterator
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from crm.models import Ticket, TicketEvent

Status = Ticket.Status

SUBJECTS = [
    "Cannot log in to the portal",
    "Invoice shows the wrong amount",
    "Password reset e-mail never arrives",
    "Export to CSV is empty",
    "Printer on floor 2 is offline",
    "Request for a new user account",
    "VPN disconnects every few minutes",
    "Order stuck in processing",
    "Refund not received",
    "App crashes when uploading a photo",
]
FIRST_NAMES = ["Anna", "Piotr", "Olga", "Dmitri", "Sara", "Reza", "John", "Maria", "Ali", "Eva"]
LAST_NAMES = ["Nowak", "Ivanova", "Kowalski", "Smith", "Karimi", "Müller", "Rossi", "Petrov"]
AGENT_USERNAMES = ["agent.alice", "agent.bob", "agent.chen"]
# Shares of the tickets that are not due for auto-close.
STATUS_WEIGHTS = {
    Status.NEW: 15,
    Status.OPEN: 25,
    Status.PENDING: 10,
    Status.RESOLVED: 10,
    Status.CLOSED: 40,
}


def demo_agents() -> list:
    User = get_user_model()
    agents = []
    for username in AGENT_USERNAMES:
        agent, created = User.objects.get_or_create(username=username)
        if created:
            agent.set_unusable_password()
            agent.save(update_fields=["password"])
        agents.append(agent)
    return agents


def _between(rng: random.Random, start, end):
    return start + (end - start) * rng.random()


def _ticket(rng: random.Random, now, status: str, due: bool, agents: list) -> Ticket:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    oldest = now - timedelta(days=90)
    created_at = _between(rng, oldest, now - timedelta(hours=26 if due else 1))
    ticket = Ticket(
        title=rng.choice(SUBJECTS),
        description="Reported through the support form.",
        requester_name=f"{first} {last}",
        requester_email=f"{first}.{last}@example.com".lower(),
        status=status,
        priority=rng.choice(Ticket.Priority.values),
        assignee=rng.choice(agents) if status != Status.NEW else None,
        created_at=created_at,
    )
    if due:
        ticket.resolved_at = _between(rng, created_at, now - timedelta(hours=25))
    elif status == Status.RESOLVED:
        ticket.resolved_at = max(created_at, _between(rng, now - timedelta(hours=23), now))
    elif status == Status.CLOSED:
        ticket.resolved_at = _between(rng, created_at, now)
        ticket.closed_at = _between(rng, ticket.resolved_at, now)
    ticket.updated_at = ticket.closed_at or ticket.resolved_at or created_at
    return ticket


def generate_tickets(count: int, due: int, seed: int, agents: list) -> Iterator[Ticket]:
    """Yield `count` unsaved tickets, `due` of them resolved more than 24 h ago,
    spread evenly through the sequence rather than in one block."""
    rng = random.Random(seed)
    now = timezone.now()
    statuses, weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
    for index in range(count):
        if (index * due) // count != ((index + 1) * due) // count:
            yield _ticket(rng, now, Status.RESOLVED, True, agents)
        else:
            yield _ticket(rng, now, rng.choices(statuses, weights)[0], False, agents)


def save_batch(tickets: list[Ticket]) -> None:
    with transaction.atomic():
        Ticket.objects.bulk_create(tickets)
        TicketEvent.objects.bulk_create(
            TicketEvent(
                ticket_id=ticket.pk,
                kind=TicketEvent.Kind.STATUS,
                to_status=ticket.status,
                reason="demo data",
                created_at=ticket.updated_at,
            )
            for ticket in tickets
            if ticket.pk is not None
        )
