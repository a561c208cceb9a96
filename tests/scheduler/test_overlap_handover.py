"""The overlap policy across a SIGTERM handover between real `runscheduler`
processes: the stopping one records the run it leaves behind as interrupted,
so it does not hold the job up, and a fire it queued runs in its successor."""

import signal
import sys
from pathlib import Path

import pytest

from crm.scheduler.history import INTERRUPTED, QUEUED, RUNNING
from tests.scheduler.test_failover import wait_for_lease, wait_for_standby
from tests.support.processes import e2e_env, read_executions, read_fires, wait_until

pytestmark = pytest.mark.e2e
RUNSCHEDULER = [sys.executable, "manage.py", "runscheduler"]


def test_a_fire_queued_by_a_stopping_scheduler_runs_in_its_successor(
    tmp_path, fresh_database_url, start
):
    env = e2e_env(
        tmp_path, fresh_database_url, "tests.support.e2e_overlap_settings", E2E_OVERLAP="queue"
    )
    url, fire_log = env["DATABASE_URL"], Path(env["E2E_FIRE_LOG"])
    first = start(RUNSCHEDULER, env, tmp_path / "first.out")
    [(first_fire, pid)] = wait_until(lambda: read_fires(fire_log), timeout=30, message="no run")
    assert pid == first.pid
    queued = wait_until(
        lambda: [
            f for f, run in read_executions(url, "e2e_long_run").items() if run.status == QUEUED
        ],
        timeout=10,
        message="no fire was queued behind the long run",
    )
    successor = start(RUNSCHEDULER, env, tmp_path / "successor.out")
    wait_for_standby(tmp_path / "successor.out")

    first.send_signal(signal.SIGTERM)
    first.wait(timeout=30)
    wait_for_lease(url, lambda row: row.pid == successor.pid, timeout=15)

    fires = wait_until(
        lambda: len(read_fires(fire_log)) >= 2 and read_fires(fire_log),
        timeout=15,
        message=f"the queued fire did not run: {(tmp_path / 'successor.out').read_text()}",
    )
    assert fires[1] == (queued[0], successor.pid)
    history = read_executions(url, "e2e_long_run")
    assert history[first_fire].status == INTERRUPTED
    assert history[queued[0]].status == RUNNING
