"""The state of the scheduler and its jobs, read cheaply from the database.

The one place that says what "late" and "failing" mean; `scheduler status`,
the admin and the health endpoint all read it from here:

* late: a fire time plus the job's misfire grace has passed and the job has
  not been run for it (its stored next run time is that old). A paused job is
  never late.
* failing: the job's last finished run failed or was interrupted.
* stalled: a scheduler holds the lease but is not dispatching: its dispatch
  loop has not read the job store for SCHEDULER_STALL_SECONDS, or a fire has
  been due that long (and the holder active that long) without being
  dispatched. Whatever the cause: a dead connection, a dead thread, a bug.
  Judged by the database's clock, so every process agrees.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from crm.scheduler import history
from crm.scheduler.declarations import JobDeclaration, declared_jobs
from crm.scheduler.lease import LEASE_NAME, current_holder
from crm.scheduler.models import JobPause, SchedulerLease

FAILED_STATUSES = (history.FAILED, history.INTERRUPTED, history.TIMED_OUT)
NOT_RUN_STATUSES = (history.MISSED, history.SKIPPED)


@dataclass(frozen=True)
class ActiveScheduler:
    host: str
    pid: int
    since: datetime
    heartbeat: datetime
    heartbeat_age: timedelta
    dispatched: datetime | None = None  # its dispatch loop's last read of the store
    database_now: datetime | None = None

    def stalled_since(self, jobs: list["JobState"]) -> datetime | None:
        """When it stopped dispatching, if it has; see the module's docstring."""
        now = self.database_now or timezone.now()
        limit = stall_limit()
        if now - self.since <= limit:
            return None
        last_dispatch = self.dispatched or self.since
        if now - last_dispatch > limit:
            return last_dispatch
        # Next run times come from the holder's clock, which may be off from
        # the database's by up to the skew allowed.
        due_limit = limit + timedelta(seconds=settings.SCHEDULER_MAX_CLOCK_SKEW_SECONDS)
        due = [job.next_run for job in jobs if job.declaration and job.next_run is not None]
        if due and now - min(due) > due_limit:
            return max(min(due), self.since)
        return None

    def as_dict(self, jobs: list["JobState"] | None = None) -> dict:
        stalled = self.stalled_since(jobs or [])
        return {
            "host": self.host,
            "pid": self.pid,
            "since": self.since,
            "heartbeat": self.heartbeat,
            "heartbeat_age_seconds": round(self.heartbeat_age.total_seconds(), 1),
            "dispatched": self.dispatched,
            "stalled": stalled is not None,
            "stalled_since": stalled,
        }


def stall_limit() -> timedelta:
    # Never below what a healthy holder shows between two renewals (the
    # dispatch time is published with each, every third of the lease).
    renewals = settings.SCHEDULER_LEASE_SECONDS / 3 + 5
    return timedelta(seconds=max(settings.SCHEDULER_STALL_SECONDS, renewals))


@dataclass(frozen=True)
class PauseInfo:
    by: str
    since: datetime
    until: datetime | None
    note: str


@dataclass(frozen=True)
class JobState:
    id: str
    declaration: JobDeclaration | None  # None: stored but no longer declared
    stored: bool  # False: declared but not synced into the job store yet
    next_run: datetime | None  # None: paused (or not stored)
    last_run: DjangoJobExecution | None  # the latest fire, whatever its status
    last_finished: DjangoJobExecution | None  # the latest run that ran to an end
    late_since: datetime | None
    recent: list[DjangoJobExecution] = field(default_factory=list)  # latest first
    pause: PauseInfo | None = None  # who paused it, why, until when (if paused by someone)
    # Their statuses, also when the runs themselves were not read (runs=False).
    last_status: str | None = None
    last_finished_status: str | None = None

    @property
    def done(self) -> bool:
        """A one-shot job whose one fire has passed (run, missed or skipped)."""
        one_shot = self.declaration is not None and self.declaration.run_at is not None
        return one_shot and self.stored and self.next_run is None and self.last_status is not None

    @property
    def paused(self) -> bool:
        return self.stored and self.next_run is None and not self.done

    @property
    def running(self) -> bool:
        return self.last_status == history.RUNNING

    @property
    def retrying(self) -> bool:
        """Its latest fire failed and waits for another attempt."""
        return self.last_status == history.RETRYING

    @property
    def late(self) -> bool:
        return self.late_since is not None

    @property
    def failing(self) -> bool:
        return self.last_finished_status in FAILED_STATUSES


ALL_CHECKS = ("active", "stalled", "late", "failing")


def problems(active, jobs, checks=ALL_CHECKS) -> list[str]:
    """What is wrong, in words; `checks` picks which conditions count."""
    found = ["no scheduler is active"] if "active" in checks and active is None else []
    stalled = active.stalled_since(jobs) if active is not None else None
    if "stalled" in checks and stalled is not None:
        found.append(
            f"the active scheduler (host {active.host}, pid {active.pid}) is stalled: "
            f"nothing dispatched since {stalled.isoformat(timespec='seconds')}"
        )
    if "late" in checks:
        found += [f"{job.id} is late" for job in jobs if job.late]
    if "failing" in checks:
        found += [f"{job.id} is failing" for job in jobs if job.failing]
    return found


def active_scheduler(now: datetime | None = None) -> ActiveScheduler | None:
    row: SchedulerLease | None = current_holder(LEASE_NAME)
    if row is None:
        return None
    now = now or timezone.now()
    return ActiveScheduler(
        host=row.host,
        pid=row.pid,
        since=row.acquired_at,
        heartbeat=row.heartbeat_at,
        heartbeat_age=max(now - row.heartbeat_at, timedelta(0)),
        dispatched=row.dispatched_at,
        database_now=row.database_now,
    )


