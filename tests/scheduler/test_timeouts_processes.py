"""Isolated runs in a real `runscheduler`: SIGTERM does not wait for a hung
child beyond the shutdown wait, and a scheduler killed with -9 leaves no child
behind."""

import signal
import sys
import time
from pathlib import Path

import pytest

from crm.scheduler.history import INTERRUPTED, RUNNING
from tests.scheduler.test_timeouts import process_gone
from tests.support.processes import e2e_env, read_executions, wait_until

pytestmark = pytest.mark.e2e
RUNSCHEDULER = [sys.executable, "manage.py", "runscheduler"]
SHUTDOWN_WAIT = 2


@pytest.fixture
def stuck_env(tmp_path, fresh_database_url):
    return e2e_env(
        tmp_path,
        fresh_database_url,
        "tests.support.e2e_timeout_settings",
        E2E_PID_FILE=str(tmp_path / "child.pid"),
        SCHEDULER_SHUTDOWN_WAIT_SECONDS=str(SHUTDOWN_WAIT),
    )


def child_pid(env) -> int:
    pid_file = Path(env["E2E_PID_FILE"])
    wait_until(lambda: pid_file.exists() and pid_file.read_text(), timeout=30, message="no run")
    return int(pid_file.read_text())


def test_sigterm_kills_a_hung_child_after_the_shutdown_wait_and_records_it(
    stuck_env, start, tmp_path
):
    scheduler = start(RUNSCHEDULER, stuck_env, tmp_path / "scheduler.out")
    child = child_pid(stuck_env)

    scheduler.send_signal(signal.SIGTERM)
    asked = time.monotonic()
    scheduler.wait(timeout=30)
    stopped_after = time.monotonic() - asked

    assert stopped_after < SHUTDOWN_WAIT + 2, (tmp_path / "scheduler.out").read_text()
    assert process_gone(child)
    [run] = read_executions(stuck_env["DATABASE_URL"], "e2e_stuck").values()
    assert run.status == INTERRUPTED
    assert "SCHEDULER_SHUTDOWN_WAIT_SECONDS=2" in run.exception


def test_a_child_ends_itself_when_its_scheduler_is_killed(stuck_env, start, tmp_path):
    scheduler = start(RUNSCHEDULER, stuck_env, tmp_path / "scheduler.out")
    child = child_pid(stuck_env)
    assert read_executions(stuck_env["DATABASE_URL"], "e2e_stuck")

    scheduler.kill()  # -9, the scheduler alone: the child has its own session
    scheduler.wait()

    wait_until(lambda: process_gone(child), timeout=5, message="the child outlived its scheduler")
    [run] = read_executions(stuck_env["DATABASE_URL"], "e2e_stuck").values()
    assert run.status == RUNNING  # until the next active scheduler marks it interrupted
