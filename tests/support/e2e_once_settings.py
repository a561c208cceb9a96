"""Settings for the `runscheduler --once` tests: a daily job with a day's grace,
a yearly one with a minute's."""

from config.settings import *  # noqa: F403

SCHEDULER_JOBS = [
    {
        "id": "nightly",
        "func": "tests.support.e2e_jobs.record_fire",
        "cron": "0 3 * * *",
        "fire_time_kwarg": "fire_time",
        "misfire_grace_seconds": 86400,
    },
    {
        "id": "yearly",
        "func": "tests.support.e2e_jobs.record_fire",
        "cron": "0 3 1 1 *",
        "fire_time_kwarg": "fire_time",
        "misfire_grace_seconds": 60,
    },
]
