"""Retries survive a failover: a scheduler killed with -9 between two attempts
leaves the fire waiting in the database, and the next active scheduler makes
the remaining attempts, none twice."""

import signal
import sys
from pathlib import Path

import pytest

from crm.scheduler.history import RETRYING, SUCCEEDED
from tests.scheduler.test_failover import wait_for_lease, wait_for_standby
from tests.support.processes import e2e_env, query, read_executions, run_manage, wait_until

pytestmark = pytest.mark.e2e
RUNSCHEDULER = [sys.executable, "manage.py", "runscheduler"]


def test_the_successor_makes_the_remaining_attempts_after_kill_9(
    tmp_path, fresh_database_url, start
):
    count_file = tmp_path / "calls"
    env = e2e_env(
        tmp_path,
        fresh_database_url,
        "tests.support.e2e_retry_settings",
        E2E_COUNT_FILE=str(count_file),
    )
    url = env["DATABASE_URL"]
    victim = start(RUNSCHEDULER, env, tmp_path / "victim.out")
    wait_for_lease(url, lambda row: row.pid == victim.pid, timeout=30)
    successor = start(RUNSCHEDULER, env, tmp_path / "successor.out")
    wait_for_standby(tmp_path / "successor.out")

    run_manage("scheduler", "run", "e2e_flaky", env=env)  # attempt 1 fails in the victim
    wait_until(
        lambda: [run.status for run in read_executions(url, "e2e_flaky").values()] == [RETRYING],
        timeout=10,
        message="the first attempt did not leave the fire waiting for a retry",
    )
    victim.send_signal(signal.SIGKILL)
    victim.wait()

    wait_until(
        lambda: [run.status for run in read_executions(url, "e2e_flaky").values()] == [SUCCEEDED],
        timeout=45,
        message=f"no successful attempt: {(tmp_path / 'successor.out').read_text()}",
    )
    attempts = query(url, "SELECT number, status, pid FROM crm_runattempt ORDER BY number")
    assert attempts == [
        (1, "Error!", victim.pid),
        (2, "Error!", successor.pid),
        (3, SUCCEEDED, successor.pid),
    ]
    assert Path(count_file).read_text() == "3"  # each attempt called the job once
