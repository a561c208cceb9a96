"""The scheduled job functions: thin, calling services. Declared, with their
schedules, in crm/scheduler/declarations.py."""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from crm import services

logger = logging.getLogger("crm.jobs")


def auto_close_reason(hours: int) -> str:
    return f"auto-closed after {hours} h resolved"


def auto_close_resolved_tickets() -> dict:
    """Close every ticket resolved more than AUTO_CLOSE_AFTER_HOURS ago.
    Returns {"closed": n, "skipped": m}."""
    hours = settings.AUTO_CLOSE_AFTER_HOURS
    result = services.tickets_auto_close(
        resolved_before=timezone.now() - timedelta(hours=hours), reason=auto_close_reason(hours)
    )
    logger.info(
        "auto-close: closed %d ticket(s) resolved more than %d h ago; skipped %d changed meanwhile",
        result.closed,
        hours,
        result.skipped,
    )
    return result.as_dict()


def delete_old_job_executions() -> dict:
    """Delete job run history older than EXECUTION_RETENTION_DAYS, keeping each
    job's latest run and runs still going. Returns {"deleted": n, ...}."""
    from crm.scheduler.pruning import prune_executions

    days = settings.EXECUTION_RETENTION_DAYS
    result = prune_executions(older_than=timezone.now() - timedelta(days=days))
    logger.info("prune: deleted %d job execution(s) older than %d days", result.deleted, days)
    return result.as_dict()


def count_open_tickets() -> dict:
    """The demo job (DEMO_JOBS): harmless, it only reads. Returns {"open": n}."""
    from crm.models import Ticket

    waiting = Ticket.objects.exclude(status__in=[Ticket.Status.RESOLVED, Ticket.Status.CLOSED])
    count = waiting.count()
    logger.info("demo: %d ticket(s) not yet resolved", count)
    return {"open": count}
