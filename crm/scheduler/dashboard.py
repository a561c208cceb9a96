"""The scheduler dashboard's figures: each job's runs of the last DAYS days,
added up per day by the database in one query for a whole page of jobs, and
what the page shows of them (a strip of days as inline SVG, the success
rate, the lateness of recent scheduled runs)."""

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Count, Max, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django_apscheduler.models import DjangoJobExecution

from crm.scheduler import history
from crm.scheduler.status import FAILED_STATUSES

DAYS = 30
# Fires that should have run: the success rate is the share of them that succeeded.
COUNTED = (history.SUCCEEDED, *FAILED_STATUSES, history.MISSED)
OUTCOME_COLOURS = {  # the day's worst outcome
    "failed": "#c62828",
    "missed": "#ef6c00",
    "succeeded": "#2e7d32",
    "other": "#757575",  # only skipped, queued or still running
}


@dataclass
class Day:
    day: date
    runs: dict[str, int] = field(default_factory=dict)  # by status
    timed: int = 0  # runs with a duration
    total: float = 0.0  # their seconds
    longest: float = 0.0

    @property
    def average(self) -> float | None:
        return self.total / self.timed if self.timed else None

    @property
    def outcome(self) -> str | None:
        if not self.runs:
            return None
        if any(self.runs.get(status) for status in FAILED_STATUSES):
            return "failed"
        if self.runs.get(history.MISSED):
            return "missed"
        return "succeeded" if self.runs.get(history.SUCCEEDED) else "other"

    def describe(self) -> str:
        counts = ", ".join(f"{count} {status}" for status, count in sorted(self.runs.items()))
        text = f"{self.day:%a %Y-%m-%d}: {counts or 'no runs'}"
        if self.average is not None:
            text += f"; {self.average:.2f} s on average, longest {self.longest:.2f} s"
        return text


@dataclass
class JobDays:
    days: list[Day]  # oldest first, one per day of the window

    @property
    def success_rate(self) -> tuple[int, int] | None:
        """(succeeded, fires that should have run) over the window."""
        counted = sum(day.runs.get(status, 0) for day in self.days for status in COUNTED)
        succeeded = sum(day.runs.get(history.SUCCEEDED, 0) for day in self.days)
        return (succeeded, counted) if counted else None


def window(today: date) -> list[date]:
    return [today - timedelta(days=back) for back in range(DAYS - 1, -1, -1)]


def daily_runs(job_ids: list[str], now=None) -> dict[str, JobDays]:
    """Each job's last DAYS days (in the current time zone), from ONE grouped
    query: a range scan per job on the (job, run_time) unique index."""
    now = now or timezone.now()
    zone = timezone.get_current_timezone()
    days = window(timezone.localtime(now, zone).date())
    since = datetime.combine(days[0], time.min, tzinfo=zone)
    by_job = {job_id: {day: Day(day) for day in days} for job_id in job_ids}
    rows = (
        DjangoJobExecution.objects.filter(job_id__in=job_ids, run_time__gte=since)
        .annotate(day=TruncDate("run_time", tzinfo=zone))
        .values("job_id", "day", "status")
        .annotate(
            runs=Count("id"),
            timed=Count("duration"),
            total=Sum("duration"),
            longest=Max("duration"),
        )
        .order_by()
    )
    for row in rows:
        day = by_job[row["job_id"]].get(row["day"])
        if day is None:
            continue  # a run scheduled in the future (a clock ahead of ours)
        day.runs[row["status"]] = row["runs"]
        if row["timed"]:
            day.timed += row["timed"]
            day.total += float(row["total"])
            day.longest = max(day.longest, float(row["longest"]))
    return {job_id: JobDays(list(days_of.values())) for job_id, days_of in by_job.items()}


def strip(job_days: JobDays, cell=7, gap=1, height=24):
    """The window as inline SVG, one bar per day, oldest first: colour by the
    day's worst outcome, height by its longest run; hover for the day's runs."""
    longest = max((day.longest for day in job_days.days), default=0) or 1
    bars = []
    # Written directly rather than by format_html per bar (100 jobs x 30 days
    # a page); the titles are the only text not ours, and are escaped.
    for index, day in enumerate(job_days.days):
        outcome = day.outcome
        bar = 2 if outcome is None else max(4, round(height * day.longest / longest))
        fill = OUTCOME_COLOURS[outcome] if outcome else "#e0e0e0"
        bars.append(
            f'<rect x="{index * (cell + gap)}" y="{height - bar}" width="{cell}" '
            f'height="{bar}" fill="{fill}"><title>{escape(day.describe())}</title></rect>'
        )
    return mark_safe(
        f'<svg width="{DAYS * (cell + gap)}" height="{height}" role="img" '
        f'aria-label="runs of the last {DAYS} days">{"".join(bars)}</svg>'
    )


def lateness_p95(recent_runs) -> tuple[float, int] | None:
    """(p95 of start - fire time in seconds, how many) over the scheduled runs
    among `recent_runs` (runs by hand start when asked, not at a fire)."""
    lateness = sorted(
        max((run.detail.started_at - run.run_time).total_seconds(), 0)
        for run in recent_runs
        if history.detail_of(run) is not None and run.detail.triggered_by == history.BY_SCHEDULE
    )
    if not lateness:
        return None
    return lateness[math.ceil(0.95 * len(lateness)) - 1], len(lateness)  # nearest rank
