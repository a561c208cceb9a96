"""Fires that were dispatched and never ran are run once, within their grace.

APScheduler moves a job's next run time on as it hands a fire to the
executor. If that run then never starts (refused because the lease was
changing hands at that instant, or its history row could not be written
because the database went away), the store no longer says it is due and
nothing would run it. Such a fire lies after the job's last recorded
scheduled fire and before its stored next run time, and has no history row.

A scheduler looks for them when it becomes active (for fires of the previous
holder's last moments) and after an outage of its own database connection
(for fires of the outage's first moments): only fires from `since` on, so a
fire skipped while the job was paused is never taken for one. The latest such
fire within the job's misfire grace runs, once: coalesced, like any catch-up;
its history row keeps it from running twice.
"""

import logging
import threading
from datetime import UTC, datetime, timedelta

from django.db.models import Max, Q
from django_apscheduler.models import DjangoJobExecution

from crm.scheduler.history import BY_SCHEDULE

logger = logging.getLogger("crm.scheduler")
# A job firing so often that more fires than this lie between its last
# recorded one and its next run time is left to the regular catch-up.
MAX_FIRES_LOOKED_AT = 10_000


class OutageLog:
    """The earliest start of an outage not yet looked at, from any thread
    (one per scheduler lifecycle, crm.scheduler.runner)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._since: datetime | None = None

    def note(self, since: datetime) -> None:
        with self._lock:
            if self._since is None or since < self._since:
                self._since = since

    def take(self) -> datetime | None:
        with self._lock:
            since, self._since = self._since, None
        return since


def recover(scheduler, since: datetime) -> list[tuple[str, datetime]]:
    """Run the lost fires from `since` on; returns (job id, fire time) of each."""
    now = datetime.now(UTC)
    jobs = [job for job in scheduler.get_jobs() if job.next_run_time is not None]
    last_fires = _last_scheduled_fires([job.id for job in jobs])
    recovered = []
    for job in jobs:
        fire = lost_fire(job, last_fires.get(job.id), since, now)
        if fire is None or not scheduler.submit_once(job, fire):
            continue
        logger.warning(
            "scheduler: the fire of %s at %s was dispatched but never ran; running it now",
            job.id,
            fire.isoformat(),
        )
        recovered.append((job.id, fire))
    return recovered


def lost_fire(job, last_recorded: datetime | None, since: datetime, now: datetime):
    """The latest fire of `job` after `last_recorded` and before its next run
    time, from `since` on and within its grace; None if there is none."""
    if last_recorded is None:
        return None
    grace = timedelta(seconds=job.misfire_grace_time or 0)
    latest = None
    fire = job.trigger.get_next_fire_time(last_recorded, now)
    for _ in range(MAX_FIRES_LOOKED_AT):
        if fire is None or fire >= job.next_run_time or fire > now:
            break
        latest = fire
        fire = job.trigger.get_next_fire_time(fire, now)
    else:
        return None
    if latest is None or latest < since or now - latest > grace:
        return None
    return latest


def _last_scheduled_fires(job_ids: list[str]) -> dict[str, datetime]:
    """Each job's latest fire with a history row: run, missed or skipped;
    runs started by hand are not fires."""
    scheduled = Q(detail__isnull=True) | Q(detail__triggered_by=BY_SCHEDULE)
    rows = (
        DjangoJobExecution.objects.filter(scheduled, job_id__in=job_ids)
        .values("job_id")
        .annotate(last=Max("run_time"))
    )
    return {row["job_id"]: row["last"] for row in rows}
