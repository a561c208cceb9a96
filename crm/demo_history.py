"""Demo run history for `make run`: a few weeks of the built-in jobs' runs, one
failure and one missed fire among them, so the scheduler's pages have
something to show on a new install. Development only (DEBUG).

Demo runs are marked: their run detail names the host `demo` (DEMO_HOST), and
the missed fire's message ends in "(demo data)".
"""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution

from crm.scheduler import control, history
from crm.scheduler.declarations import DEMO_JOB_ID, declared_jobs
from crm.scheduler.models import RunDetail

DEMO_HOST = "demo"
DEMO_MARK = "(demo data)"
REQUESTED_BY = "seed_demo (demo data)"
# How far back each job's demo history goes: the every-minute demo job gets
# fewer days, or it would be tens of thousands of rows.
DAYS = {
    "auto_close_resolved_tickets": 28,
    "delete_old_job_executions": 28,
    DEMO_JOB_ID: 2,
}
# (seconds of the shortest run, of the longest) and what a run returns.
RUNS = {
    "auto_close_resolved_tickets": ((0.3, 2.5), lambda rng: {"closed": rng.randint(3, 60)}),
    "delete_old_job_executions": ((0.05, 0.4), lambda rng: {"deleted": rng.randint(50, 900)}),
    DEMO_JOB_ID: ((0.01, 0.05), lambda rng: {"open": rng.randint(200, 260)}),
}
FAILED_JOB, FAILED_DAYS_AGO = "auto_close_resolved_tickets", 9
MISSED_JOB, MISSED_DAYS_AGO = "auto_close_resolved_tickets", 16
TRACEBACK = f"""Traceback (most recent call last):
  File "/srv/crm/crm/jobs.py", line 23, in auto_close_resolved_tickets
    result = services.tickets_auto_close(
  File "/srv/crm/crm/services.py", line 212, in tickets_auto_close
    closed += _close_batch(batch, reason=reason)
django.db.utils.OperationalError: database is locked {DEMO_MARK}
"""


class DemoHistoryRefused(Exception):
    """Demo history asked for where it must not be written."""


@dataclass(frozen=True)
class Seeded:
    runs: int
    jobs: list[str]
    close_requested: bool


def refuse_outside_development() -> None:
    if not settings.DEBUG:
        raise DemoHistoryRefused(
            "Demo run history is for development only and DEBUG is off. "
            "Run with DEBUG=1 (make run does), or leave out --history."
        )


def seed_run_history(*, now: datetime | None = None, seed: int = 1) -> Seeded:
    """Store the declared jobs (a sync), write their demo history up to `now`,
    and ask the first scheduler to start to run auto-close at once, so the
    demo tickets due to close are closed on the first start."""
    refuse_outside_development()
    now = now or timezone.now()
    control.sync(REQUESTED_BY)
    declared = declared_jobs()
    rng = random.Random(seed)
    jobs = [job_id for job_id in DAYS if job_id in declared and declared[job_id].enabled]
    runs = 0
    with transaction.atomic():
        for job_id in jobs:
            fires = fire_times(declared[job_id], now - timedelta(days=DAYS[job_id]), now)
            runs += write_runs(job_id, fires, now, rng)
    close = "auto_close_resolved_tickets" in jobs
    if close:
        control.operate(control.Action.RUN, ["auto_close_resolved_tickets"], REQUESTED_BY)
    return Seeded(runs=runs, jobs=jobs, close_requested=close)


def fire_times(declaration, start: datetime, end: datetime) -> list[datetime]:
    trigger = declaration.trigger()
    fires, fire = [], trigger.get_next_fire_time(None, start)
    while fire is not None and fire <= end:
        fires.append(fire)
        fire = trigger.get_next_fire_time(fire, fire)
    return fires


def write_runs(job_id: str, fires: list[datetime], now: datetime, rng: random.Random) -> int:
    if not fires:
        return 0
    (shortest, longest), result = RUNS[job_id]
    executions, details = [], []
    for fire in fires:
        days_ago = (now - fire).days
        if job_id == MISSED_JOB and days_ago == MISSED_DAYS_AGO:
            executions.append(missed(job_id, fire))
            continue
        failed = job_id == FAILED_JOB and days_ago == FAILED_DAYS_AGO
        duration = Decimal(f"{rng.uniform(shortest, longest):.2f}")
        executions.append(
            DjangoJobExecution(
                job_id=job_id,
                run_time=fire,
                status=history.FAILED if failed else history.SUCCEEDED,
                duration=duration,
                finished=Decimal(f"{fire.timestamp() + float(duration):.2f}"),
                exception=f"OperationalError: database is locked {DEMO_MARK}" if failed else None,
                traceback=TRACEBACK if failed else None,
            )
        )
        details.append(
            RunDetail(
                triggered_by=history.BY_SCHEDULE,
                started_at=fire + timedelta(seconds=rng.uniform(0.005, 0.4)),
                host=DEMO_HOST,
                pid=0,
                result=None if failed else result(rng),
            )
        )
    DjangoJobExecution.objects.bulk_create(executions, batch_size=500)
    # Read back rather than rely on bulk_create returning ids (MySQL does not).
    ids = dict(
        DjangoJobExecution.objects.filter(job_id=job_id, run_time__range=(fires[0], fires[-1]))
        .exclude(status=history.MISSED)
        .values_list("run_time", "pk")
    )
    ran = [execution for execution in executions if execution.status != history.MISSED]
    for execution, detail in zip(ran, details, strict=True):
        detail.execution_id = ids[execution.run_time]
    RunDetail.objects.bulk_create(details, batch_size=500)
    return len(executions)


def missed(job_id: str, fire: datetime) -> DjangoJobExecution:
    grace = declared_jobs()[job_id].misfire_grace_seconds
    return DjangoJobExecution(
        job_id=job_id,
        run_time=fire,
        status=history.MISSED,
        exception=f"Missed: no scheduler ran it within its misfire grace of {grace} s "
        f"(the host was down overnight) {DEMO_MARK}",
    )
