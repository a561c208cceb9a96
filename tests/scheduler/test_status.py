"""What "late" and "failing" mean (crm.scheduler.status), the rules every view
of the scheduler shares, and how missed and interrupted fires are recorded."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from crm.scheduler import control, history, status
from crm.scheduler.runner import SchedulerRunner
from tests import factories
from tests.support.processes import wait_until

pytestmark = pytest.mark.django_db
START = datetime(2026, 11, 23, 1, 59, tzinfo=UTC)
TWO = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def nightly(settings):
    settings.SCHEDULER_JOBS = [
        {
            "id": "nightly",
            "func": "tests.support.e2e_jobs.record_fire",
            "cron": "0 2 * * *",
            "misfire_grace_seconds": 600,
        }
    ]
    with time_machine.travel(START, tick=False):
        control.sync("tests")


def state(at: datetime) -> status.JobState:
    return next(job for job in status.job_states(at) if job.id == "nightly")


def record(status_text, run_time, **detail):
    return factories.job_run(
        "nightly", status=status_text, run_time=run_time, detail=detail or None
    )


def test_a_job_is_late_only_once_its_fire_time_plus_grace_has_passed():
    assert state(TWO + timedelta(seconds=600)).late is False
    late = state(TWO + timedelta(seconds=601))
    assert late.late is True and late.late_since == TWO


def test_a_paused_job_is_never_late():
    control.pause_job("nightly", "tests")

    assert state(TWO + timedelta(days=3)).late is False
    assert state(TWO).paused is True


def test_a_job_whose_last_run_failed_or_was_interrupted_is_failing():
    record(history.SUCCEEDED, TWO - timedelta(days=2))
    record(history.FAILED, TWO - timedelta(days=1))
    assert state(START).failing is True

    DjangoJobExecution.objects.filter(status=history.FAILED).update(status=history.INTERRUPTED)
    assert state(START).failing is True


def test_a_success_after_a_failure_clears_failing_and_runs_in_progress_do_not():
    record(history.FAILED, TWO - timedelta(days=2))
    record(history.SUCCEEDED, TWO - timedelta(days=1))
    assert state(START).failing is False

    record(history.FAILED, TWO - timedelta(hours=1))
    record(history.RUNNING, TWO)
    job = state(TWO)
    assert (job.failing, job.running) == (True, True)


def test_missed_and_skipped_fires_are_not_runs_and_do_not_make_a_job_failing():
    record(history.SUCCEEDED, TWO - timedelta(days=2))
    record(history.MISSED, TWO - timedelta(days=1))
    record(history.SKIPPED, TWO)

    job = state(TWO)
    assert job.failing is False
    assert job.last_run.status == history.SKIPPED
    assert job.last_finished.status == history.SUCCEEDED


def test_a_job_stored_but_no_longer_declared_is_listed_apart(settings):
    settings.SCHEDULER_JOBS = []

    states = {job.id: job for job in status.job_states(TWO)}

    assert states["nightly"].declaration is None and states["nightly"].late is False


def test_only_runs_nobody_is_still_running_are_marked_interrupted():
    gone = record(history.RUNNING, TWO - timedelta(days=3), triggered_by="schedule", scheduler="a")
    legacy = record(history.RUNNING, TWO - timedelta(days=2))
    by_hand = record(history.RUNNING, TWO - timedelta(days=1), triggered_by="cli", scheduler="")
    # This process's own earlier run, cut short (it takes the lease again after an outage).
    mine_cut_short = record(
        history.RUNNING, TWO - timedelta(hours=1), triggered_by="schedule", scheduler="b"
    )
    mine_going = record(history.RUNNING, TWO, triggered_by="schedule", scheduler="b")

    marked = history.mark_interrupted_runs("host web1, pid 1", still_going={mine_going.pk})

    assert marked == 3
    statuses = dict(DjangoJobExecution.objects.values_list("pk", "status"))
    assert statuses[gone.pk] == statuses[legacy.pk] == history.INTERRUPTED
    assert statuses[mine_cut_short.pk] == history.INTERRUPTED
    assert statuses[by_hand.pk] == statuses[mine_going.pk] == history.RUNNING


@pytest.mark.django_db(transaction=True)
def test_a_fire_missed_beyond_its_grace_is_recorded_as_missed(settings):
    # Nobody was running when the job was due two hours ago, longer ago than
    # its 10 minutes of grace. Its cron hour is half a day away from now, so
    # no later fire falls due during the test whatever the time of day.
    now = datetime.now(UTC).replace(microsecond=0)
    settings.SCHEDULER_JOBS = [
        {
            "id": "nightly",
            "func": "crm.jobs.auto_close_resolved_tickets",
            "cron": f"0 {(now.hour + 12) % 24} * * *",
            "misfire_grace_seconds": 600,
        }
    ]
    settings.AUTO_CLOSE_ENABLED = settings.EXECUTION_PRUNE_ENABLED = False
    control.sync("tests")
    fire = now - timedelta(hours=2)
    with control.job_store() as store:
        store.modify_job("nightly", next_run_time=fire)

    settings.SCHEDULER_LEASE_SECONDS = 3
    runner = SchedulerRunner()
    runner.start()
    try:
        missed = wait_until(
            lambda: DjangoJobExecution.objects.filter(status=history.MISSED).first(), timeout=15
        )
    finally:
        runner.stop()

    assert (missed.job_id, missed.run_time) == ("nightly", fire)
    assert "misfire grace of 600 s" in missed.exception
    assert DjangoJob.objects.get(id="nightly").next_run_time > datetime.now(UTC)
    assert not DjangoJobExecution.objects.exclude(status=history.MISSED).exists()


def test_the_problems_read_from_the_problem_jobs_alone_are_those_of_every_job(settings):
    """The health poll and the admin's banner read only the jobs that may be
    late, stalled or failing; they must find the same problems."""
    settings.SCHEDULER_JOBS = [
        {
            "id": job_id,
            "func": "tests.support.e2e_jobs.record_fire",
            "cron": "0 2 * * *",
            "misfire_grace_seconds": grace,
        }
        for job_id, grace in (
            ("nightly", 600),
            ("failed", 600),
            ("patient", 6 * 3600),
            ("paused", 60),
            ("fine", 60),
        )
    ]
    with time_machine.travel(START, tick=False):
        control.sync("tests")
        control.pause_job("paused", "tests")
    factories.job_run("failed", status=history.FAILED, run_time=TWO - timedelta(days=1))
    factories.job_run("fine", status=history.SUCCEEDED, run_time=TWO - timedelta(days=1))
    DjangoJob.objects.filter(id="fine").update(next_run_time=TWO + timedelta(days=1))

    for at in (START, TWO + timedelta(seconds=601), TWO + timedelta(hours=1)):
        everything, few = status.job_states(at, runs=False), status.problem_states(at)
        assert status.problems(None, few) == status.problems(None, everything)
        assert not {job.id for job in few} & {"fine", "paused"}
    late = status.problems(None, status.problem_states(TWO + timedelta(hours=1)))
    assert late == [
        "no scheduler is active",
        "nightly is late",
        "failed is late",
        "failed is failing",
    ]
