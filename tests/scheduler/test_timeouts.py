"""`timeout_seconds`: a run still going after its timeout is killed for real,
because such a job runs in a child process of its own, whatever it is stuck
in; its database work is rolled back and the run recorded `Timed out`."""

import os
import time
from itertools import pairwise
from pathlib import Path

import pytest
from django.core import mail
from django_apscheduler.models import DjangoJobExecution

from crm.models import Ticket
from crm.scheduler import control, execution, history, isolation
from crm.scheduler.checks import declaration_errors
from tests.support.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
JOBS = "tests.support.e2e_jobs"


def declare(settings, job_id, func, timeout=2, **fields):
    settings.SCHEDULER_JOBS = [
        {
            "id": job_id,
            "func": f"{JOBS}.{func}",
            "interval_seconds": 3600,
            "timeout_seconds": timeout,
            **fields,
        }
    ]
    control.sync("tests")


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie until its parent reaps it: gone as far as running goes.
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


@pytest.mark.parametrize("func", ["hang", "spin", "read_from_silent_socket"])
def test_a_stuck_run_is_killed_and_recorded_timed_out(settings, tmp_path, func):
    pid_file = tmp_path / "pid"
    declare(settings, "stuck", func, kwargs={"pid_file": str(pid_file)})

    started = time.monotonic()
    with pytest.raises(isolation.JobTimedOut):
        execution.run_declared_job("stuck")
    elapsed = time.monotonic() - started

    run = DjangoJobExecution.objects.get(job_id="stuck")
    assert run.status == history.TIMED_OUT
    assert "timeout_seconds=2" in run.exception
    assert 2 <= run.duration < 3
    assert elapsed < 4  # the child's start-up, then the 2 s timeout
    assert process_gone(int(pid_file.read_text()))


def test_a_timed_out_run_leaves_no_database_work_behind(settings, tmp_path):
    pid_file = tmp_path / "pid"
    declare(settings, "stuck", "hang", kwargs={"pid_file": str(pid_file), "ticket_title": "Half"})

    with pytest.raises(isolation.JobTimedOut):
        execution.run_declared_job("stuck")

    assert pid_file.exists()  # it did save the ticket, in its transaction
    assert not Ticket.objects.filter(title="Half").exists()


def test_an_isolated_run_returns_its_result_and_commits_its_work(settings):
    declare(settings, "report", "report_process", kwargs={"label": "nightly"})

    result = execution.run_declared_job("report")

    assert result["label"] == "nightly" and result["pid"] != os.getpid()
    run = DjangoJobExecution.objects.select_related("detail").get(job_id="report")
    assert run.status == history.SUCCEEDED
    assert run.detail.result == result


def test_an_isolated_failure_is_recorded_as_the_job_raised_it(settings):
    declare(settings, "broken", "fail", kwargs={"message": "no such customer"})

    with pytest.raises(isolation.ChildFailed) as raised:
        execution.run_declared_job("broken")

    assert "builtins.ValueError" in raised.value.classes
    run = DjangoJobExecution.objects.get(job_id="broken")
    assert run.status == history.FAILED
    assert run.exception == "ValueError: no such customer"
    assert "Traceback" in run.traceback and "in fail" in run.traceback


def test_a_timed_out_job_alerts_once_and_recovers(settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    declare(settings, "stuck", "hang", timeout=1)

    for _ in range(2):
        with pytest.raises(isolation.JobTimedOut):
            execution.run_declared_job("stuck")

    failing = [m for m in mail.outbox if "stuck is failing" in m.subject]
    assert len(failing) == 1
    assert "Timed out" in failing[0].body


def test_the_next_fire_runs_on_time_after_a_timeout(settings, tmp_path, active_scheduler):
    """Fires every 2 s, killed after 1 s: each fire runs, none is skipped."""
    declare(settings, "stuck", "hang", timeout=1, interval_seconds=2)

    def timed_out_runs():
        runs = DjangoJobExecution.objects.filter(job_id="stuck").order_by("run_time")
        return [run for run in runs if run.status != history.RUNNING]

    runs = wait_until(lambda: len(timed_out_runs()) >= 3 and timed_out_runs(), timeout=20)
    assert {run.status for run in runs} == {history.TIMED_OUT}
    gaps = {
        (later.run_time - earlier.run_time).total_seconds() for earlier, later in pairwise(runs)
    }
    assert gaps == {2.0}


@pytest.mark.parametrize("timeout", [0, -1, "5", True])
def test_a_timeout_that_is_not_a_positive_number_is_a_check_error(settings, timeout):
    settings.SCHEDULER_JOBS = [
        {"id": "stuck", "func": f"{JOBS}.hang", "interval_seconds": 60, "timeout_seconds": timeout}
    ]

    [error] = declaration_errors()

    assert error.id == "crm.E015"
    assert error.msg == f"Job 'stuck': timeout_seconds is {timeout!r}."
    assert "greater than 0" in error.hint
