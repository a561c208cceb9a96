"""The scheduler's state as plain data: one shape for `scheduler status --json`,
`scheduler list --json` and the health endpoint's details."""

from crm.scheduler.history import detail_of
from crm.scheduler.status import ActiveScheduler, JobState


def scheduler_state(active: ActiveScheduler | None, jobs: list[JobState], problems: list[str]):
    return {
        "healthy": not problems,
        "problems": problems,
        "active_scheduler": active.as_dict(jobs) if active else None,
        "jobs": [job_state(job) for job in jobs],
    }


def job_listing(job: JobState) -> dict:
    """What is declared about a job, and whether it is stored or paused."""
    declaration = job.declaration
    return {
        "id": job.id,
        "declared": declaration is not None,
        "stored": job.stored,
        "paused": job.paused,
        "done": job.done,
        "schedule": declaration.schedule if declaration else None,
        "schedule_in_words": declaration.describe_schedule() if declaration else None,
        "time_zone": declaration.zone if declaration else None,
        "func": declaration.func if declaration else None,
        "description": declaration.description if declaration else None,
        "misfire_grace_seconds": declaration.misfire_grace_seconds if declaration else None,
        "jitter_seconds": declaration.jitter_seconds if declaration else None,
        **policy(declaration),
        "enabled": declaration.enabled if declaration else None,
        "pause": pause(job.pause),
    }


POLICY_FIELDS = (
    "timeout_seconds",
    "retries",
    "retry_backoff_seconds",
    "retry_backoff_max_seconds",
    "retry_on",
    "overlap",
    "max_concurrent",
)


def policy(declaration) -> dict:
    """How a job runs: where (`runs_in`), its timeout, retries and overlap."""
    if declaration is None:
        return {"runs_in": None, "policy_in_words": None, **dict.fromkeys(POLICY_FIELDS)}
    return {
        "runs_in": "process" if declaration.isolated else "thread",
        "policy_in_words": declaration.describe_policy(),
        **{name: getattr(declaration, name) for name in POLICY_FIELDS},
        "retry_on": list(declaration.retry_on),
    }


def pause(info) -> dict | None:
    """Who paused a job, when, why and until when (None: until resumed)."""
    if info is None:
        return None
    return {"by": info.by, "since": info.since, "until": info.until, "note": info.note}


def job_state(job: JobState) -> dict:
    return {
        **job_listing(job),
        "next_run": job.next_run,
        "running": job.running,
        "retrying": job.retrying,
        "late": job.late,
        "late_since": job.late_since,
        "failing": job.failing,
        "last_run": execution(job.last_run),
        "last_finished_run": execution(job.last_finished),
    }


def execution(run) -> dict | None:
    if run is None:
        return None
    detail = detail_of(run)
    return {
        "scheduled": run.run_time,
        "started": detail.started_at if detail else None,
        "status": run.status,
        "duration_seconds": float(run.duration) if run.duration is not None else None,
        "triggered_by": detail.triggered_by if detail else None,
        "error": run.exception,
        "result": detail.result if detail else None,
        "attempt": detail.attempt if detail else None,
        "next_attempt_at": detail.retry_at if detail else None,
    }
