"""Settings for end-to-end tests of isolated runs: the real settings plus a
job stuck in a C call, with a timeout far longer than the tests wait."""

import os

from config.settings import *  # noqa: F403

SCHEDULER_JOBS = [
    {
        "id": "e2e_stuck",
        "func": "tests.support.e2e_jobs.hang",
        "interval_seconds": 2,
        "kwargs": {"pid_file": os.environ.get("E2E_PID_FILE")},
        "timeout_seconds": 600,
        "misfire_grace_seconds": 30,
        "description": "Write its pid, then hang",
    }
]
