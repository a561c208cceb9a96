"""seed_demo --history, for `make run`: weeks of demo run history for the
built-in jobs and the demo job, a failure and a missed fire among them, marked
as demo data, and an auto-close run asked for at the first start."""

from datetime import UTC, datetime
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from crm.demo_history import DEMO_HOST, DEMO_MARK
from crm.scheduler import history, status
from crm.scheduler.declarations import DEMO_JOB_ID
from crm.scheduler.models import SchedulerCommand

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 1, 19, 30, 20, tzinfo=UTC)


@pytest.fixture
def development(settings):
    settings.DEBUG = True
    settings.DEMO_JOBS = True


def seed(**options) -> str:
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("seed_demo", "--history", tickets=20, stdout=out, **options)
    return out.getvalue()


def runs_of(job_id):
    return DjangoJobExecution.objects.filter(job_id=job_id).order_by("run_time")


def test_it_writes_weeks_of_runs_at_each_jobs_fire_times(development):
    output = seed()

    nightly = runs_of("auto_close_resolved_tickets")
    assert nightly.count() == 28
    assert {run.run_time.time().isoformat() for run in nightly} == {"02:00:00"}
    assert runs_of("delete_old_job_executions").count() == 4
    demo = runs_of(DEMO_JOB_ID)
    assert demo.count() == 2 * 24 * 60
    assert demo.last().run_time == NOW.replace(second=0)
    assert "Wrote 2,912 demo runs of auto_close_resolved_tickets" in output


def test_it_includes_one_failure_with_its_traceback_and_one_missed_fire(development):
    seed()

    failed = DjangoJobExecution.objects.get(status=history.FAILED)
    assert failed.job_id == "auto_close_resolved_tickets"
    assert failed.traceback.startswith("Traceback (most recent call last):")
    missed = DjangoJobExecution.objects.get(status=history.MISSED)
    assert missed.exception.endswith(DEMO_MARK)
    assert DjangoJobExecution.objects.exclude(status=history.SUCCEEDED).count() == 2


def test_every_demo_run_is_marked_as_demo_data(development):
    seed()

    ran = DjangoJobExecution.objects.exclude(status=history.MISSED)
    assert ran.count() == ran.filter(detail__host=DEMO_HOST).count()
    assert all(run.detail.started_at >= run.run_time for run in ran.select_related("detail"))


def test_the_jobs_are_stored_and_none_is_failing_or_late_afterwards(development):
    seed()

    assert set(DjangoJob.objects.values_list("id", flat=True)) == {
        "auto_close_resolved_tickets",
        "delete_old_job_executions",
        DEMO_JOB_ID,
    }
    with time_machine.travel(NOW, tick=False):
        states = status.job_states()
    assert [job.id for job in states if job.failing or job.late] == []


def test_it_asks_the_first_scheduler_to_run_auto_close_at_once(development):
    output = seed()

    command = SchedulerCommand.objects.get()
    assert (command.action, command.job_id) == ("run", "auto_close_resolved_tickets")
    assert "Asked the first scheduler to start to run auto_close_resolved_tickets now." in output


def test_with_if_empty_it_writes_no_history_where_there_is_some(development):
    seed(if_empty=True)

    output = seed(if_empty=True)

    assert "Demo run history not written: there is run history already." in output
    assert DjangoJobExecution.objects.count() == 2912


def test_it_refuses_with_debug_off_and_writes_nothing(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="for development only and DEBUG is off"):
        seed()

    assert not DjangoJobExecution.objects.exists() and not DjangoJob.objects.exists()
