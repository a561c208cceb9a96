"""Pruning old run history: the job and `prune_job_executions`."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django_apscheduler.models import DjangoJobExecution

from crm import jobs
from crm.scheduler import execution, history
from crm.scheduler.models import RunDetail, SchedulerCommand
from tests import factories

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def run(job_id, days_ago, status=history.SUCCEEDED):
    when = NOW - timedelta(days=days_ago)
    return factories.job_run(job_id, status=status, run_time=when, detail={})


def remaining():
    return sorted(
        (job_id, round((NOW - when).total_seconds() / 86400))
        for job_id, when in DjangoJobExecution.objects.values_list("job_id", "run_time")
    )


def prune(*args):
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("prune_job_executions", *args, stdout=out)
    return out.getvalue()


def test_the_job_deletes_runs_older_than_the_retention_and_their_details(settings):
    settings.EXECUTION_RETENTION_DAYS = 7
    for days in (1, 6, 8, 30):
        run("nightly", days)

    with time_machine.travel(NOW, tick=False):
        counts = jobs.delete_old_job_executions()

    assert counts == {"deleted": 2, "kept_latest": 0, "kept_running": 0}
    assert remaining() == [("nightly", 1), ("nightly", 6)]
    assert RunDetail.objects.count() == 2


def test_it_keeps_each_jobs_latest_run_however_old():
    run("weekly", 40)
    run("weekly", 50)
    run("nightly", 1)

    output = prune()

    assert remaining() == [("nightly", 1), ("weekly", 40)]
    assert "Deleted 1 job executions older than 7 days; kept 1 as their job's latest" in output


def test_it_keeps_runs_going_on_in_this_process_however_old():
    going = run("nightly", 20, status=history.RUNNING)
    run("nightly", 21, status=history.FAILED)
    run("nightly", 1)

    scheduler = execution.RunContext()  # the scheduler the pruning job runs in
    scheduler.runs.started(going.pk)

    output = scheduler.call(prune)

    assert remaining() == [("nightly", 1), ("nightly", 20)]
    assert "and 1 still running." in output


def test_it_deletes_old_runs_left_started_that_nobody_is_running():
    run("nightly", 20, status=history.RUNNING)  # its process died long ago
    run("nightly", 1)

    output = prune()

    assert remaining() == [("nightly", 1)]
    assert "and 0 still running." in output


def test_it_deletes_in_batches():
    for days in range(10, 20):
        run("nightly", days)
    run("nightly", 1)

    prune("--batch-size", "3")

    assert remaining() == [("nightly", 1)]


def test_a_dry_run_counts_and_deletes_nothing():
    for days in (1, 9, 10):
        run("nightly", days)

    output = prune("--dry-run", "--days", "5")

    assert output == (
        "Would delete 2 job executions older than 5 days; kept 0 as their job's latest and "
        "0 still running (dry run: nothing deleted).\n"
    )
    assert len(remaining()) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "0"], "--days must be 1 or more, not 0."),
        (["--batch-size", "0"], "--batch-size must be 1 or more, not 0."),
    ],
)
def test_bad_arguments_are_one_line_errors(args, message):
    with pytest.raises(CommandError) as error:
        prune(*args)
    assert str(error.value) == message


def test_a_command_that_asked_for_a_pruned_run_stays_on_record_without_it():
    asked = run("nightly", 30)
    run("nightly", 1)
    command = SchedulerCommand.objects.create(
        action="run", job_id="nightly", requested_by="ops", execution=asked
    )

    prune()

    command.refresh_from_db()
    assert command.execution is None and command.requested_by == "ops"
    assert remaining() == [("nightly", 1)]
