"""Settings for the scheduler processes of the isolation benchmark: the real
settings and one job that fires every second, run in a thread of the scheduler
(BENCH_ISOLATION_MODE=thread) or in a child process of its own (=isolated, a
job with a timeout). It appends to the file BENCH_FIRE_LOG names."""

import os

from config.settings import *  # noqa: F403

_MODE = os.environ.get("BENCH_ISOLATION_MODE", "thread")

SCHEDULER_JOBS = [
    {
        "id": f"bench_isolation_{_MODE}",
        "func": "benchmarks.isolated_job.record_start",
        "interval_seconds": 1,
        "kwargs": {"log": os.environ.get("BENCH_FIRE_LOG", os.devnull)},
        "fire_time_kwarg": "fire_time",
        "misfire_grace_seconds": 30,
        **({"timeout_seconds": 30} if _MODE == "isolated" else {}),
    },
]
