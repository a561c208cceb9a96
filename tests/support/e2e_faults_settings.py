"""Settings for the database fault tests (tests/deploy/test_database_faults.py): the real
settings plus a job that fires every 45 s, longer than the 20 s wait_timeout
their MariaDB server ends idle connections after."""

from config.settings import *  # noqa: F403

SLOW_JOB_SECONDS = 45

SCHEDULER_JOBS = [
    {
        "id": "e2e_every_45s",
        "func": "tests.support.e2e_jobs.record_fire",
        "interval_seconds": SLOW_JOB_SECONDS,
        "fire_time_kwarg": "fire_time",
        "misfire_grace_seconds": 30,
        "description": "Write one line per fire, every 45 s, for the database fault tests",
    }
]
