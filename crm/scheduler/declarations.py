"""The one place where scheduled jobs are declared.

Built-in jobs are listed in `builtin_jobs()`; a deployment adds its own with the
SCHEDULER_JOBS setting (a list of dicts with the same fields as JobDeclaration).
"""

import builtins
import functools
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.interval import IntervalTrigger
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string


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
    # Each fire starts up to this many seconds after its time, at random.
    jitter_seconds: float = 0
    # A one-shot job: this ISO 8601 time with its zone, instead of cron or interval.
    run_at: str | None = None
    # A run still going after this many seconds is killed: such a job runs in
    # a child process of its own (crm.scheduler.isolation), others in a thread.
    timeout_seconds: float | None = None
    # A failed run is tried again this many times, the first after
    # retry_backoff_seconds, each later one after twice the wait before, up to
    # retry_backoff_max_seconds (crm.scheduler.retries).
    retries: int = 0
    retry_backoff_seconds: float | None = None
    retry_backoff_max_seconds: float = 3600
    # Dotted names of the exception classes worth a retry; empty: any failure.
    retry_on: tuple[str, ...] = ()
    # A fire due while a run is still going: "skip" it, "queue" one run for
    # right after (later fires are coalesced into it), or "allow" it to run
    # beside, up to max_concurrent runs at once (crm.scheduler.overlap).
    overlap: str = "skip"
    max_concurrent: int | None = None
    # Pinged as each run starts (URL/start) and ends (the URL, or URL/fail):
    # a dead-man's switch such as healthchecks.io (crm.scheduler.pings).
    ping_url: str | None = None
    # Where this job's alerts are POSTed, instead of ALERT_WEBHOOK_URL.
    alert_webhook_url: str | None = None

    @property
    def zone(self) -> str:
        return self.timezone or settings.TIME_ZONE

    @property
    def run_at_time(self) -> datetime | None:
        return datetime.fromisoformat(self.run_at) if self.run_at is not None else None

    def trigger(self):
        if self.run_at is not None:
            from crm.scheduler.oneshot import OnceTrigger

            return OnceTrigger(self.run_at_time)
        if self.interval_seconds is not None:
            return IntervalTrigger(
                seconds=self.interval_seconds,
                timezone=ZoneInfo(self.zone),
                start_date="2000-01-01 00:00:00",
            )
        from crm.scheduler.crontab import CrontabTrigger

        return CrontabTrigger(self.cron, self.zone)

    @property
    def schedule(self) -> str:
        """The trigger as written: the cron expression, "every N s" or "once at T"."""
        if self.run_at is not None:
            return f"once at {self.run_at}"
        if self.interval_seconds is not None:
            return f"every {self.interval_seconds:g} s"
        return " ".join(str(self.cron).split())

    def describe_schedule(self) -> str:
        """The trigger in words, e.g. "At 02:00 every day, Europe/Warsaw"."""
        jitter = f", then up to {self.jitter_seconds:g} s later" if self.jitter_seconds else ""
        if self.run_at is not None:
            try:
                return f"Once, at {self.run_at_time.isoformat()}{jitter}"
            except (TypeError, ValueError):
                return f"Malformed run_at: {self.run_at!r}"
        if self.interval_seconds is not None:
            return f"Every {_duration_words(self.interval_seconds)}{jitter}"
        from crm.scheduler.crontab import CronSyntaxError, parse

        try:
            return f"{parse(self.cron).describe()}, {self.zone}{jitter}"
        except CronSyntaxError as error:
            return f"Malformed cron expression: {error}"

    @property
    def isolated(self) -> bool:
        return self.timeout_seconds is not None

    @property
    def max_instances(self) -> int:
        """How many runs of it may go on at once, in all processes together."""
        return self.max_concurrent if self.overlap == "allow" and self.max_concurrent else 1

    def describe_policy(self) -> str:
        """Where and how it runs, in words, e.g. "In a process of its own, killed
        after 30 s; 3 retries, 10 s apart at first, doubling to at most 1 hour;
        overlapping fires queued"."""
        parts = [
            f"in a process of its own, killed after {_duration_words(self.timeout_seconds)}"
            if self.isolated
            else "in a thread, no timeout"
        ]
        if self.retries:
            on = f" on {', '.join(self.retry_on)}" if self.retry_on else ""
            parts.append(
                f"{self.retries} retr{'y' if self.retries == 1 else 'ies'}{on}, "
                f"{_duration_words(self.retry_backoff_seconds)} apart at first, doubling "
                f"to at most {_duration_words(self.retry_backoff_max_seconds)}"
            )
        parts.append(
            {
                "skip": "a fire due while it runs is skipped",
                "queue": "a fire due while it runs is queued (later ones coalesced)",
                "allow": f"up to {self.max_concurrent} runs at once",
            }.get(self.overlap, f"overlap {self.overlap!r}")
        )
        text = "; ".join(parts)
        return text[0].upper() + text[1:]

    @property
    def misfire_grace(self) -> timedelta:
        return timedelta(seconds=self.misfire_grace_seconds)

    def jitter_for(self, fire_time: datetime) -> timedelta:
        """How long after `fire_time` that fire starts: drawn from the job and
        the fire, so every process (and a failover) draws the same delay."""
        if not self.jitter_seconds:
            return timedelta(0)
        digest = hashlib.sha256(f"{self.id}@{fire_time.timestamp()!r}".encode()).digest()
        fraction = int.from_bytes(digest[:8], "big") / 2**64
        return timedelta(seconds=fraction * self.jitter_seconds)


