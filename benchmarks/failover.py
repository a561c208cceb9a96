"""Failover: seconds from stopping the active scheduler process (kill -9, or
SIGTERM) to the first run of a job that fires every second by the standby
process. Real `runscheduler` processes with SCHEDULER_LEASE_SECONDS=10; each
trial starts a new standby, and the one that took over is stopped next."""

import os
import random
import signal
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from django_apscheduler.models import DjangoJob

from benchmarks.database import child_env
from benchmarks.heartbeat import read_fires
from benchmarks.processes import MANAGE, running, wait_for
from benchmarks.report import Figure

LEASE_SECONDS = 10
TRIALS = 3  # of each way of stopping
# The holder renews the lease every third of it (crm.scheduler.runner).
RENEW_EVERY = LEASE_SECONDS / 3


def run(sizes: list[int]) -> list[Figure]:
    try:
        seconds = trials()
    finally:
        DjangoJob.objects.filter(id__startswith="bench_").delete()
    return [
        figure("kill -9", seconds[signal.SIGKILL], LEASE_SECONDS, "lease length"),
        figure("SIGTERM", seconds[signal.SIGTERM], 2, "target"),
    ]


def trials() -> dict[int, list[float]]:
    """Seconds to take over, by the signal that stopped the active process."""
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp, ExitStack() as stack:
        fire_log = Path(tmp, "fires.log")
        env = child_env(
            DJANGO_SETTINGS_MODULE="benchmarks.settings_heartbeat",
            BENCH_FIRE_LOG=str(fire_log),
            LOG_DIR=tmp,
            SCHEDULER_LEASE_SECONDS=str(LEASE_SECONDS),
            SCHEDULER_SHUTDOWN_WAIT_SECONDS="2",
        )

        def start_runscheduler(number: int):
            output = Path(tmp, f"runscheduler-{number}.out")
            return stack.enter_context(running([*MANAGE, "runscheduler"], env, output)), output

        active, output = start_runscheduler(0)
        wait_for(lambda: first_run(fire_log, active.pid, 0), timeout=60, output=output)
        seconds = {signal.SIGKILL: [], signal.SIGTERM: []}
        for number, way in enumerate([signal.SIGKILL, signal.SIGTERM] * TRIALS, 1):
            standby, output = start_runscheduler(number)
            seconds[way].append(take_over(active, standby, way, fire_log, output))
            active = standby
    return seconds


def take_over(active, standby, way: int, fire_log: Path, output: Path) -> float:
    """Stops `active` the given way; returns the seconds until `standby` runs the job."""
    wait_for(lambda: "waiting for the lease" in output.read_text(), 60, output)
    # Stop at a random point of the lease's renewal.
    time.sleep(1 + random.uniform(0, RENEW_EVERY))
    stopped_at = time.time()
    os.kill(active.pid, way)
    fire = wait_for(lambda: first_run(fire_log, standby.pid, stopped_at), 3 * LEASE_SECONDS, output)
    return fire.started - stopped_at


def first_run(fire_log: Path, pid: int, after: float):
    return next((f for f in read_fires(fire_log) if f.pid == pid and f.started > after), None)


def figure(way: str, trials: list[float], bound: float, bound_name: str) -> Figure:
    """The worst trial: the targets are bounds."""
    each = ", ".join(f"{seconds:.1f}" for seconds in sorted(trials))
    return Figure(
        benchmark="failover",
        measure=f"{way} to the active runscheduler → first run of a 1-s job by the standby "
        f"(SCHEDULER_LEASE_SECONDS={LEASE_SECONDS}; worst of {each} s)",
        ours=max(trials),
        unit="s",
        reference=bound,
        reference_name=bound_name,
        target=f"≤ {bound:g} s",
        met=max(trials) <= bound,
    )
