"""Settings for end-to-end tests of runs that are still going when their
process stops: the real settings plus a job that runs for a minute."""

from config.settings import *  # noqa: F403

LONG_RUN_SECONDS = 60

SCHEDULER_JOBS = [
    {
        "id": "e2e_long_run",
        "func": "tests.support.e2e_jobs.record_fire_then_sleep",
        # Fires soon after a scheduler becomes active; later fires are skipped
        # while a run is still going (max_instances=1).
        "interval_seconds": 2,
        "kwargs": {"seconds": LONG_RUN_SECONDS},
        "fire_time_kwarg": "fire_time",
        "misfire_grace_seconds": 30,
        "description": "Log its start, then run for a minute",
    }
]
