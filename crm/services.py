"""Every write to tickets goes through here: transitions are checked and history is
written in the same transaction as the change it records."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F, Q, Value
from django.utils import timezone

from crm.batching import BatchSize
from crm.models import Ticket, TicketEvent

Status = Ticket.Status

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    Status.NEW: frozenset({Status.OPEN}),
    Status.OPEN: frozenset({Status.PENDING, Status.RESOLVED}),
    Status.PENDING: frozenset({Status.OPEN, Status.RESOLVED}),
    Status.RESOLVED: frozenset({Status.CLOSED, Status.OPEN}),
    Status.CLOSED: frozenset(),
}


class TicketError(Exception):
    """A requested change to a ticket was refused; nothing was changed."""


class TransitionNotAllowed(TicketError):
    def __init__(self, ticket: Ticket, from_status: str, to_status: str):
        self.ticket = ticket
        self.from_status = from_status
        self.to_status = to_status
        super().__init__(self.explain())

    def explain(self) -> str:
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[self.from_status])) or "none, it is final"
        return (
            f"Ticket #{self.ticket.pk} cannot go from {self.from_status} to {self.to_status} "
            f"(allowed from {self.from_status}: {allowed})."
        )


class ReopenNotAllowed(TransitionNotAllowed):
    def __init__(self, ticket: Ticket):
        super().__init__(ticket, ticket.status, Status.OPEN)

    def explain(self) -> str:
        # Not the allowed moves: pending may go to open, just not by reopening.
        return (
            f"Ticket #{self.ticket.pk} cannot go from {self.from_status} to open by reopening: "
            "only resolved tickets can be reopened."
        )


class TicketChangedConcurrently(TicketError):
    """Someone else changed the ticket after the caller loaded it; nothing was changed."""

    def __init__(self, ticket: Ticket, what_changed: str = "was changed by someone else meanwhile"):
        self.ticket = ticket
        super().__init__(f"Ticket #{ticket.pk} {what_changed}. Reload it and try again.")


def is_transition_allowed(from_status: str, to_status: str) -> bool:
    return to_status in ALLOWED_TRANSITIONS[from_status]


@transaction.atomic
def ticket_create(
    *,
    title: str,
    requester_name: str,
    requester_email: str,
    description: str = "",
    priority: int = Ticket.Priority.NORMAL,
    assignee: AbstractBaseUser | None = None,
    actor: AbstractBaseUser | None = None,
) -> Ticket:
    ticket = Ticket.objects.create(
        title=title,
        description=description,
        requester_name=requester_name,
        requester_email=requester_email,
        priority=priority,
        assignee=assignee,
    )
    _record_status_change(ticket, "", ticket.status, actor, "created", ticket.created_at)
    if assignee is not None:
        _record_assignment(ticket, None, assignee, actor, "", ticket.created_at)
    return ticket


def ticket_transition(
    *,
    ticket: Ticket,
    to_status: str,
    actor: AbstractBaseUser | None = None,
    reason: str = "",
) -> Ticket:
    """Move a ticket to `to_status` or raise; `ticket` is updated in place.

    The UPDATE is conditional on the status the caller saw, so a concurrent
    change makes this raise instead of overwriting it.
    """
    from_status = ticket.status
    if not is_transition_allowed(from_status, to_status):
        raise TransitionNotAllowed(ticket, from_status, to_status)

    now = timezone.now()
    changes = _transition_changes(to_status, now)
    with transaction.atomic():
        updated = Ticket.objects.filter(pk=ticket.pk, status=from_status).update(**changes)
        if updated != 1:
            raise TicketChangedConcurrently(
                ticket, f"is no longer {from_status}: someone else changed it meanwhile"
            )
        _record_status_change(ticket, from_status, to_status, actor, reason, now)
    # Only after the block: a rollback (some foreign keys are checked at COMMIT)
    # leaves the caller's object as it was.
    for field, value in changes.items():
        setattr(ticket, field, value)
    return ticket


def _transition_changes(to_status: str, when: datetime) -> dict:
    """The ticket fields a move to `to_status` at `when` writes, whether one
    ticket moves or a batch of them."""
    changes = {"status": to_status, "updated_at": when}
    if to_status == Status.RESOLVED:
        changes["resolved_at"] = when
    elif to_status == Status.OPEN:
        changes["resolved_at"] = None
    elif to_status == Status.CLOSED:
        changes["closed_at"] = when
    return changes


def ticket_open(*, ticket: Ticket, actor=None, reason: str = "") -> Ticket:
    return ticket_transition(ticket=ticket, to_status=Status.OPEN, actor=actor, reason=reason)


def ticket_set_pending(*, ticket: Ticket, actor=None, reason: str = "") -> Ticket:
    return ticket_transition(ticket=ticket, to_status=Status.PENDING, actor=actor, reason=reason)


def ticket_resolve(*, ticket: Ticket, actor=None, reason: str = "") -> Ticket:
    return ticket_transition(ticket=ticket, to_status=Status.RESOLVED, actor=actor, reason=reason)


def ticket_close(*, ticket: Ticket, actor=None, reason: str = "") -> Ticket:
    return ticket_transition(ticket=ticket, to_status=Status.CLOSED, actor=actor, reason=reason)


def ticket_reopen(*, ticket: Ticket, actor=None, reason: str = "") -> Ticket:
    if ticket.status != Status.RESOLVED:
        raise ReopenNotAllowed(ticket)
    return ticket_transition(ticket=ticket, to_status=Status.OPEN, actor=actor, reason=reason)


@transaction.atomic
def ticket_assign(
    *, ticket: Ticket, assignee: AbstractBaseUser | None, actor=None, reason: str = ""
) -> Ticket:
    """Give the ticket to `assignee` (None unassigns). Assigning the current
    assignee again changes nothing and writes no history."""
    previous_id = ticket.assignee_id
    new_id = assignee.pk if assignee is not None else None
    if previous_id == new_id:
        return ticket
    now = timezone.now()
    updated = Ticket.objects.filter(pk=ticket.pk, assignee_id=previous_id).update(
        assignee_id=new_id, updated_at=now
    )
    if updated != 1:
        raise TicketChangedConcurrently(ticket, "was reassigned by someone else meanwhile")
    previous = ticket.assignee if previous_id is not None else None
    ticket.assignee = assignee
    ticket.updated_at = now
    _record_assignment(ticket, previous, assignee, actor, reason, now)
    return ticket


EDITABLE_FIELDS = frozenset(
    {"title", "description", "requester_name", "requester_email", "priority", "assignee"}
)


@transaction.atomic
def ticket_update_details(
    *, ticket_id: int, actor=None, seen_updated_at: datetime | None = None, **changes
) -> Ticket:
    """Save edits to the descriptive fields; a new assignee goes through
    `ticket_assign` so that it is recorded. Status has its own services.

    `seen_updated_at` is the `updated_at` of the ticket the edits were made on
    (an agent's form); if the ticket has been changed since, this raises
    TicketChangedConcurrently and changes nothing.
    """
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise TicketError(
            f"These ticket fields cannot be edited directly: {', '.join(sorted(unknown))}. "
            "Change status through the open, resolve, close and reopen services."
        )
    ticket = Ticket.objects.select_related("assignee").get(pk=ticket_id)
    if seen_updated_at is not None:
        _hold_if_unchanged(ticket, seen_updated_at)
    assignee = changes.pop("assignee", ticket.assignee)
    if changes:
        changes["updated_at"] = timezone.now()
        Ticket.objects.filter(pk=ticket.pk).update(**changes)
        for field, value in changes.items():
            setattr(ticket, field, value)
    return ticket_assign(ticket=ticket, assignee=assignee, actor=actor)


def _hold_if_unchanged(ticket: Ticket, seen_updated_at: datetime) -> None:
    """Lock the ticket's row until commit if it is still as the caller saw it.
    Every service write sets updated_at, so an UPDATE conditional on it (that
    changes nothing) both checks and keeps others out until the edits are written."""
    unchanged = Ticket.objects.filter(pk=ticket.pk, updated_at=seen_updated_at)
    if unchanged.update(updated_at=F("updated_at")) != 1:
        raise TicketChangedConcurrently(ticket)


def _record_status_change(ticket, from_status, to_status, actor, reason, when) -> None:
    TicketEvent.objects.create(
        ticket=ticket, **_status_event(from_status, to_status, actor, reason, when)
    )


def _status_event(from_status, to_status, actor, reason, when) -> dict:
    """A status change's history row, as TicketEvent field values: one source for
    a single change and for a batch's INSERT ... SELECT."""
    return {
        "kind": TicketEvent.Kind.STATUS,
        "from_status": from_status,
        "to_status": to_status,
        "actor": actor,
        "reason": reason,
        "created_at": when,
    }


def _record_assignment(ticket, previous, assignee, actor, reason, when) -> None:
    TicketEvent.objects.create(
        ticket=ticket,
        kind=TicketEvent.Kind.ASSIGNMENT,
        from_assignee=previous,
        to_assignee=assignee,
        actor=actor,
        reason=reason,
        created_at=when,
    )


@dataclass(frozen=True)
class AutoCloseResult:
    closed: int  # closed, one history row each
    skipped: int  # due when picked, changed by someone else before the write
    due: int = 0  # with dry_run: how many would be closed

    def as_dict(self) -> dict:
        return {"closed": self.closed, "skipped": self.skipped}


def tickets_auto_close(
    *,
    resolved_before: datetime,
    reason: str,
    batch_size: int | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> AutoCloseResult:
    """Close every ticket resolved before `resolved_before`, as the system, with
    one history row each.

    In batches, each a range of the (status, resolved_at) index written in one
    short transaction: its rows locked, then the history rows and the closing
    written by two statements over the same range and the same due condition,
    so a ticket reopened or changed while the job runs is skipped, never closed
    over. Memory stays flat: only a batch's keys are read.
    """
    due = Ticket.objects.filter(status=Status.RESOLVED, resolved_at__lt=resolved_before)
    if dry_run:
        return AutoCloseResult(closed=0, skipped=0, due=due.count())
    closed = skipped = 0
    after = Q()
    # Keyset pages in index order, so each batch is a short index range; by id
    # alone the database may scan them all. Only each page's last key is read.
    in_order = due.order_by("resolved_at", "pk").values_list("resolved_at", "pk")
    size = BatchSize(batch_size or 5000, fixed=batch_size is not None)
    while True:
        edge = in_order.filter(after)[size.current - 1 : size.current].first()
        if edge is None:  # the last, partial page
            batch = due.filter(after).order_by()
            picked = batch.count()
            if not picked:
                break
        else:
            last_at, last_id = edge
            upto = Q(resolved_at__lte=last_at) & ~Q(resolved_at=last_at, pk__gt=last_id)
            batch, picked = due.filter(after, upto).order_by(), size.current
            # A plain range on resolved_at, which every database can walk in
            # the index, less the ties already done.
            after = Q(resolved_at__gte=last_at) & ~Q(resolved_at=last_at, pk__lte=last_id)
        with size.timing():
            done = _close_batch(batch, reason)
        closed, skipped = closed + done, skipped + picked - done
        if progress:
            progress(closed, skipped)
        if edge is None:
            break
    return AutoCloseResult(closed=closed, skipped=skipped)


def _close_batch(batch, reason: str) -> int:
    """`batch` is the due condition and the range; evaluated again here, on
    rows that cannot change until commit, what changed since drops out."""
    with transaction.atomic():
        if connection.features.has_select_for_update:
            list(batch.select_for_update().values_list("pk", flat=True))
        # (SQLite has no row locks: the first write takes the database's write
        # lock, so the two statements below see the same rows.)
        now = timezone.now()
        # ticket_close's writes from the same definitions, so the two cannot drift apart.
        _insert_events(batch, _status_event(Status.RESOLVED, Status.CLOSED, None, reason, now))
        return batch.update(**_transition_changes(Status.CLOSED, now))


def _insert_events(tickets, event: dict) -> None:
    """Add the history row `event` (TicketEvent field values) to each of `tickets`
    by INSERT ... SELECT: Django has no bulk insert from a query. Each value goes
    through its model field, as in `TicketEvent.objects.create(**event)`."""
    row = TicketEvent(**event)
    fields = [TicketEvent._meta.get_field(name) for name in event]
    values = {
        f"event_{field.attname}": Value(getattr(row, field.attname), output_field=field)
        for field in fields
    }
    sql, params = tickets.annotate(**values).values_list("pk", *values).query.sql_with_params()
    quote = connection.ops.quote_name
    columns = ", ".join(
        quote(field.column) for field in [TicketEvent._meta.get_field("ticket"), *fields]
    )
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {quote(TicketEvent._meta.db_table)} ({columns}) {sql}", params)
