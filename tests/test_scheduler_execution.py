"""A stored job runs its declaration: only declared jobs, with fresh connections,
the scheduled fire time when asked for, and never once the lease may be gone."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from crm.scheduler import execution
from tests.conftest import wait_until

CALLS = []


def remember(*args, **kwargs):
    CALLS.append((args, kwargs))
    return "done"


@pytest.fixture(autouse=True)
def declared(settings):
    CALLS.clear()
    settings.SCHEDULER_JOBS = [
        {
            "id": "remember",
            "func": "tests.test_scheduler_execution.remember",
            "interval_seconds": 60,
            "args": (1,),
            "kwargs": {"size": 2},
            "fire_time_kwarg": "fire_time",
        }
    ]
    yield
    execution.lease_guard["check"] = lambda: True


def test_it_runs_the_declared_function_with_its_arguments():
    assert execution.run_declared_job("remember") == "done"
    assert CALLS == [((1,), {"size": 2, "fire_time": None})]


def test_it_refuses_a_job_that_is_not_declared():
    with pytest.raises(LookupError, match="no longer declared"):
        execution.run_declared_job("os.system")
    assert CALLS == []


def test_it_runs_nothing_once_the_lease_may_have_passed_on():
    execution.lease_guard["check"] = lambda: False

    with pytest.raises(execution.LeaseLost):
        execution.run_declared_job("remember")
    assert CALLS == []


def test_the_job_receives_the_fire_time_it_serves():
    done = threading.Event()
    scheduler = BackgroundScheduler(
        jobstores={"default": MemoryJobStore()},
        executors={"default": execution.FireTimeThreadPoolExecutor(max_workers=1)},
        timezone="UTC",
    )
    scheduler.add_listener(lambda event: done.set(), EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    fire_time = datetime.now(UTC) - timedelta(seconds=2)
    scheduler.add_job(
        execution.run_declared_job,
        "date",
        run_date=fire_time,
        args=["remember"],
        misfire_grace_time=60,
    )
    scheduler.start()
    assert done.wait(10)
    wait_until(lambda: not scheduler.get_jobs(), timeout=5)
    scheduler.shutdown(wait=True)

    assert CALLS[0][1]["fire_time"] == fire_time