def job_states(
    now: datetime | None = None,
    recent_runs: int = 0,
    job_ids: list[str] | None = None,
    runs: bool = True,
) -> list[JobState]:
    """Every declared or stored job, declared ones first in declaration order.
    With `recent_runs`, each state carries that many of its latest fires;
    with `job_ids`, only those jobs; with `runs=False`, only the statuses of
    its latest runs, not the runs (for what only needs the states: late,
    failing, paused, ...).
    Two queries whatever the history's size (one with runs=False): each is an
    index lookup per job on the unique (job, run_time) index."""
    now = now or timezone.now()
    declared = declared_jobs()
    stored_jobs = _stored_jobs(recent_runs, runs)
    if job_ids is not None:
        wanted = set(job_ids)
        declared = {job_id: job for job_id, job in declared.items() if job_id in wanted}
        stored_jobs = stored_jobs.filter(id__in=job_ids)
    stored = {job["id"]: job for job in stored_jobs}
    return _states(now, declared, stored, _pauses(job_ids), runs, recent_runs)


def problem_states(now: datetime | None = None) -> list[JobState]:
    """What `problems` and the admin's banner need, without reading every job:
    the states of the stored jobs that may be late or stalled (a fire due for
    longer than the shortest grace or the stall limit) or failing. With
    10,000 healthy jobs it reads a handful of rows instead of 10,000."""
    now = now or timezone.now()
    declared = declared_jobs()
    due_limit = stall_limit() + timedelta(seconds=settings.SCHEDULER_MAX_CLOCK_SKEW_SECONDS)
    soonest = min([due_limit, *(job.misfire_grace for job in declared.values())])
    candidates = _stored_jobs(0, runs=False).filter(
        Q(next_run_time__lt=now - soonest) | Q(last_finished_status__in=FAILED_STATUSES)
    )
    stored = {job["id"]: job for job in candidates}
    declared = {job_id: job for job_id, job in declared.items() if job_id in stored}
    # Who paused a job does not make a problem: not read.
    return _states(now, declared, stored, pauses={}, runs=False, recent_runs=0)


def _states(now, declared, stored, pauses, runs, recent_runs) -> list[JobState]:
    executions = _executions(stored.values()) if runs else {}
    states = []
    for job_id in [*declared, *sorted(set(stored) - set(declared))]:
        declaration, row = declared.get(job_id), stored.get(job_id, {})
        fires = executions.get(job_id, {})
        states.append(
            JobState(
                id=job_id,
                declaration=declaration,
                stored=job_id in stored,
                next_run=row.get("next_run_time"),
                last_run=fires.get(row.get("last_run_id")),
                last_finished=fires.get(row.get("last_finished_id")),
                last_status=row.get("last_run_status"),
                last_finished_status=row.get("last_finished_status"),
                late_since=_late_since(declaration, row.get("next_run_time"), now),
                pause=pauses.get(job_id)
                if job_id in stored and row["next_run_time"] is None
                else None,
                recent=_recent(fires, row.get("recent_since"), recent_runs) if fires else [],
            )
        )
    return states


def _recent(fires: dict, since: datetime | None, recent_runs: int) -> list[DjangoJobExecution]:
    if not recent_runs:
        return []
    latest_first = sorted(fires.values(), key=lambda run: run.run_time, reverse=True)
    return [run for run in latest_first if since is None or run.run_time >= since][:recent_runs]


def _stored_jobs(recent_runs: int, runs: bool):
    def latest(executions, field="id", offset=0):
        return Subquery(
            executions.filter(job_id=OuterRef("id"))
            .order_by("-run_time")
            .values(field)[offset : offset + 1]
        )

    every = DjangoJobExecution.objects.all()
    finished = every.exclude(status__in=(history.RUNNING, history.RETRYING, *NOT_RUN_STATUSES))
    annotations = {
        "last_run_status": latest(every, "status"),
        "last_finished_status": latest(finished, "status"),
    }
    if runs:
        annotations |= {"last_run_id": latest(every), "last_finished_id": latest(finished)}
    if runs and recent_runs:
        annotations["recent_since"] = latest(every, "run_time", offset=recent_runs - 1)
    return DjangoJob.objects.annotate(**annotations).values("id", "next_run_time", *annotations)


def _pauses(job_ids: list[str] | None) -> dict[str, PauseInfo]:
    """Who paused which job: a few rows, whatever the number of jobs."""
    rows = JobPause.objects.all() if job_ids is None else JobPause.objects.filter(pk__in=job_ids)
    return {
        row.job_id: PauseInfo(by=row.paused_by, since=row.paused_at, until=row.until, note=row.note)
        for row in rows
    }


def _executions(jobs) -> dict[str, dict[int, DjangoJobExecution]]:
    wanted = Q(
        pk__in=[
            run_id
            for job in jobs
            for run_id in (job["last_run_id"], job["last_finished_id"])
            if run_id
        ]
    )
    for job in jobs:
        if job.get("recent_since"):
            wanted |= Q(job_id=job["id"], run_time__gte=job["recent_since"])
        elif "recent_since" in job and job["last_run_id"]:
            wanted |= Q(job_id=job["id"])  # fewer runs than asked for: all of them
    by_job: dict[str, dict[int, DjangoJobExecution]] = {}
    if wanted == Q(pk__in=[]):
        return by_job
    for run in DjangoJobExecution.objects.filter(wanted).select_related("detail"):
        by_job.setdefault(run.job_id, {})[run.pk] = run
    return by_job


def _late_since(declaration, next_run, now) -> datetime | None:
    if declaration is None or next_run is None:
        return None
    deadline = next_run + declaration.misfire_grace + declaration.jitter_for(next_run)
    return next_run if now > deadline else None
