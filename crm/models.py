from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from crm.scheduler.models import (
    AuditEntry,
    DisabledJob,
    JobAlert,
    JobPause,
    RunAttempt,
    RunDetail,
    SchedulerCommand,
    SchedulerLease,
)

__all__ = [
    "AuditEntry",
    "DisabledJob",
    "JobAlert",
    "JobPause",
    "RunAttempt",
    "RunDetail",
    "SchedulerCommand",
    "SchedulerLease",
    "Ticket",
    "TicketEvent",
]


class TicketStatus(models.TextChoices):
    NEW = "new", "New"
    OPEN = "open", "Open"
    PENDING = "pending", "Pending"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


_RESOLVED_OR_CLOSED = [TicketStatus.RESOLVED, TicketStatus.CLOSED]


class Ticket(models.Model):
    # Defined outside so that Meta's constraints can name the statuses: a
    # nested class body cannot see its enclosing class's names.
    Status = TicketStatus

    class Priority(models.IntegerChoices):
        LOW = 1, "Low"
        NORMAL = 2, "Normal"
        HIGH = 3, "High"
        URGENT = 4, "Urgent"

    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    requester_name = models.CharField(max_length=200)
    requester_email = models.EmailField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_tickets",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # auto_close_resolved_tickets pages through resolved tickets by
            # resolved_at. Not a partial index: SQLite cannot use one when the
            # status comes as a query parameter.
            models.Index(fields=["status", "resolved_at"], name="ticket_status_resolved_idx"),
            # The admin's ticket list, newest first (id breaks ties, as the
            # changelist orders by it too), unfiltered and by each filter.
            models.Index(fields=["-created_at", "-id"], name="ticket_created_idx"),
            models.Index(fields=["status", "-created_at", "-id"], name="ticket_status_created_idx"),
            models.Index(
                fields=["priority", "-created_at", "-id"], name="ticket_priority_created_idx"
            ),
            models.Index(
                fields=["assignee", "-created_at", "-id"], name="ticket_assignee_created_idx"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=TicketStatus.values),
                name="ticket_status_valid",
            ),
            models.CheckConstraint(
                condition=(
                    Q(status__in=_RESOLVED_OR_CLOSED, resolved_at__isnull=False)
                    | (~Q(status__in=_RESOLVED_OR_CLOSED) & Q(resolved_at__isnull=True))
                ),
                name="ticket_resolved_at_iff_resolved_or_closed",
            ),
            models.CheckConstraint(
                condition=(
                    Q(status=TicketStatus.CLOSED, closed_at__isnull=False)
                    | (~Q(status=TicketStatus.CLOSED) & Q(closed_at__isnull=True))
                ),
                name="ticket_closed_at_iff_closed",
            ),
        ]

    def __str__(self):
        return f"#{self.pk} {self.title}"


class TicketEvent(models.Model):
    """One row of a ticket's history. Rows are only ever added, never changed."""

    class Kind(models.TextChoices):
        STATUS = "status", "Status change"
        ASSIGNMENT = "assignment", "Assignment"

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    from_status = models.CharField(max_length=16, blank=True, choices=Ticket.Status.choices)
    to_status = models.CharField(max_length=16, blank=True, choices=Ticket.Status.choices)
    from_assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    to_assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who made the change; empty for the system.",
    )
    reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["ticket", "created_at"], name="ticketevent_ticket_time_idx")
        ]

    def __str__(self):
        if self.kind == self.Kind.STATUS:
            return f"{self.from_status or '∅'} → {self.to_status}"
        return f"assigned to {self.to_assignee or 'nobody'}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("Ticket history is append-only: events cannot be changed.")
        # An INSERT even when a pk is given, so an existing row is never rewritten.
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)
