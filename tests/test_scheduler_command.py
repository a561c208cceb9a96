"""`manage.py scheduler`: sync, pause and resume from any process."""

import pytest
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
