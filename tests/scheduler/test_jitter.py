"""`jitter_seconds`: each fire starts at a delay of up to N seconds after its
time, the same delay in every process, and lateness allows for it."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django_apscheduler.models import DjangoJobExecution

from crm.scheduler import control, execution, status
from crm.scheduler.checks import declaration_errors
from crm.scheduler.declarations import JobDeclaration, declared_jobs

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def job(**fields) -> JobDeclaration:
    return JobDeclaration(id="report", func="tests.scheduler.test_jitter.work", **fields)


def work():
    return "done"


def test_the_delay_is_the_same_for_a_fire_everywhere_and_within_the_jitter():
    fires = [NOW + timedelta(minutes=minute) for minute in range(200)]
    delays = [job(cron="* * * * *", jitter_seconds=30).jitter_for(fire) for fire in fires]

    again = [job(cron="* * * * *", jitter_seconds=30).jitter_for(fire) for fire in fires]

    assert delays == again
    assert all(timedelta(0) <= delay < timedelta(seconds=30) for delay in delays)
    assert len(set(delays)) > 150  # drawn per fire, not one delay for all
    assert max(delays) - min(delays) > timedelta(seconds=20)  # spread over the range
    assert job(cron="* * * * *").jitter_for(NOW) == timedelta(0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cron": "0 2 * * *", "jitter_seconds": -5}, "jitter_seconds is -5"),
        ({"cron": "0 2 * * *", "jitter_seconds": "10"}, "jitter_seconds is '10'"),
        (
            {"interval_seconds": 60, "jitter_seconds": 60},
            "jitter_seconds is 60, not less than its interval of 60 s",
        ),
    ],
)
def test_a_bad_jitter_is_a_check_error_naming_the_job_and_field(settings, fields, message):
    settings.SCHEDULER_JOBS = [
        {"id": "report", "func": "tests.scheduler.test_jitter.work", **fields}
    ]

    errors = [error for error in declaration_errors() if error.id == "crm.E013"]

    assert [error.msg for error in errors] == [f"Job 'report': {message}."]


def test_the_schedule_in_words_says_so():
    assert (
        job(cron="0 2 * * *", timezone="UTC", jitter_seconds=90).describe_schedule()
        == "At 02:00 every day, UTC, then up to 90 s later"
    )


@pytest.fixture
def jittered(settings):
    settings.SCHEDULER_JOBS = [
        {"id": "report", "func": "tests.scheduler.test_jitter.work", "cron": "0 2 * * *",
         "timezone": "UTC", "jitter_seconds": 1.5, "misfire_grace_seconds": 60},
    ]  # fmt: skip
    with time_machine.travel(NOW, tick=False):
        control.sync("tests")
    return declared_jobs()["report"]


def run_scheduled(fire, context=None):
    """The job's scheduled run of `fire`, in `context`, in a thread of its own."""
    context = context or execution.RunContext()
    thread = threading.Thread(
        target=context.call, args=(execution.run_for_fire, "report", fire, "schedule")
    )
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_a_scheduled_run_starts_its_jitter_after_its_fire_time(jittered):
    fire = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    delay = jittered.jitter_for(fire)

    run_scheduled(fire).join(10)

    started = DjangoJobExecution.objects.get(job_id="report").detail.started_at
    # Not before its delay; and not much after (the slack is for a loaded machine).
    assert fire + delay <= started < fire + delay + timedelta(seconds=3)


@pytest.mark.django_db(transaction=True)
def test_a_run_waiting_out_its_jitter_starts_nothing_once_the_scheduler_stops(jittered, caplog):
    fire = datetime.now(UTC) + timedelta(seconds=30)
    context = execution.RunContext()
    thread = run_scheduled(fire, context)  # waits about 30 s before it starts

    context.stopping.set()
    thread.join(5)

    assert not thread.is_alive()
    assert not DjangoJobExecution.objects.exists()
    assert "the scheduler stopped during its jitter" in caplog.text


@pytest.mark.django_db
def test_a_run_by_hand_does_not_wait(jittered):
    with time_machine.travel(NOW, tick=False):
        call_command("scheduler", "run", "report", "--here")

    assert DjangoJobExecution.objects.get(job_id="report").detail.started_at == NOW


@pytest.mark.django_db
def test_a_job_is_late_only_once_its_grace_and_its_fires_delay_have_passed(jittered):
    fire = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    deadline = fire + jittered.misfire_grace + jittered.jitter_for(fire)

    def late_at(moment):
        [state] = status.job_states(moment, job_ids=["report"])
        return state.late

    assert not late_at(deadline)
    assert late_at(deadline + timedelta(milliseconds=1))
