"""`manage.py scheduler`: sync, pause and resume from any process."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django_apscheduler.models import DjangoJob

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def declared(settings):
    settings.SCHEDULER_JOBS = [
        {"id": "heartbeat", "func": "tests.e2e_jobs.record_fire", "interval_seconds": 60},
        {"id": "report", "func": "tests.e2e_jobs.record_fire", "interval_seconds": 3600},
    ]


def run(*args):
    from io import StringIO

    out = StringIO()
    call_command("scheduler", *args, stdout=out)
    return out.getvalue()


def test_sync_dry_run_says_what_it_would_do_and_writes_nothing():
    output = run("sync", "--dry-run")

    assert "Would create: heartbeat" in output and "Would create: report" in output
    assert "2 change(s) found; nothing written." in output
    assert not DjangoJob.objects.exists()


def test_sync_creates_jobs_and_a_second_run_changes_nothing(settings):
    assert "Created: heartbeat" in run("sync")
    assert "Nothing to change." in run("sync")

    settings.SCHEDULER_JOBS = settings.SCHEDULER_JOBS[:1]
    output = run("sync")
    assert "Removed: report" in output and "1 change(s) made." in output
    assert list(DjangoJob.objects.values_list("id", flat=True)) == ["heartbeat"]


def test_pause_and_resume_a_job():
    run("sync")

    assert "Paused heartbeat" in run("pause", "heartbeat")
    assert DjangoJob.objects.get(id="heartbeat").next_run_time is None

    assert "Resumed heartbeat; next run" in run("resume", "heartbeat")
    assert DjangoJob.objects.get(id="heartbeat").next_run_time is not None


def test_an_unknown_job_is_a_one_line_error_listing_the_jobs():
    run("sync")

    with pytest.raises(
        CommandError, match=r"Unknown job 'hearbeat'. Choose one of: heartbeat, report."
    ):
        run("pause", "hearbeat")


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
    with pytest.raises(CommandError) as error:
        run(*args)
    assert message in str(error.value)
