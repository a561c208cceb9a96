"""The scheduler's metrics in the Prometheus text format (GET /metrics).

Everything is read from the database on each scrape, so every process
answers the same and nothing is lost when a worker is recycled:

* runs by outcome: counters from crm.scheduler.tally (kept when history is pruned);
* run duration and fire lateness: gauge histograms over the runs whose fire
  time lies in the last METRICS_WINDOW_MINUTES (what the recent runs looked
  like; a scrape costs what that window holds, not the whole history);
* last success, next fire, paused, late, failing: from crm.scheduler.status;
* the lease, its renewal failures, the commands waiting for the active scheduler.

The families are made from values already read, and written in the text
format by crm.scheduler.text_format.
"""

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db.models import DurationField, ExpressionWrapper, F
from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution

from crm.scheduler import history, status, tally, text_format
from crm.scheduler.lease import LEASE_NAME
from crm.scheduler.models import SchedulerCommand, SchedulerLease
from crm.scheduler.text_format import Family

OUTCOMES = {
    history.SUCCEEDED: "succeeded",
    history.FAILED: "failed",
    history.TIMED_OUT: "timed_out",
    history.INTERRUPTED: "interrupted",
    history.MISSED: "missed",
    history.SKIPPED: "skipped",
}
ALWAYS_COUNTED = (history.SUCCEEDED, history.FAILED)
BUCKET_SETTINGS = ("METRICS_DURATION_BUCKETS", "METRICS_LATENESS_BUCKETS")


class MetricsMisconfigured(ValueError):
    """A METRICS_* setting is malformed (also crm.E031/E032 in `manage.py check`)."""

    def __init__(self, problem: str, fix: str, check_id: str):
        super().__init__(f"{problem} {fix}")
        self.problem, self.fix, self.check_id = problem, fix, check_id


def buckets(name: str) -> tuple[float, ...]:
    """The upper bounds a bucket setting lists, or MetricsMisconfigured naming it."""
    values = getattr(settings, name)
    try:
        bounds = tuple(float(value) for value in values)
    except (TypeError, ValueError):
        bounds = ()
    if (
        not bounds
        or any(not 0 < bound < float("inf") for bound in bounds)
        or list(bounds) != sorted(set(bounds))
    ):
        written = ",".join(map(str, values)) if isinstance(values, list | tuple) else values
        raise MetricsMisconfigured(
            f"{name}={written!r} is not a list of histogram bucket bounds.",
            "Use positive numbers of seconds in increasing order, separated by commas, "
            "e.g. 0.1,1,10,60.",
            "crm.E031",
        )
    return bounds


def window() -> timedelta:
    """How far back the histograms look."""
    minutes = settings.METRICS_WINDOW_MINUTES
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
        raise MetricsMisconfigured(
            f"METRICS_WINDOW_MINUTES={minutes!r} is not valid.",
            "Use a whole number of minutes, at least 1 (the default is 60).",
            "crm.E032",
        )
    return timedelta(minutes=minutes)


def configuration_errors() -> list[MetricsMisconfigured]:
    errors = []
    for read_setting in (*(partial(buckets, name) for name in BUCKET_SETTINGS), window):
        try:
            read_setting()
        except MetricsMisconfigured as error:
            errors.append(error)
    return errors


@dataclass(frozen=True)
class RecentRun:
    duration: float | None  # seconds; None: not finished
    lateness: float | None  # start - fire time; None: run by hand or not started


@dataclass(frozen=True)
class Snapshot:
    active: status.ActiveScheduler | None
    jobs: list[status.JobState]
    outcomes: dict[tuple[str, str], tally.Outcome]
    recent: dict[str, list[RecentRun]]
    renewal_failures: int
    commands_waiting: int
    duration_buckets: tuple[float, ...]
    lateness_buckets: tuple[float, ...]


def read(now: datetime | None = None) -> Snapshot:
    """All values of one scrape; a few queries whatever the history's size."""
    now = now or timezone.now()
    duration_buckets, lateness_buckets = (buckets(name) for name in BUCKET_SETTINGS)
    since = now - window()
    lease = SchedulerLease.objects.filter(name=LEASE_NAME).values("renewal_failures").first()
    return Snapshot(
        active=status.active_scheduler(now),
        jobs=status.job_states(now, runs=False),
        outcomes=tally.outcomes(),
        recent=_recent_runs(since),
        renewal_failures=lease["renewal_failures"] if lease else 0,
        commands_waiting=SchedulerCommand.objects.filter(taken_at__isnull=True).count(),
        duration_buckets=duration_buckets,
        lateness_buckets=lateness_buckets,
    )


def exposition(snapshot: Snapshot) -> bytes:
    return text_format.render(SnapshotCollector(snapshot).collect())


