"""Settings with a broken job declaration, for the tests of what happens then."""

from tests.support.e2e_settings import *  # noqa: F403
from tests.support.e2e_settings import SCHEDULER_JOBS

SCHEDULER_JOBS = [
    *SCHEDULER_JOBS,
    {"id": "broken", "func": "tests.support.e2e_jobs.record_fire", "interval_seconds": 0},
]
