"""`retries`: a failed run is tried again as the same fire, after a growing
wait, by whichever scheduler is active when the wait ends; each attempt is
recorded, and the fire's last outcome is the job's."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django_apscheduler.models import DjangoJobExecution

from crm.scheduler import control, execution, history, retries, status
from crm.scheduler.checks import declaration_errors
from crm.scheduler.declarations import declared_job
from crm.scheduler.execution import FireTimeThreadExecutor, RunContext
from crm.scheduler.models import RunAttempt
from crm.scheduler.schedulers import Mode, build_scheduler
from tests.support.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
FLAKY = "tests.support.e2e_jobs.fail_times"
TEN_O_CLOCK = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
SCHEDULER = RunContext(scheduler="lease-token")


@pytest.fixture
def flaky(settings, tmp_path):
    """Declares job `flaky` (failing its first `failures` calls) with `fields`."""

    def declare(failures=2, **fields):
        settings.SCHEDULER_JOBS = [
            {
                "id": "flaky",
                "func": FLAKY,
                "interval_seconds": 3600,
                "kwargs": {"count_file": str(tmp_path / "calls"), "failures": failures},
                "retries": 3,
                "retry_backoff_seconds": 60,
                **fields,
            }
        ]
        control.sync("tests")

    return declare


@pytest.fixture
def paused_scheduler():
    """A real scheduler that dispatches no fire of its own: only what
    `retries.start_due` hands it, run in its executor's threads."""
    scheduler = build_scheduler(Mode.CONTINUOUS, FireTimeThreadExecutor(SCHEDULER))
    scheduler.start(paused=True)
    yield scheduler
    scheduler.shutdown(wait=True)


def the_fire():
    return DjangoJobExecution.objects.select_related("detail").get(job_id="flaky")


def attempts():
    return [(a.number, a.status, a.error) for a in RunAttempt.objects.order_by("number")]


def test_a_job_failing_twice_then_succeeding_is_one_fire_of_three_attempts(flaky, paused_scheduler):
    flaky(failures=2)
    executor = paused_scheduler.lookup_executor("default")
    with time_machine.travel(TEN_O_CLOCK, tick=False) as clock:
        with pytest.raises(ConnectionError):
            SCHEDULER.call(execution.run_declared_job, "flaky")
        fire = the_fire()
        assert fire.status == history.RETRYING
        assert "Attempt 1 of 4 failed (ConnectionError: call 1" in fire.exception
        first_wait = fire.detail.retry_at - TEN_O_CLOCK
        assert timedelta(seconds=30) <= first_wait <= timedelta(seconds=60)
        assert retries.start_due(paused_scheduler) == 0  # not yet

        clock.move_to(fire.detail.retry_at)
        assert retries.start_due(paused_scheduler) == 1
        wait_until(lambda: not executor.has_running_jobs(), timeout=10)
        fire = the_fire()
        assert fire.status == history.RETRYING and fire.detail.attempt == 2
        second_wait = fire.detail.retry_at - (TEN_O_CLOCK + first_wait)
        assert timedelta(seconds=60) <= second_wait <= timedelta(seconds=120)

        clock.move_to(fire.detail.retry_at)
        assert retries.start_due(paused_scheduler) == 1
        wait_until(lambda: not executor.has_running_jobs(), timeout=10)

    fire = the_fire()
    assert fire.status == history.SUCCEEDED
    assert fire.run_time == TEN_O_CLOCK and fire.exception is None
    assert fire.detail.attempt == 3 and fire.detail.result == 3
    assert attempts() == [
        (1, history.FAILED, "ConnectionError: call 1: the mail server did not answer"),
        (2, history.FAILED, "ConnectionError: call 2: the mail server did not answer"),
        (3, history.SUCCEEDED, ""),
    ]
    assert DjangoJobExecution.objects.count() == 1


def test_the_last_failure_is_the_fire_s_outcome_and_the_job_is_failing_only_then(
    flaky, paused_scheduler
):
    flaky(failures=10, retries=1)
    with time_machine.travel(TEN_O_CLOCK, tick=False) as clock:
        with pytest.raises(ConnectionError):
            SCHEDULER.call(execution.run_declared_job, "flaky")
        [job] = [job for job in status.job_states() if job.id == "flaky"]
        assert job.retrying and not job.failing

        clock.move_to(the_fire().detail.retry_at)
        retries.start_due(paused_scheduler)
        executor = paused_scheduler.lookup_executor("default")
        wait_until(lambda: not executor.has_running_jobs(), timeout=10)

    fire = the_fire()
    assert fire.status == history.FAILED
    assert fire.exception == "ConnectionError: call 2: the mail server did not answer"
    [job] = [job for job in status.job_states() if job.id == "flaky"]
    assert job.failing and not job.retrying
    assert [number for number, *_ in attempts()] == [1, 2]


def test_waits_grow_twice_as_long_up_to_the_maximum_and_are_the_same_for_a_fire(flaky):
    flaky(retry_backoff_seconds=10, retry_backoff_max_seconds=50, retries=5)
    declaration = declared_job("flaky")
    waits = [retries.wait_before(declaration, TEN_O_CLOCK, n).total_seconds() for n in (1, 2, 3, 4)]

    for wait, longest in zip(waits, [10, 20, 40, 50], strict=True):
        assert longest / 2 <= wait <= longest
    assert retries.wait_before(declaration, TEN_O_CLOCK, 1).total_seconds() == waits[0]
    other_fire = retries.wait_before(declaration, TEN_O_CLOCK + timedelta(hours=1), 1)
    assert other_fire.total_seconds() != waits[0]


