"""A stored job runs its declaration: only declared jobs, with fresh connections,
the scheduled fire time when asked for, and never once the lease may be gone."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from crm.scheduler import control, execution
from crm.scheduler.history import mark_interrupted_runs
from crm.scheduler.signals import job_finished, job_started
from tests.support.processes import wait_until

pytestmark = pytest.mark.django_db
CALLS = []


def remember(*args, **kwargs):
    CALLS.append((args, kwargs))
    return "done"


def explode(**kwargs):
    raise ZeroDivisionError("the job broke")


@pytest.fixture(autouse=True)
def declared(settings):
    CALLS.clear()
    settings.SCHEDULER_JOBS = [
        {
            "id": "remember",
            "func": "tests.scheduler.test_execution.remember",
            "interval_seconds": 60,
            "args": (1,),
            "kwargs": {"size": 2},
            "fire_time_kwarg": "fire_time",
        },
        {"id": "explode", "func": "tests.scheduler.test_execution.explode", "interval_seconds": 60},
    ]
    control.sync("tests")


def test_it_runs_the_declared_function_with_its_arguments():
    moment = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    with time_machine.travel(moment, tick=False):
        assert execution.run_declared_job("remember") == "done"
    # Run outside the schedule, it serves the moment it was started.
    assert [((1,), {"size": 2, "fire_time": moment})] == CALLS


def test_it_records_the_run_with_who_started_it_and_what_it_returned():
    with time_machine.travel(datetime(2026, 11, 22, 12, 0, tzinfo=UTC), tick=False):
        execution.run_declared_job("remember", triggered_by="command line: ops@web1")

    run = DjangoJobExecution.objects.select_related("detail").get(job_id="remember")
    assert run.status == DjangoJobExecution.SUCCESS
    assert run.run_time == datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert run.detail.started_at == run.run_time
    assert run.detail.triggered_by == "command line: ops@web1"
    assert run.detail.result == "done"
    assert run.duration is not None and run.duration < 5


def test_it_records_a_failure_with_its_error_and_traceback():
    with pytest.raises(ZeroDivisionError):
        execution.run_declared_job("explode")

    run = DjangoJobExecution.objects.get(job_id="explode")
    assert run.status == DjangoJobExecution.ERROR
    assert run.exception == "ZeroDivisionError: the job broke"
    assert "Traceback" in run.traceback and "explode" in run.traceback


def test_it_never_runs_a_fire_that_already_has_a_run():
    fire = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    token = execution.scheduled_fire_time.set(fire)
    try:
        execution.run_declared_job("remember")
        assert execution.run_declared_job("remember") is None
    finally:
        execution.scheduled_fire_time.reset(token)

    assert len(CALLS) == 1
    assert DjangoJobExecution.objects.filter(job_id="remember", run_time=fire).count() == 1


def test_a_declared_job_not_yet_in_the_store_is_not_run_and_says_how_to_fix_it():
    DjangoJob.objects.filter(id="remember").delete()

    with pytest.raises(LookupError, match="scheduler sync"):
        execution.run_declared_job("remember")
    assert CALLS == []


def test_it_refuses_a_job_that_is_not_declared():
    with pytest.raises(LookupError, match="no longer declared"):
        execution.run_declared_job("os.system")
    assert CALLS == []


def fire_through_executor(job_id: str, fire_time: datetime, context=None) -> None:
    """Fire `job_id` once through a scheduler whose executor runs in `context`."""
    done = threading.Event()
    scheduler = BackgroundScheduler(
        jobstores={"default": MemoryJobStore()},
        executors={"default": execution.FireTimeThreadExecutor(context)},
        timezone="UTC",
    )
    scheduler.add_listener(lambda event: done.set(), EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    scheduler.add_job(
        execution.run_declared_job,
        "date",
        run_date=fire_time,
        args=[job_id],
        misfire_grace_time=60,
    )
    scheduler.start()
    assert done.wait(10)
    wait_until(lambda: not scheduler.get_jobs(), timeout=5)
    scheduler.shutdown(wait=True)


@pytest.mark.django_db(transaction=True)
def test_it_runs_nothing_once_the_lease_may_have_passed_on(caplog):
    lease_gone = execution.RunContext(may_run=lambda: False)

    fire_through_executor("remember", datetime.now(UTC), lease_gone)

    assert CALLS == [] and not DjangoJobExecution.objects.exists()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "Job remember not run: this process may no longer hold the lease. "
            "The next active scheduler runs it.",
        )
    ]


@pytest.mark.django_db(transaction=True)
def test_the_job_receives_the_fire_time_it_serves():
    fire_time = datetime.now(UTC) - timedelta(seconds=2)

    fire_through_executor("remember", fire_time)

    assert CALLS[0][1]["fire_time"] == fire_time


def test_signals_are_sent_when_a_run_starts_and_finishes():
    seen = []

    def started(sender, **info):
        seen.append(("started", info))

    def finished(sender, **info):
        seen.append(("finished", info))

    job_started.connect(started)
    job_finished.connect(finished)
    try:
        execution.run_declared_job("remember")
        with pytest.raises(ZeroDivisionError):
            execution.run_declared_job("explode")
    finally:
        job_started.disconnect(started)
        job_finished.disconnect(finished)

    assert [(kind, info["job_id"]) for kind, info in seen] == [
        ("started", "remember"),
        ("finished", "remember"),
        ("started", "explode"),
        ("finished", "explode"),
    ]
    succeeded, failed = seen[1][1], seen[3][1]
    assert (succeeded["status"], succeeded["result"], succeeded["exception"]) == (
        "succeeded",
        "done",
        None,
    )
    assert failed["status"] == "failed"
    assert isinstance(failed["exception"], ZeroDivisionError)
    assert failed["duration"] >= 0


def test_runs_left_started_by_a_dead_process_are_marked_interrupted():
    job = DjangoJob.objects.get(id="remember")
    when = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    DjangoJobExecution.objects.create(job=job, status=DjangoJobExecution.SENT, run_time=when)
    DjangoJobExecution.objects.create(
        job=job, status=DjangoJobExecution.SUCCESS, run_time=when - timedelta(days=1)
    )

    assert mark_interrupted_runs("host web1, pid 42") == 1

    statuses = dict(DjangoJobExecution.objects.values_list("run_time", "status"))
    assert statuses[when] == "Interrupted"
    assert statuses[when - timedelta(days=1)] == DjangoJobExecution.SUCCESS
    assert "pid 42" in DjangoJobExecution.objects.get(run_time=when).exception
