"""`manage.py scheduler`: status, list, run, pause, resume, sync and preview, from
a process that is not the active scheduler, with their output and exit codes."""

import json
import threading
from datetime import UTC, datetime, timedelta
from io import StringIO
from types import SimpleNamespace

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from crm.scheduler.lease import Lease
from crm.scheduler.models import SchedulerCommand
from crm.scheduler.runner import LEASE_NAME
from tests.support.processes import project_env, run_manage

pytestmark = pytest.mark.django_db
BUILTIN = ["auto_close_resolved_tickets", "delete_old_job_executions"]


def add(a, b):
    return {"sum": a + b}


def explode():
    raise ZeroDivisionError("the job broke")


# The `slow` job's run: `started` once it has begun; it lasts until `release`.
slow_run = SimpleNamespace(started=threading.Event(), release=threading.Event())


def hold():
    slow_run.started.set()
    if not slow_run.release.wait(timeout=30):
        raise TimeoutError("the test never let the slow job end")


@pytest.fixture
def slow_job():
    """The `slow` job's run, held until the test ends (request this after
    active_scheduler, so that it lets the run end before the scheduler stops)."""
    slow_run.started.clear()
    slow_run.release.clear()
    yield slow_run
    slow_run.release.set()


@pytest.fixture(autouse=True)
def declared(settings):
    settings.SCHEDULER_JOBS = [
        {
            "id": "heartbeat",
            "func": "tests.scheduler.test_command.add",
            "interval_seconds": 60,
            "args": [2, 3],
            "misfire_grace_seconds": 30,
        },
        {"id": "report", "func": "tests.scheduler.test_command.explode", "cron": "0 6 * * 1-5"},
        {"id": "slow", "func": "tests.scheduler.test_command.hold", "interval_seconds": 3600},
    ]  # fmt: skip


def run(*args):
    out = StringIO()
    call_command("scheduler", *args, stdout=out)
    return out.getvalue()


def fails(*args) -> CommandError:
    out = StringIO()
    with pytest.raises(CommandError) as error:
        call_command("scheduler", *args, stdout=out)
    error.value.output = out.getvalue()
    return error.value


def take_lease():
    lease = Lease(LEASE_NAME, timedelta(seconds=30))
    assert lease.acquire()
    return lease


# sync


def test_sync_dry_run_says_what_it_would_do_and_writes_nothing():
    output = run("sync", "--dry-run")

    assert "Would create: heartbeat" in output and "Would create: report" in output
    assert "5 change(s) found; nothing written." in output
    assert not DjangoJob.objects.exists()


def test_sync_creates_jobs_and_a_second_run_changes_nothing(settings):
    assert "Created: heartbeat" in run("sync")
    assert "Nothing to change." in run("sync")

    settings.SCHEDULER_JOBS = settings.SCHEDULER_JOBS[:1]
    output = run("sync")
    assert "Removed: report" in output and "2 change(s) made." in output
    assert sorted(DjangoJob.objects.values_list("id", flat=True)) == [*BUILTIN, "heartbeat"]


# pause and resume while no scheduler is active


def test_pause_and_resume_a_job_in_the_store_when_no_scheduler_is_active():
    run("sync")

    assert "Paused heartbeat: paused in the job store" in run("pause", "heartbeat")
    assert DjangoJob.objects.get(id="heartbeat").next_run_time is None

    assert "Resumed heartbeat: resumed in the job store" in run("resume", "heartbeat")
    assert DjangoJob.objects.get(id="heartbeat").next_run_time is not None


def test_a_job_disabled_from_the_environment_is_paused_and_cannot_be_resumed(settings):
    run("sync")
    settings.AUTO_CLOSE_ENABLED = False

    assert "Updated: auto_close_resolved_tickets\n" in run("sync")
    assert DjangoJob.objects.get(id="auto_close_resolved_tickets").next_run_time is None
    error = fails("resume", "auto_close_resolved_tickets")
    assert str(error) == (
        "auto_close_resolved_tickets is disabled, so it cannot be resumed. Set "
        "AUTO_CLOSE_ENABLED=true in the environment and restart the app (or run "
        "`python manage.py scheduler sync`)."
    )

    settings.AUTO_CLOSE_ENABLED = True
    run("sync")
    assert DjangoJob.objects.get(id="auto_close_resolved_tickets").next_run_time is not None


def test_an_unknown_job_is_a_one_line_error_listing_the_jobs():
    run("sync")

    error = fails("pause", "hearbeat")
    assert str(error) == (
        "Unknown job 'hearbeat'. Choose one of: auto_close_resolved_tickets, "
        "delete_old_job_executions, heartbeat, report, slow."
    )
    assert "Unknown job 'nope'. Choose one of:" in str(fails("run", "nope", "--here"))


