"""What running a job isolated (a `timeout_seconds`: a child process per run,
crm.scheduler.isolation) costs against running it in a thread of the scheduler.

* Lateness: a real `runscheduler` runs a job that fires every second, in a
  thread (no timeout), then a second `runscheduler` the same job with a timeout,
  in a child per run; the two one after the other, not at once, so that
  neither's runs slow the other's. Lateness is when the job function's body
  began (`time.time()` in the job, in whichever process ran it) minus the fire
  time it serves: dispatch, the run's history row and, when isolated, starting
  the child (a fresh interpreter, Django set up, a database connection and its
  transaction). The first fires of each are left out (the scheduler warming up).
* Memory: the peak resident memory (VmHWM, read by the job as it begins) of a
  child started by `run_in_child` as the scheduler starts it, against a bare
  interpreter that only imports Django and sets it up, in the same environment.
  A thread run costs the scheduler process next to nothing (its peak's growth
  over the thread runs is given in words).
* Start-up: from just before `run_in_child` spawns the child to the job
  function's first line, against spawning `python -c pass` and waiting for it
  to end; the two interleaved.
"""

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django_apscheduler.models import DjangoJob

from benchmarks.database import child_env
from benchmarks.dispatch import percentile_99
from benchmarks.isolated_job import Start, read_starts
from benchmarks.processes import MANAGE, running, wait_for
from benchmarks.report import Figure
from crm.scheduler.isolation import ChildRuns, child_environment, run_in_child

FIRES = 32  # of each kind, after the warm-up
WARM_UP = 2  # first fires of each scheduler left out
INTERVAL = 1  # seconds, as benchmarks.settings_isolation declares
CHILD_RUNS = 10  # children started by hand, for memory and start-up
JOB = "benchmarks.isolated_job.record_start"
BARE_DJANGO = (
    "import django; django.setup(); "
    "from benchmarks.isolated_job import peak_rss_kb; print(peak_rss_kb())"
)


def run(sizes: list[int]) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-isolation-") as tmp:
        try:
            thread = scheduler_starts("thread", Path(tmp))
            isolated = scheduler_starts("isolated", Path(tmp))
        finally:
            DjangoJob.objects.filter(id__startswith="bench_").delete()
        children = started_by_hand(Path(tmp))
    thread_ms = [start.lateness * 1000 for start in thread]
    isolated_ms = [start.lateness * 1000 for start in isolated]
    skipped = missing_fires(isolated) + missing_fires(thread)
    fires = f"{len(isolated)} isolated and {len(thread)} thread fires" + (
        f", {skipped} skipped as the run before still went on" if skipped else ""
    )
    thread_growth = (thread[-1].peak_rss_kb - thread[0].peak_rss_kb) / 1024
    return [
        lateness_figure("p50", statistics.median(isolated_ms), statistics.median(thread_ms), fires),
        lateness_figure("p99", percentile_99(isolated_ms), percentile_99(thread_ms), fires),
        Figure(
            benchmark="isolation",
            measure=f"peak memory (VmHWM) of the child process of one isolated run "
            f"(median of {CHILD_RUNS}; a thread run grew the scheduler's peak by "
            f"{thread_growth:.1f} MB over {len(thread)} runs)",
            ours=statistics.median(children["child_mb"]),
            unit="MB",
            reference=statistics.median(children["django_mb"]),
            reference_name='python -c "import django; django.setup()"',
        ),
        Figure(
            benchmark="isolation",
            measure=f"child start-up: spawn → first line of the job function "
            f"(median of {CHILD_RUNS})",
            ours=statistics.median(children["startup_s"]) * 1000,
            unit="ms",
            reference=statistics.median(children["pass_s"]) * 1000,
            reference_name="python -c pass, spawn to exit",
        ),
    ]


def scheduler_starts(mode: str, tmp: Path) -> list[Start]:
    """The starts of a job's runs by a `runscheduler` of its own, `mode` "thread"
    or "isolated" (benchmarks.settings_isolation), after the warm-up."""
    log = tmp / f"{mode}.log"
    env = child_env(
        DJANGO_SETTINGS_MODULE="benchmarks.settings_isolation",
        BENCH_ISOLATION_MODE=mode,
        BENCH_FIRE_LOG=str(log),
        LOG_DIR=str(tmp),
        SCHEDULER_SHUTDOWN_WAIT_SECONDS="2",
    )
    output = tmp / f"runscheduler-{mode}.out"
    print(f"   {mode}: {WARM_UP + FIRES} fires, one every {INTERVAL} s", file=sys.stderr)
    with running([*MANAGE, "runscheduler"], env, output):
        wait_for(
            lambda: len(read_starts(log)) >= WARM_UP + FIRES,
            timeout=60 + 3 * (WARM_UP + FIRES) * INTERVAL,
            output=output,
        )
    return read_starts(log)[WARM_UP : WARM_UP + FIRES]


def missing_fires(starts: list[Start]) -> int:
    """Fires between the first and the last that did not run (max_instances=1
    skips a fire while the run before goes on)."""
    due = round((starts[-1].scheduled - starts[0].scheduled) / INTERVAL) + 1
    return due - len(starts)


def started_by_hand(tmp: Path) -> dict[str, list[float]]:
    """Children started as the scheduler starts them, interleaved with the
    references: `python -c pass`, and a bare Django set-up (in the children's
    environment and directory)."""
    log = tmp / "by-hand.log"
    env, cwd = child_environment(), settings.BASE_DIR
    children = ChildRuns()
    found = {"startup_s": [], "child_mb": [], "pass_s": [], "django_mb": []}
    print(f"   {CHILD_RUNS} children started by hand", file=sys.stderr)
    for _ in range(CHILD_RUNS):
        spawned = time.time()
        run_in_child(JOB, (), {"log": str(log)}, timeout=60, children=children)
        start = read_starts(log)[-1]
        found["startup_s"].append(start.started - spawned)
        found["child_mb"].append(start.peak_rss_kb / 1024)

        spawned = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, cwd=cwd, check=True)
        found["pass_s"].append(time.perf_counter() - spawned)

        bare = subprocess.run(
            [sys.executable, "-c", BARE_DJANGO],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
        found["django_mb"].append(int(bare.stdout.split()[-1]) / 1024)
    return found


def lateness_figure(statistic: str, isolated: float, thread: float, fires: str) -> Figure:
    return Figure(
        benchmark="isolation",
        measure=f"lateness {statistic}: a job every {INTERVAL} s run isolated (timeout_seconds, "
        f"a child per run) by runscheduler ({fires}; start of the job function - fire time)",
        ours=isolated,
        unit="ms",
        reference=thread,
        reference_name="the same job in a thread (no timeout)",
    )
