"""Failure mail to ADMINS, at most once per job per cooldown across all processes."""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import mail_admins
from django.db import IntegrityError, transaction
from django.utils import timezone

from crm.scheduler.models import JobAlert

logger = logging.getLogger("crm.scheduler")


def mail_failure(job_id: str, error: BaseException, traceback_text: str) -> bool:
    """Mail ADMINS about a failed run unless this job was mailed about within
    the cooldown. Returns whether mail was sent."""
    if not settings.ADMINS or not _claim_mail_slot(job_id):
        return False
    mail_admins(
        subject=f"Scheduled job {job_id} failed: {type(error).__name__}",
        message=f"The scheduled job {job_id} raised {error!r}.\n\n{traceback_text}",
    )
    return True


def _claim_mail_slot(job_id: str) -> bool:
    # A conditional UPDATE, so two processes never both claim the same slot.
    now = timezone.now()
    cooldown = timedelta(seconds=getattr(settings, "SCHEDULER_FAILURE_MAIL_COOLDOWN_SECONDS", 3600))
    claimed = JobAlert.objects.filter(job_id=job_id, last_mailed_at__lte=now - cooldown).update(
        last_mailed_at=now
    )
    if claimed:
        return True
    try:
        with transaction.atomic():
            JobAlert.objects.create(job_id=job_id, last_mailed_at=now)
    except IntegrityError:
        return False
    return True
