"""The one place where scheduled jobs are declared.

Built-in jobs are listed in `builtin_jobs()`; a deployment adds its own with the
SCHEDULER_JOBS setting (a list of dicts with the same fields as JobDeclaration).
"""

from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.interval import IntervalTrigger
from django.conf import settings


@dataclass(frozen=True)
class JobDeclaration:
    id: str
    func: str  # dotted path, "package.module.function"
    cron: str | None = None
    interval_seconds: float | None = None
    timezone: str | None = None
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    description: str = ""
    misfire_grace_seconds: int = 3600
    enabled: bool = True
    # Name of a keyword argument that receives the scheduled fire time.
    fire_time_kwarg: str | None = None

    @property
    def zone(self) -> str:
        return self.timezone or settings.TIME_ZONE

    def trigger(self):
        if self.interval_seconds is not None:
            return IntervalTrigger(
                seconds=self.interval_seconds,
                timezone=ZoneInfo(self.zone),
                start_date="2000-01-01 00:00:00",
            )
        from crm.scheduler.crontab import CrontabTrigger

        return CrontabTrigger(self.cron, self.zone)

    @property
    def misfire_grace(self) -> timedelta:
        return timedelta(seconds=self.misfire_grace_seconds)


def builtin_jobs() -> list[JobDeclaration]:
    return []


def declared_jobs() -> dict[str, JobDeclaration]:
    jobs = builtin_jobs() + [
        JobDeclaration(**extra) for extra in getattr(settings, "SCHEDULER_JOBS", [])
    ]
    return {job.id: job for job in jobs}
