"""The audit trail of requests to operate the scheduler (crm.scheduler.control):
one AuditEntry per request and job, written as the request is made, so that a
request whose process stops half-way still shows, without an outcome.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from crm.scheduler.models import AuditEntry, SchedulerCommand

Source = AuditEntry.Source
REQUESTED_BY_LENGTH = AuditEntry._meta.get_field("requested_by").max_length
DETAILS_LENGTH = AuditEntry._meta.get_field("details").max_length


def record(
    action: str,
    job_id: str,
    requested_by: str,
    source: str,
    *,
    details: str = "",
    command: SchedulerCommand | None = None,
    succeeded: bool | None = None,
    outcome: str = "",
) -> AuditEntry:
    return AuditEntry.objects.create(
        action=action,
        job_id=job_id,
        requested_by=requested_by[:REQUESTED_BY_LENGTH],
        source=source,
        details=details[:DETAILS_LENGTH],
        command=command,
        succeeded=succeeded,
        outcome=outcome,
    )


@contextmanager
def recorded(
    action: str, job_id: str, requested_by: str, source: str, details: str = ""
) -> Iterator[AuditEntry]:
    """Record a request carried out in the block. The block may set the
    entry's `outcome` (and `succeeded`, if not True), or link the command it
    sends (`link`); an exception out of it is the outcome, and goes on."""
    entry = record(action, job_id, requested_by, source, details=details)
    try:
        yield entry
    except Exception as error:
        entry.succeeded, entry.outcome = False, f"{type(error).__name__}: {error}"
        raise
    else:
        if entry.command is None and entry.succeeded is None:
            entry.succeeded = True
    finally:
        entry.save(update_fields=["succeeded", "outcome"])


def link(entry: AuditEntry, command: SchedulerCommand) -> None:
    """The request goes on as `command`, which ends it."""
    entry.command = command
    entry.save(update_fields=["command"])


def details(
    *,
    until: datetime | None = None,
    note: str = "",
    start: datetime | None = None,
    end: datetime | None = None,
    force: bool = False,
) -> str:
    """A request's options in words: a pause's end and note, a backfill's range."""
    parts = [f"until {until.isoformat()}"] if until else []
    parts += [f"from {start.isoformat()} to {end.isoformat()}"] if start and end else []
    parts += ["forced"] if force else []
    parts += [f"note: {note}"] if note else []
    return "; ".join(parts)