def test_an_unknown_action_lists_the_valid_ones():
    error = fails("restart")
    assert "invalid choice: 'restart'" in str(error)
    choices = "'status', 'list', 'run', 'pause', 'resume', 'skip', 'backfill', 'sync', 'preview'"
    assert choices in str(error)


def test_before_migrate_it_says_to_migrate_instead_of_a_traceback(tmp_path):
    env = project_env(SECRET_KEY="x", DATABASE_URL=f"sqlite:///{tmp_path}/empty.sqlite3")

    result = run_manage("scheduler", "status", env=env)

    assert result.returncode == 1
    assert "The database is not ready: no such table" in result.stderr
    assert "run `python manage.py migrate`" in result.stderr
    assert "Traceback" not in result.stderr


# list


def test_list_shows_each_job_with_its_schedule_as_written_and_in_words():
    run("sync")
    run("pause", "report")

    lines = run("list").splitlines()

    jobs = [line for line in lines if not line.startswith(" ")]
    assert "heartbeat  every 60 s  (Every 1 minute)  [enabled]" in jobs[2]
    assert jobs[3].startswith("report  0 6 * * 1-5  (At 06:00 on Monday to Friday, UTC)")
    assert "[paused]" in jobs[3]
    # Under each job, how it runs.
    policy = lines[lines.index(jobs[2]) + 1]
    assert policy == "    In a thread, no timeout; a fire due while it runs is skipped"


def test_list_json_is_for_scripts():
    listing = json.loads(run("list", "--json"))

    assert [job["id"] for job in listing] == [*BUILTIN, "heartbeat", "report", "slow"]
    heartbeat = listing[2]
    assert heartbeat["schedule"] == "every 60 s" and heartbeat["stored"] is False
    assert heartbeat["func"] == "tests.scheduler.test_command.add"


# status


def test_status_fails_when_no_scheduler_is_active():
    run("sync")

    error = fails("status")

    assert error.returncode == 1
    assert str(error) == "no scheduler is active."
    assert error.output.startswith("No scheduler is active.")
    assert "heartbeat" in error.output and "last run   never" in error.output


def test_status_is_healthy_with_an_active_scheduler_and_jobs_on_time():
    run("sync")
    take_lease()

    output = run("status")

    assert output.startswith("Active scheduler: host ")
    assert "heartbeat 0 s ago" in output
    assert "schedule   At 06:00 on Monday to Friday, UTC (0 6 * * 1-5)" in output


def test_status_names_a_late_job_and_a_failing_one():
    start = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        run("sync")
    fails("run", "report", "--here")
    # Nobody ran heartbeat for longer than its fire time plus its 30 s grace.
    with time_machine.travel(start + timedelta(seconds=91), tick=False):
        take_lease()
        error = fails("status")

    assert str(error) == "heartbeat is late; report is failing."
    assert "LATE       due 1 min ago and not run (grace passed)" in error.output
    assert "FAILING    ZeroDivisionError: the job broke" in error.output


def test_status_json_carries_the_same_facts():
    run("sync")
    run("run", "heartbeat", "--here")

    error = fails("status", "--json")

    state = json.loads(error.output)
    assert state["healthy"] is False and state["active_scheduler"] is None
    heartbeat = next(job for job in state["jobs"] if job["id"] == "heartbeat")
    assert heartbeat["last_run"]["status"] == DjangoJobExecution.SUCCESS
    assert heartbeat["last_run"]["result"] == {"sum": 5}
    assert heartbeat["last_run"]["triggered_by"].startswith("command line: ")
    assert heartbeat["late"] is False and heartbeat["failing"] is False


# run


def test_run_here_runs_the_job_in_this_process_and_records_who_ran_it():
    run("sync")

    output = run("run", "heartbeat", "--here")

    assert output == "heartbeat succeeded: {'sum': 5}\n"
    execution = DjangoJobExecution.objects.select_related("detail").get(job_id="heartbeat")
    assert execution.status == DjangoJobExecution.SUCCESS
    assert execution.detail.triggered_by.startswith("command line: ")


def test_run_here_reports_a_failure_in_one_line():
    run("sync")

    error = fails("run", "report", "--here")

    assert str(error) == (
        "report failed: ZeroDivisionError: the job broke "
        "(traceback in the run history and the log)."
    )


def test_run_without_an_active_scheduler_suggests_here():
    run("sync")

    error = fails("run", "heartbeat")

    assert "No scheduler is active to run heartbeat" in str(error)
    assert "--here" in str(error)
    assert not SchedulerCommand.objects.exists()


def test_run_of_a_job_not_synced_yet_says_to_sync():
    assert "not in the job store yet. Run `python manage.py scheduler sync` first." in str(
        fails("run", "heartbeat", "--here")
    )


# through the active scheduler


