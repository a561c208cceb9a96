"""Settings for the scheduler processes of the dispatch and failover benchmarks:
the real settings, a job that fires every second, and BENCH_IDLE_JOBS jobs that
do not fire during a run (cron on 1 January at midnight)."""

import os

from config.settings import *  # noqa: F403

SCHEDULER_JOBS = [
    {
        "id": "bench_heartbeat",
        "func": "benchmarks.heartbeat.record_fire",
        "interval_seconds": 1,
        "fire_time_kwarg": "fire_time",
        "misfire_grace_seconds": 30,
    },
    *(
        {
            "id": f"bench_idle_{number:04d}",
            "func": "benchmarks.heartbeat.record_fire",
            "cron": "0 0 1 1 *",
            "fire_time_kwarg": "fire_time",
        }
        for number in range(int(os.environ.get("BENCH_IDLE_JOBS", "0")))
    ),
]
