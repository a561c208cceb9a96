"""Settings for the ping tests in other processes: a daily job pinging E2E_PING_URL."""

import os

from config.settings import *  # noqa: F403

SCHEDULER_JOBS = [
    {
        "id": "nightly",
        "func": "tests.support.e2e_jobs.record_fire",
        "cron": "0 3 * * *",
        "fire_time_kwarg": "fire_time",
        "ping_url": os.environ["E2E_PING_URL"],
    },
]
