"""Settings for end-to-end tests of the overlap policy: the real settings plus
a job that fires every 2 s and runs for a minute, its overlap from E2E_OVERLAP
(and E2E_MAX_CONCURRENT)."""

import os

from config.settings import *  # noqa: F403

SCHEDULER_JOBS = [
    {
        "id": "e2e_long_run",
        "func": "tests.support.e2e_jobs.record_fire_then_sleep",
        "interval_seconds": 2,
        "kwargs": {"seconds": 60},
        "fire_time_kwarg": "fire_time",
        "misfire_grace_seconds": 30,
        "overlap": os.environ.get("E2E_OVERLAP", "skip"),
        "max_concurrent": int(os.environ["E2E_MAX_CONCURRENT"])
        if "E2E_MAX_CONCURRENT" in os.environ
        else None,
        "description": "Log its start, then run for a minute",
    }
]
