"""Settings for end-to-end tests: the real settings plus a job that fires every second."""

from config.settings import *  # noqa: F403

SCHEDULER_JOBS = [
    {
        "id": "e2e_heartbeat",
        "func": "tests.support.e2e_jobs.record_fire",
        "interval_seconds": 1,
        "fire_time_kwarg": "fire_time",
        "misfire_grace_seconds": 30,
        "description": "Write one line per fire for the end-to-end tests",
    }
]