def test_no_retry_that_would_start_at_or_after_the_next_regular_fire(flaky):
    flaky(failures=10, interval_seconds=60, retry_backoff_seconds=120)
    with time_machine.travel(TEN_O_CLOCK, tick=False), pytest.raises(ConnectionError):
        SCHEDULER.call(execution.run_declared_job, "flaky")

    fire = the_fire()
    assert fire.status == history.FAILED and fire.detail.retry_at is None


def test_a_waiting_retry_is_given_up_when_the_next_fire_starts(flaky):
    flaky(failures=10)
    with time_machine.travel(TEN_O_CLOCK, tick=False), pytest.raises(ConnectionError):
        SCHEDULER.call(execution.run_declared_job, "flaky")
    assert the_fire().status == history.RETRYING

    next_fire = TEN_O_CLOCK + timedelta(hours=1)
    with time_machine.travel(next_fire, tick=False), pytest.raises(ConnectionError):
        SCHEDULER.call(execution.run_declared_job, "flaky")

    first = DjangoJobExecution.objects.get(job_id="flaky", run_time=TEN_O_CLOCK)
    assert first.status == history.FAILED
    assert first.exception.startswith(
        f"No more attempts (the fire of {next_fire.isoformat()} started first). Attempt 1 of 4"
    )


def test_a_due_retry_is_given_up_once_the_next_fire_is_due(flaky, paused_scheduler):
    flaky(failures=10)
    with time_machine.travel(TEN_O_CLOCK, tick=False) as clock:
        with pytest.raises(ConnectionError):
            SCHEDULER.call(execution.run_declared_job, "flaky")
        clock.move_to(TEN_O_CLOCK + timedelta(hours=1))  # no scheduler was active meanwhile

        assert retries.start_due(paused_scheduler) == 0

    fire = the_fire()
    assert fire.status == history.FAILED
    assert "No more attempts (the job's next fire was due first)" in fire.exception


def test_a_paused_job_s_retry_waits_until_it_is_resumed(flaky, paused_scheduler):
    flaky(failures=10)
    with time_machine.travel(TEN_O_CLOCK, tick=False) as clock:
        with pytest.raises(ConnectionError):
            SCHEDULER.call(execution.run_declared_job, "flaky")
        control.pause_job("flaky", requested_by="ops")
        clock.move_to(the_fire().detail.retry_at)

        assert retries.start_due(paused_scheduler) == 0
        control.resume_job("flaky", requested_by="ops")
        assert retries.start_due(paused_scheduler) == 1
        wait_until(lambda: not paused_scheduler.lookup_executor("default").has_running_jobs(), 10)


def test_only_the_errors_named_in_retry_on_are_retried(flaky):
    flaky(failures=10, retry_on=["KeyError", "smtplib.SMTPException"])
    with pytest.raises(ConnectionError):
        SCHEDULER.call(execution.run_declared_job, "flaky")
    assert the_fire().status == history.FAILED

    DjangoJobExecution.objects.all().delete()
    flaky(failures=10, retry_on=["OSError"])  # ConnectionError is an OSError
    with pytest.raises(ConnectionError):
        SCHEDULER.call(execution.run_declared_job, "flaky")
    assert the_fire().status == history.RETRYING


def test_a_run_by_hand_is_tried_once(flaky):
    flaky(failures=10)
    with pytest.raises(ConnectionError):
        execution.run_declared_job("flaky", triggered_by="command line: ops@web1")
    assert the_fire().status == history.FAILED


def test_an_active_scheduler_makes_the_remaining_attempts_by_itself(flaky, active_scheduler):
    flaky(failures=2, retry_backoff_seconds=0.5)

    control.operate("run", ["flaky"], requested_by="ops", wait=False)

    done = DjangoJobExecution.objects.filter(job_id="flaky", status=history.SUCCEEDED)
    wait_until(done.exists, timeout=20)
    fire = the_fire()
    assert fire.detail.attempt == 3
    assert [status for _, status, _ in attempts()] == [
        history.FAILED,
        history.FAILED,
        history.SUCCEEDED,
    ]


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        ({"retries": -1}, "crm.E016", "retries is -1."),
        ({"retries": 2.5}, "crm.E016", "retries is 2.5."),
        (
            {"retry_backoff_seconds": None},
            "crm.E016",
            "retries is 3 without a retry_backoff_seconds.",
        ),
        ({"retries": 0}, "crm.E016", "retries is 0, yet a backoff or retry_on is declared."),
        ({"retry_backoff_seconds": 0}, "crm.E017", "retry_backoff_seconds is 0."),
        ({"retry_backoff_max_seconds": -5}, "crm.E017", "retry_backoff_max_seconds is -5."),
        (
            {"retry_backoff_max_seconds": 30},
            "crm.E017",
            "retry_backoff_max_seconds is 30, shorter than retry_backoff_seconds (60).",
        ),
        (
            {"retry_on": ["smtplib.NoSuchError"]},
            "crm.E018",
            "retry_on names 'smtplib.NoSuchError', which cannot be imported.",
        ),
        (
            {"retry_on": ["MailError"]},
            "crm.E018",
            "retry_on names 'MailError', which cannot be imported.",
        ),
        (
            {"retry_on": ["os.path"]},
            "crm.E018",
            "retry_on names 'os.path', which is not an exception class.",
        ),
        ({"retry_on": "OSError"}, "crm.E018", "retry_on is 'OSError'."),
    ],
)
def test_bad_retry_fields_are_check_errors_naming_the_job_and_field(
    settings, fields, code, message
):
    settings.SCHEDULER_JOBS = [
        {
            "id": "flaky",
            "func": FLAKY,
            "interval_seconds": 3600,
            "retries": 3,
            "retry_backoff_seconds": 60,
            **fields,
        }
    ]

    [error] = declaration_errors()

    assert (error.id, error.msg) == (code, f"Job 'flaky': {message}")
    assert error.hint
