"""How the scheduler grows with the number of declared jobs: 10, 1,000 and
10,000 jobs that do not fire during the run (cron once a year).

In this process, on the same store: the sync at activation (into an empty
store, and again with nothing to change), `scheduler status`, and the health
endpoint (the monitor's poll, and with the details). With real `runscheduler`
processes: the active one's and a standby's CPU and queries per second while
nothing fires. Then STANDBYS standby processes beside an active one: their
queries per second together against the active scheduler's own.

Cost per job at 10,000 against 1,000 jobs should be flat (target ≤ 1.5x)."""

import os
import signal
import statistics
import tempfile
import time
from contextlib import ExitStack, contextmanager, suppress
from functools import partial
from io import StringIO
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from django_apscheduler.models import DjangoJob

from benchmarks.database import child_env
from benchmarks.measure import as_in_a_server, stopwatch
from benchmarks.processes import MANAGE, running, wait_for
from benchmarks.report import Figure
from crm.scheduler.declarations import declared_jobs
from crm.scheduler.jobstore import KeepingDjangoJobStore
from crm.scheduler.lease import LEASE_NAME, current_holder
from crm.scheduler.sync import sync_jobs

SIZES = (10, 1000, 10_000)
WINDOW_SECONDS = 15
STANDBYS = 30
REQUESTS = 20
TOKEN = "benchmark-growth-token-" + "x" * 32


def declarations(jobs: int) -> list[dict]:
    return [
        {
            "id": f"bench_job_{number:05d}",
            "func": "crm.jobs.delete_old_job_executions",
            "cron": "0 3 1 1 *",
        }
        for number in range(jobs)
    ]


def run(sizes: list[int]) -> list[Figure]:
    measured = {jobs: measure(jobs) for jobs in SIZES}
    figures = growth_figures(measured)
    figures += standby_figures(standby_load())
    clear()
    return figures


def measure(jobs: int) -> dict[str, float]:
    clear()
    with override_settings(
        SCHEDULER_JOBS=declarations(jobs), HEALTH_TOKEN=TOKEN, ALLOWED_HOSTS=["testserver"]
    ):
        first_sync, second_sync = sync_times()
        status_ms = median_ms(scheduler_status)
        poll_ms, details_ms = health_times()
    idle = idle_costs(jobs)
    return {
        "first sync (into an empty store)": first_sync,
        "second sync (nothing to change)": second_sync,
        "scheduler status": status_ms,
        "health poll p99 (status only)": poll_ms,
        "health details p99": details_ms,
        **idle,
    }


def sync_times() -> tuple[float, float]:
    scheduler = BackgroundScheduler(jobstores={"default": KeepingDjangoJobStore()}, timezone="UTC")
    scheduler.start(paused=True)
    try:
        with stopwatch() as first:
            sync_jobs(scheduler, declared_jobs())
        with stopwatch() as second:
            sync_jobs(scheduler, declared_jobs())
    finally:
        scheduler.shutdown(wait=False)
    return first() * 1000, second() * 1000


def health_times() -> tuple[float, float]:
    anonymous = Client()
    with_token = Client(headers={"Authorization": f"Bearer {TOKEN}"})
    with as_in_a_server():
        poll = p99_ms(lambda: anonymous.get("/health/scheduler/"))
        details = p99_ms(lambda: with_token.get("/health/scheduler/"))
    return poll, details


def scheduler_status() -> None:
    with suppress(CommandError):  # exits 1: no scheduler is active, as here
        call_command("scheduler", "status", stdout=StringIO())


def median_ms(call, times: int = 5) -> float:
    call()
    return statistics.median(timed(call) for _ in range(times))


def p99_ms(call) -> float:
    for _ in range(3):
        call()
    elapsed = [timed(call) for _ in range(REQUESTS)]
    return max(elapsed) if len(elapsed) < 100 else statistics.quantiles(elapsed, n=100)[98]


def timed(call) -> float:
    with stopwatch() as took:
        call()
    return took() * 1000


def idle_costs(jobs: int) -> dict[str, float]:
    """CPU and queries per second of an active scheduler and a standby with `jobs` jobs."""
    with schedulers(jobs, standbys=1) as (counts, active, standbys):
        before = counts()
        time.sleep(WINDOW_SECONDS)
        after = counts()
    active_cpu, active_queries, _ = rates(before, after, active)
    standby_cpu, standby_queries, _ = rates(before, after, standbys[0])
    return {
        "active scheduler's CPU, idle": active_cpu,
        "active scheduler's queries, idle": active_queries,
        "a standby's CPU": standby_cpu,
        "a standby's queries": standby_queries,
    }


def standby_load() -> dict[str, float]:
    """Queries and new connections per second: STANDBYS standbys together, the active one."""
    clear()
    with schedulers(10, standbys=STANDBYS) as (counts, active, standbys):
        before = counts()
        time.sleep(WINDOW_SECONDS)
        after = counts()
    _, active_queries, active_connections = rates(before, after, active)
    standby_rates = [rates(before, after, process) for process in standbys]
    return {
        "active queries": active_queries,
        "active connections": active_connections,
        "standby queries": sum(queries for _, queries, _ in standby_rates),
        "standby connections": sum(connections for _, _, connections in standby_rates),
    }


