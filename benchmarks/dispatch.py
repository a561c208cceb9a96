"""Dispatch lateness: how long after its fire time a job that fires every second
starts, with 1,000 other jobs in the store.

Ours is a real `runscheduler` (lease, DjangoJobStore, run history written
before the job starts). Two references, in this process: a bare APScheduler
BackgroundScheduler on a MemoryJobStore, over the same minutes as ours (its
fires half a second after ours, so they never meet); and the naive design
our users start from, django-apscheduler's DjangoJobStore with its execution
listeners (it records each run as it is submitted, beside the job) and no
lease, right after ours (it shares our job table, so not at the same time)."""

import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob

from benchmarks.database import child_env
from benchmarks.heartbeat import read_fires, record_fire, record_grid_fire
from benchmarks.processes import MANAGE, running, wait_for
from benchmarks.report import Figure

FIRES = 300
IDLE_JOBS = 1000
BARE_OFFSET = 0.5  # seconds after ours
TARGET_MS = 10
NAIVE = "naive: DjangoJobStore and its execution listeners, no lease"
BARE = "bare APScheduler, MemoryJobStore"


def run(sizes: list[int]) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp:
        logs = {name: Path(tmp, f"{name}.log") for name in ("ours", "bare", "naive")}
        try:
            run_ours_beside_bare(Path(tmp), logs["ours"], logs["bare"])
            DjangoJob.objects.filter(id__startswith="bench_").delete()
            run_in_process(DjangoJobStore(), logs["naive"], offset=0.0)
        finally:
            DjangoJob.objects.filter(id__startswith="bench_").delete()
        ours, bare, naive = (
            [fire.lateness * 1000 for fire in read_fires(logs[name])[-FIRES:]]
            for name in ("ours", "bare", "naive")
        )
    return [
        figure("p50", statistics.median(ours), statistics.median(naive), NAIVE),
        figure("p99", percentile_99(ours), percentile_99(naive), NAIVE, with_target=True),
        figure("p50", statistics.median(ours), statistics.median(bare), BARE),
        figure("p99", percentile_99(ours), percentile_99(bare), BARE),
    ]


def run_ours_beside_bare(tmp: Path, ours_log: Path, bare_log: Path) -> None:
    env = child_env(
        DJANGO_SETTINGS_MODULE="benchmarks.settings_heartbeat",
        BENCH_FIRE_LOG=str(ours_log),
        BENCH_IDLE_JOBS=str(IDLE_JOBS),
        LOG_DIR=str(tmp),
    )
    output = tmp / "runscheduler.out"
    with running([*MANAGE, "runscheduler"], env, output):
        # Syncing 1,001 jobs into the store comes first; the first run may be a catch-up.
        wait_for(lambda: len(read_fires(ours_log)) >= 2, timeout=180, output=output)
        run_in_process(MemoryJobStore(), bare_log, offset=BARE_OFFSET)
        wait_for(lambda: len(read_fires(ours_log)) > FIRES, timeout=30, output=output)


def run_in_process(store, log: Path, offset: float) -> None:
    """The same job and idle jobs in a BackgroundScheduler on `store`, in this
    process, until `FIRES` runs (after a first one, which may be a catch-up)."""
    scheduler = BackgroundScheduler(
        jobstores={"default": store},
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1},
    )
    start = datetime(2000, 1, 1, 0, 0, 0, int(offset * 1e6), tzinfo=UTC)
    scheduler.add_job(
        record_grid_fire,
        IntervalTrigger(seconds=1, start_date=start, timezone=UTC),
        kwargs={"log": str(log), "offset": offset},
        id="bench_heartbeat",
        misfire_grace_time=30,
        replace_existing=True,
    )
    for number in range(IDLE_JOBS):
        idle = CronTrigger.from_crontab("0 0 1 1 *", timezone=UTC)
        scheduler.add_job(
            record_fire, idle, id=f"bench_idle_{number:04d}", args=[None], replace_existing=True
        )
    scheduler.start()
    try:
        wait_for(lambda: len(read_fires(log)) > FIRES, timeout=FIRES + 60, output=log)
    finally:
        scheduler.shutdown()


def percentile_99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def figure(
    statistic: str, ours: float, reference: float, reference_name: str, with_target=False
) -> Figure:
    return Figure(
        benchmark="dispatch",
        measure=f"lateness {statistic}: a job every 1 s, {IDLE_JOBS:,} other jobs in the store, "
        f"{FIRES} fires (start of the job function - fire time)",
        ours=ours,
        unit="ms",
        reference=reference,
        reference_name=reference_name,
        target=f"< {TARGET_MS} ms and ≤ 2x naive" if with_target else "",
        met=ours < TARGET_MS and ours <= 2 * reference if with_target else None,
    )
