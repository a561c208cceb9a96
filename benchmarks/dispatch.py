"""Dispatch lateness: how long after its fire time a job that fires every second
starts, with 1,000 other jobs in the store. Ours is a real `runscheduler`
(lease, DjangoJobStore, run history); the reference is a bare APScheduler
BackgroundScheduler on a MemoryJobStore with the same jobs, in this process,
over the same minutes (its fires half a second after ours, so they never meet)."""

import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from django_apscheduler.models import DjangoJob

from benchmarks.database import child_env
from benchmarks.heartbeat import read_fires, record_fire
from benchmarks.processes import MANAGE, running, wait_for
from benchmarks.report import Figure

FIRES = 300
IDLE_JOBS = 1000
BARE_OFFSET = 0.5  # seconds after ours


def run(sizes: list[int]) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp:
        ours_log, bare_log = Path(tmp, "ours.log"), Path(tmp, "bare.log")
        env = child_env(
            DJANGO_SETTINGS_MODULE="benchmarks.settings_heartbeat",
            BENCH_FIRE_LOG=str(ours_log),
            BENCH_IDLE_JOBS=str(IDLE_JOBS),
            LOG_DIR=tmp,
        )
        output = Path(tmp, "runscheduler.out")
        try:
            with running([*MANAGE, "runscheduler"], env, output):
                # Syncing 1,001 jobs into the store comes first; the first run may be a catch-up.
                wait_for(lambda: len(read_fires(ours_log)) >= 2, timeout=180, output=output)
                run_bare_scheduler(bare_log, FIRES)
                wait_for(lambda: len(read_fires(ours_log)) > FIRES, timeout=30, output=output)
        finally:
            DjangoJob.objects.filter(id__startswith="bench_").delete()
        ours = [fire.lateness * 1000 for fire in read_fires(ours_log)[-FIRES:]]
        bare = [fire.lateness * 1000 for fire in read_fires(bare_log)[-FIRES:]]
    return [
        figure("p50", statistics.median(ours), statistics.median(bare), target=None),
        figure("p99", percentile_99(ours), percentile_99(bare), target=50),
    ]


def run_bare_scheduler(log: Path, fires: int) -> None:
    """The same job and idle jobs in a bare APScheduler, until `fires` runs."""
    scheduler = BackgroundScheduler(
        timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1}
    )
    start = datetime(2000, 1, 1, 0, 0, 0, int(BARE_OFFSET * 1e6), tzinfo=UTC)
    scheduler.add_job(
        lambda: record_fire(fire_time=last_bare_fire(), log=str(log)),
        IntervalTrigger(seconds=1, start_date=start, timezone=UTC),
        id="bench_heartbeat",
        misfire_grace_time=30,
    )
    for number in range(IDLE_JOBS):
        idle = CronTrigger.from_crontab("0 0 1 1 *", timezone=UTC)
        scheduler.add_job(record_fire, idle, id=f"bench_idle_{number:04d}", args=[None])
    scheduler.start()
    try:
        wait_for(lambda: len(read_fires(log)) >= fires, timeout=fires + 30, output=log)
    finally:
        scheduler.shutdown()


def last_bare_fire() -> datetime:
    """The bare job's fires are on a grid: every second, BARE_OFFSET past it."""
    now = time.time()
    return datetime.fromtimestamp(now - (now - BARE_OFFSET) % 1, UTC)


def percentile_99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def figure(statistic: str, ours: float, bare: float, target: float | None) -> Figure:
    met = None if target is None else ours < target and ours <= 2 * bare
    return Figure(
        benchmark="dispatch",
        measure=f"lateness {statistic}: a job every 1 s, {IDLE_JOBS:,} other jobs, "
        f"{FIRES} fires (start of the job function - fire time)",
        ours=ours,
        unit="ms",
        reference=bare,
        reference_name="bare APScheduler, MemoryJobStore",
        target="" if target is None else f"< {target} ms and ≤ 2x bare",
        met=met,
    )