@pytest.mark.django_db(transaction=True)
def test_run_hands_the_job_to_the_active_scheduler_and_waits_for_its_outcome(
    active_scheduler,
):
    output = run("run", "heartbeat")

    assert output == "heartbeat succeeded in the active scheduler: {'sum': 5}\n"
    # The heartbeat also fires on its own every minute; this is the run asked for.
    execution = SchedulerCommand.objects.get(action="run").execution
    assert execution.job_id == "heartbeat"
    assert execution.detail.scheduler == active_scheduler.lease.holder.token
    assert execution.detail.triggered_by.startswith("command line: ")
    # Run now does not move the job's schedule.
    assert DjangoJob.objects.get(id="heartbeat").next_run_time > execution.run_time


@pytest.mark.django_db(transaction=True)
def test_run_of_a_failing_job_in_the_active_scheduler_exits_non_zero(active_scheduler):
    error = fails("run", "report")

    assert str(error) == "report: run failed: ZeroDivisionError: the job broke"


@pytest.mark.django_db(transaction=True)
def test_run_of_a_job_that_is_running_already_is_refused(active_scheduler, slow_job):
    first = SchedulerCommand.objects.create(action="run", job_id="slow", requested_by="test")
    assert slow_job.started.wait(15), "the scheduler did not run the slow job"

    error = fails("run", "slow")

    assert str(error) == "slow: Not run: slow is running already."
    first.refresh_from_db()
    assert first.taken_at is not None


@pytest.mark.django_db(transaction=True)
def test_pause_and_resume_are_carried_out_by_the_active_scheduler(active_scheduler):
    assert "Paused heartbeat: paused by the active scheduler" in run("pause", "heartbeat")
    assert DjangoJob.objects.get(id="heartbeat").next_run_time is None

    assert "Resumed heartbeat: resumed by the active scheduler" in run("resume", "heartbeat")
    assert DjangoJob.objects.get(id="heartbeat").next_run_time is not None
    assert list(SchedulerCommand.objects.values_list("action", "succeeded")) == [
        ("pause", True),
        ("resume", True),
    ]


@pytest.mark.django_db(transaction=True)
def test_sync_is_carried_out_by_the_active_scheduler(active_scheduler, settings):
    settings.SCHEDULER_JOBS = [
        *settings.SCHEDULER_JOBS,
        {**settings.SCHEDULER_JOBS[0], "id": "new"},
    ]

    assert "Created: new" in run("sync")

    assert DjangoJob.objects.filter(id="new").exists()
    assert SchedulerCommand.objects.get().outcome.startswith("created ['new']")


# preview


def test_preview_prints_the_next_fire_times_in_iso_8601():
    with time_machine.travel(datetime(2026, 10, 24, 12, tzinfo=UTC), tick=False):
        output = run("preview", "30 2 * * *", "--tz", "Europe/Berlin", "-n", "3")

    assert output.splitlines() == [
        "At 02:30 every day, Europe/Berlin",
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["preview", "30 2 * *"],
            "Cron expression '30 2 * *' has 4 field(s); a crontab expression has 5",
        ),
        (["preview", "61 * * * *"], "minute field '61': 61 is out of range 0-59"),
        (
            ["preview", "0 2 * * *", "--tz", "Mars/Base"],
            "--tz 'Mars/Base' is not a known time zone",
        ),
        (["preview", "0 2 * * *", "-n", "0"], "-n must be 1 or more"),
    ],
)
def test_preview_explains_bad_input(args, message):
    assert message in str(fails(*args))


def test_preview_blames_the_expression_not_the_time_zone_for_a_number_of_thousands_of_digits():
    error = str(fails("preview", "1" * 5000 + " * * * *", "--tz", "Europe/Berlin"))

    assert error.startswith("Cron expression '111")
    assert "minute field" in error and "a number of 5000 digits; use at most 4" in error
    assert "--tz" not in error
    assert max(len(quote) for quote in error.split("'")[1::2]) <= 80


def test_preview_blames_the_time_zone_only_when_it_is_unknown():
    error = str(fails("preview", "0 2 * * *", "--tz", "Europe/" + "x" * 500))

    assert error.startswith("--tz 'Europe/xxx") and "is not a known time zone" in error
    assert len(error) < 200


@pytest.mark.parametrize("field", [{"cron": "61 * * * *"}, {"run_at": "Christmas"}])
def test_sync_and_backfill_refuse_a_malformed_declaration_in_one_line(settings, field):
    settings.SCHEDULER_JOBS = [
        {"id": "broken", "func": "tests.scheduler.test_command.add", **field}
    ]

    for args in (["sync"], ["backfill", "broken", "--from", "2026-11-01", "--to", "2026-11-02"]):
        error = fails(*args)
        assert "error(s) in the job declarations; run `python manage.py check`" in str(error)
        assert "Job 'broken'" in str(error)
    assert not DjangoJob.objects.filter(id="broken").exists()