def exception_class(name: str) -> type[BaseException]:
    """The class a retry_on entry names: a dotted path, or a built-in's bare name.
    Raises ImportError if there is none, TypeError if it is not an exception."""
    found = import_string(name) if "." in name else getattr(builtins, name, None)
    if found is None:
        raise ImportError(f"no built-in named {name!r}")
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise TypeError(f"{name!r} is not an exception class")
    return found


def class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


HOUR = 3600
# Which environment variables set a built-in job's schedule, for error messages.
BUILTIN_SETTINGS = {
    "auto_close_resolved_tickets": ("AUTO_CLOSE_CRON", "AUTO_CLOSE_ENABLED"),
    "delete_old_job_executions": ("EXECUTION_PRUNE_CRON", "EXECUTION_PRUNE_ENABLED"),
}


def builtin_jobs() -> list[JobDeclaration]:
    # Misfire grace: how late a missed fire may still run when a scheduler
    # comes back (Passenger spins idle apps down overnight). Long, because a
    # late auto-close or prune is harmless; shorter than the period, so a
    # catch-up never runs right before the next regular fire.
    return [
        JobDeclaration(
            id="auto_close_resolved_tickets",
            func="crm.jobs.auto_close_resolved_tickets",
            cron=settings.AUTO_CLOSE_CRON,  # default "0 2 * * *": daily at 02:00
            description="Close tickets resolved more than AUTO_CLOSE_AFTER_HOURS ago",
            misfire_grace_seconds=20 * HOUR,
            enabled=settings.AUTO_CLOSE_ENABLED,
        ),
        JobDeclaration(
            id="delete_old_job_executions",
            func="crm.jobs.delete_old_job_executions",
            cron=settings.EXECUTION_PRUNE_CRON,  # default "0 3 * * 0": Sundays at 03:00
            description="Delete job run history older than EXECUTION_RETENTION_DAYS",
            misfire_grace_seconds=6 * 24 * HOUR,
            enabled=settings.EXECUTION_PRUNE_ENABLED,
        ),
        *demo_jobs(),
    ]


DEMO_JOB_ID = "demo_count_open_tickets"


def demo_jobs() -> list[JobDeclaration]:
    """The demo job of `make run`: settings refuse DEMO_JOBS without DEBUG."""
    if not (settings.DEBUG and getattr(settings, "DEMO_JOBS", False)):
        return []
    return [
        JobDeclaration(
            id=DEMO_JOB_ID,
            func="crm.jobs.count_open_tickets",
            cron="* * * * *",  # every minute, so a new install shows runs at once
            description="Demo (DEMO_JOBS): count the tickets not yet resolved",
            misfire_grace_seconds=30,
        )
    ]


def declared_jobs() -> dict[str, JobDeclaration]:
    return dict(_declared_jobs())


@functools.cache
def _declared_jobs() -> dict[str, JobDeclaration]:
    # Built once per process (10,000 declarations take some 40 ms), again when
    # a setting changes (tests); settings are not otherwise changed at run time.
    jobs = builtin_jobs() + [
        JobDeclaration(**extra) for extra in getattr(settings, "SCHEDULER_JOBS", [])
    ]
    return {job.id: job for job in jobs}


@receiver(setting_changed)
def _forget_declarations(**kwargs) -> None:
    _declared_jobs.cache_clear()


def declared_job(job_id: str) -> JobDeclaration | None:
    """One declaration, without building all of them (looked up at every fire)."""
    for job in builtin_jobs():
        if job.id == job_id:
            return job
    for extra in getattr(settings, "SCHEDULER_JOBS", []):
        if extra.get("id") == job_id:
            return JobDeclaration(**extra)
    return None


def _duration_words(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"