@contextmanager
def schedulers(jobs: int, standbys: int):
    """An active `runscheduler` and `standbys` more; yields a function that reads
    every process's (CPU seconds, queries, connections) with the time it was read."""
    with tempfile.TemporaryDirectory(prefix="bench-growth-") as tmp, ExitStack() as stack:
        counts_dir = Path(tmp, "counts")
        counts_dir.mkdir()
        env = child_env(
            DJANGO_SETTINGS_MODULE="benchmarks.settings_growth",
            BENCH_JOBS=str(jobs),
            BENCH_COUNTS_DIR=str(counts_dir),
            LOG_DIR=tmp,
            SCHEDULER_SHUTDOWN_WAIT_SECONDS="2",
        )

        def start(name: str):
            output = Path(tmp, f"{name}.out")
            return stack.enter_context(running([*MANAGE, "runscheduler"], env, output)), output

        active, output = start("active")
        wait_for(lambda: holder_pid() == active.pid, timeout=300, output=output)
        others = [start(f"standby-{number}") for number in range(standbys)]
        for _, output in others:
            wait_for(partial(says_waiting, output), 120, output)
        processes = [active, *(process for process, _ in others)]
        time.sleep(3)  # past the standbys' first looks

        def counts() -> dict[int, tuple[float, float, int, int]]:
            for process in processes:
                (counts_dir / str(process.pid)).unlink(missing_ok=True)
                os.kill(process.pid, signal.SIGUSR1)
            read = {}
            for process in processes:
                path = counts_dir / str(process.pid)
                wait_for(partial(written, path), 10, path)
                queries, connections = map(int, path.read_text().split())
                read[process.pid] = (
                    time.monotonic(),
                    cpu_seconds(process.pid),
                    queries,
                    connections,
                )
            return read

        yield counts, active.pid, [process.pid for process, _ in others]


def says_waiting(output: Path) -> bool:
    return output.exists() and "waiting for the lease" in output.read_text()


def written(path: Path) -> bool:
    return path.exists() and path.read_text().endswith("\n")


def rates(before: dict, after: dict, pid: int) -> tuple[float, float, float]:
    """CPU share (in % of one core), queries and connections per second between two reads."""
    (at, cpu, queries, connections), (at_after, cpu_after, queries_after, connections_after) = (
        before[pid],
        after[pid],
    )
    seconds = at_after - at
    return (
        100 * (cpu_after - cpu) / seconds,
        (queries_after - queries) / seconds,
        (connections_after - connections) / seconds,
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    user, system = int(fields[11]), int(fields[12])  # utime, stime (fields 14, 15)
    return (user + system) / os.sysconf("SC_CLK_TCK")


def holder_pid() -> int | None:
    holder = current_holder(LEASE_NAME)
    return holder.pid if holder else None


def growth_figures(measured: dict[int, dict[str, float]]) -> list[Figure]:
    """A row per measure: the figure at 10,000 jobs against ten times the one at
    1,000 (the ratio is the cost per job's), with the smaller sizes in words."""
    small, large = 1000, 10_000
    figures = []
    for measure, unit in MEASURES:
        smaller = "; ".join(
            f"{jobs:,} jobs: {_short(measured[jobs][measure])} {unit}" for jobs in SIZES[:-1]
        )
        ours, reference = measured[large][measure], measured[small][measure] * large / small
        figures.append(
            Figure(
                "growth",
                f"{measure}, {large:,} jobs ({smaller})",
                ours,
                unit,
                reference,
                f"{large // small} times the figure at {small:,} jobs",
                "≤ 1.5x",
                ours <= 1.5 * reference,
            )
        )
    poll = measured[large]["health poll p99 (status only)"]
    figures.append(
        Figure(
            "growth",
            f"health poll p99, {large:,} jobs",
            poll,
            "ms",
            None,
            "",
            "< 200 ms",
            poll < 200,
        )
    )
    return figures


MEASURES = (
    ("first sync (into an empty store)", "ms"),
    ("second sync (nothing to change)", "ms"),
    ("scheduler status", "ms"),
    ("health poll p99 (status only)", "ms"),
    ("health details p99", "ms"),
    ("active scheduler's CPU, idle", "% of a core"),
    ("active scheduler's queries, idle", "queries/s"),
    ("a standby's CPU", "% of a core"),
    ("a standby's queries", "queries/s"),
)


def _short(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def standby_figures(load: dict[str, float]) -> list[Figure]:
    return [
        Figure(
            "growth",
            f"{STANDBYS} standbys' queries together, an active scheduler beside them",
            load["standby queries"],
            "queries/s",
            load["active queries"],
            "the active scheduler's own",
            "≤ 1x",
            load["standby queries"] <= load["active queries"],
        ),
        Figure(
            "growth",
            f"{STANDBYS} standbys' new database connections together",
            load["standby connections"],
            "connections/s",
            load["active connections"],
            "the active scheduler's own",
        ),
    ]


def clear() -> None:
    DjangoJob.objects.all().delete()