def _recent_runs(since: datetime) -> dict[str, list[RecentRun]]:
    lateness = ExpressionWrapper(F("detail__started_at") - F("run_time"), DurationField())
    rows = (
        DjangoJobExecution.objects.filter(run_time__gte=since)
        .exclude(status__in=(*status.NOT_RUN_STATUSES, *history.WAITING))
        .annotate(lateness=lateness)
        .values_list("job_id", "status", "duration", "lateness", "detail__triggered_by")
    )
    recent = defaultdict(list)
    for job_id, run_status, duration, late, triggered_by in rows:
        finished = run_status != history.RUNNING and duration is not None
        scheduled = triggered_by == history.BY_SCHEDULE and late is not None
        recent[job_id].append(
            RecentRun(
                float(duration) if finished else None,
                max(late.total_seconds(), 0.0) if scheduled else None,
            )
        )
    return recent


class SnapshotCollector:
    """The metric families of one Snapshot (no queries of its own)."""

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot

    def collect(self) -> list[Family]:
        return [*self._job_metrics(), *self._histograms(), *self._scheduler_metrics()]

    def _job_metrics(self) -> list[Family]:
        snapshot = self.snapshot
        runs = Family("crm_job_runs", "counter", "Runs of the job that ended, by outcome.")
        last_success = _gauge(
            "crm_job_last_success_timestamp_seconds", "When the job's latest successful run ended."
        )
        next_fire = _gauge(
            "crm_job_next_fire_timestamp_seconds",
            "The job's next fire time (none: paused or done).",
        )
        paused = _gauge("crm_job_paused", "1 if the job is paused.")
        late = _gauge(
            "crm_job_late", "1 if a fire plus its misfire grace passed and it has not run."
        )
        failing = _gauge("crm_job_failing", "1 if the job's latest finished run failed.")
        for job in snapshot.jobs:
            job_label = (("job", job.id),)
            for run_status, outcome in OUTCOMES.items():
                counted = snapshot.outcomes.get((job.id, run_status))
                # The others only once they happen: each series costs every scrape.
                if counted or run_status in ALWAYS_COUNTED:
                    runs.add((*job_label, ("outcome", outcome)), counted.runs if counted else 0)
            succeeded = snapshot.outcomes.get((job.id, history.SUCCEEDED))
            if succeeded and succeeded.last_finished is not None:
                last_success.add(job_label, succeeded.last_finished)
            if job.next_run is not None:
                next_fire.add(job_label, job.next_run.timestamp())
            paused.add(job_label, int(job.paused))
            late.add(job_label, int(job.late))
            failing.add(job_label, int(job.failing))
        return [runs, last_success, next_fire, paused, late, failing]

    def _histograms(self) -> list[Family]:
        minutes = f"fired in the last {settings.METRICS_WINDOW_MINUTES} minutes"
        duration = Family(
            "crm_job_run_duration_seconds",
            "gaugehistogram",
            f"How long the job's finished runs {minutes} took.",
        )
        lateness = Family(
            "crm_job_fire_lateness_seconds",
            "gaugehistogram",
            f"How long after its fire time each scheduled run {minutes} started.",
        )
        for job_id, runs in sorted(self.snapshot.recent.items()):
            for family, values, bounds in (
                (duration, [run.duration for run in runs], self.snapshot.duration_buckets),
                (lateness, [run.lateness for run in runs], self.snapshot.lateness_buckets),
            ):
                values = [value for value in values if value is not None]
                if values:
                    family.add_histogram(
                        (("job", job_id),), _cumulative(values, bounds), sum(values)
                    )
        return [duration, lateness]

    def _scheduler_metrics(self) -> list[Family]:
        active = self.snapshot.active
        held = Family("crm_scheduler_lease_held", "gauge", "1 if a scheduler holds the lease.")
        held.add(value=int(bool(active)))
        holder = Family("crm_scheduler_lease_holder", "info", "The scheduler holding the lease.")
        if active is not None:
            holder.add((("host", active.host), ("pid", str(active.pid))))
        stalled = Family(
            "crm_scheduler_stalled",
            "gauge",
            "1 if the active scheduler holds the lease but dispatches nothing.",
        )
        is_stalled = active is not None and active.stalled_since(self.snapshot.jobs) is not None
        stalled.add(value=int(is_stalled))
        renewal_failures = Family(
            "crm_scheduler_lease_renewal_failures",
            "counter",
            "Lease renewals that failed (database unreachable, or the lease had passed on).",
        )
        renewal_failures.add(value=self.snapshot.renewal_failures)
        waiting = Family(
            "crm_scheduler_commands_waiting",
            "gauge",
            "Commands (run, pause, ...) not yet taken by an active scheduler.",
        )
        waiting.add(value=self.snapshot.commands_waiting)
        return [held, holder, stalled, renewal_failures, waiting]


def _gauge(name: str, documentation: str) -> Family:
    return Family(name, "gauge", documentation)


def _cumulative(values: list[float], bounds: tuple[float, ...]) -> list[tuple[str, int]]:
    ordered = sorted(values)
    counts = [(str(bound), bisect.bisect_right(ordered, bound)) for bound in bounds]
    return [*counts, ("+Inf", len(ordered))]
