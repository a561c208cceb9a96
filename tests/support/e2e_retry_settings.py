"""Settings for end-to-end tests of retries: the real settings plus a job that
fails its first two calls and is retried three times, 5 to 10 s apart."""

import os

from config.settings import *  # noqa: F403

SCHEDULER_JOBS = [
    {
        "id": "e2e_flaky",
        "func": "tests.support.e2e_jobs.fail_times",
        "cron": "0 0 1 1 *",  # run by hand in the tests; its next fire is far away
        "kwargs": {"count_file": os.environ.get("E2E_COUNT_FILE"), "failures": 2},
        "retries": 3,
        "retry_backoff_seconds": 10,
        "retry_backoff_max_seconds": 10,
        "description": "Fail twice, then succeed",
    }
]
