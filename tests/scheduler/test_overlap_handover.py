"""Each overlap policy across a SIGTERM handover between real `runscheduler`
processes, with a job that runs far longer than its interval: the stopping
one records the runs it leaves behind as interrupted, so they do not hold the
job up, and its successor goes on under the same policy (running a fire the
stopping one queued)."""

import signal
import sys
from pathlib import Path

import pytest

from crm.scheduler.history import INTERRUPTED, QUEUED, RUNNING, SKIPPED
from tests.scheduler.test_failover import wait_for_lease, wait_for_standby
from tests.support.processes import e2e_env, read_executions, read_fires, wait_until

pytestmark = pytest.mark.e2e
RUNSCHEDULER = [sys.executable, "manage.py", "runscheduler"]
JOB = "e2e_long_run"


@pytest.fixture
def handover(tmp_path, fresh_database_url, start):
    """Starts a scheduler with the job under `policy`, waits for `ready(url)`,
    then hands over to a standby by SIGTERM; returns the URL, both processes
    and the fire log."""

    def handover(ready, **policy):
        env = e2e_env(
            tmp_path,
            fresh_database_url,
            "tests.support.e2e_overlap_settings",
            **{f"E2E_{name.upper()}": str(value) for name, value in policy.items()},
        )
        url, fire_log = env["DATABASE_URL"], Path(env["E2E_FIRE_LOG"])
        first = start(RUNSCHEDULER, env, tmp_path / "first.out")
        wait_until(lambda: ready(url), timeout=30, message=(tmp_path / "first.out").read_text)
        successor = start(RUNSCHEDULER, env, tmp_path / "successor.out")
        wait_for_standby(tmp_path / "successor.out")
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
        wait_for_lease(url, lambda row: row.pid == successor.pid, timeout=15)
        return url, first, successor, fire_log

    return handover


def statuses(url) -> dict:
    return {fire: run.status for fire, run in read_executions(url, JOB).items()}


def test_skip(handover):
    url, first, successor, fire_log = handover(
        lambda url: SKIPPED in statuses(url).values(), overlap="skip"
    )

    fires = wait_until(lambda: len(read_fires(fire_log)) >= 2 and read_fires(fire_log), 10)
    [(first_fire, by_first), (next_fire, by_successor)] = fires[:2]
    assert (by_first, by_successor) == (first.pid, successor.pid)
    assert statuses(url)[first_fire] == INTERRUPTED
    assert statuses(url)[next_fire] == RUNNING
    # One run at a time in the successor too: its next fire is skipped.
    wait_until(
        lambda: any(fire > next_fire and s == SKIPPED for fire, s in statuses(url).items()), 10
    )
    assert len(read_fires(fire_log)) == 2


def test_queue(handover):
    queued = []

    def queued_fire(url):
        queued[:] = [fire for fire, status in statuses(url).items() if status == QUEUED]
        return queued

    url, _, successor, fire_log = handover(queued_fire, overlap="queue")

    fires = wait_until(lambda: len(read_fires(fire_log)) >= 2 and read_fires(fire_log), 15)
    assert fires[1] == (queued[0], successor.pid)  # the fire the first one queued
    assert statuses(url)[fires[0][0]] == INTERRUPTED
    assert statuses(url)[queued[0]] == RUNNING


def test_allow(handover):
    def two_at_once(url):
        return list(statuses(url).values()).count(RUNNING) == 2

    url, first, successor, fire_log = handover(two_at_once, overlap="allow", max_concurrent=2)

    fires = wait_until(lambda: len(read_fires(fire_log)) >= 4 and read_fires(fire_log), 15)
    assert [pid for _, pid in fires] == [first.pid, first.pid, successor.pid, successor.pid]
    now = statuses(url)
    assert [now[fire] for fire, _ in fires] == [INTERRUPTED, INTERRUPTED, RUNNING, RUNNING]
    assert list(now.values()).count(RUNNING) == 2
