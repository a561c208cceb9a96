"""Pausing a job until a time, with a note, and skipping only its next fire:
from the command line and the admin, shown in status, JSON and the admin, and
ended by the scheduler itself."""

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.urls import reverse
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from crm.scheduler import control, intake
from crm.scheduler.history import SKIPPED
from crm.scheduler.models import JobPause, SchedulerCommand
from tests.support.processes import wait_until

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
JOBS = reverse("admin:django_apscheduler_djangojob_changelist")


def add(a, b):
    return a + b


@pytest.fixture(autouse=True)
def declared(settings):
    settings.SCHEDULER_JOBS = [
        {"id": "nightly", "func": "tests.scheduler.test_pause_until.add", "cron": "0 2 * * *",
         "args": [1, 2]},
        {"id": "heartbeat", "func": "tests.scheduler.test_pause_until.add",
         "interval_seconds": 60, "args": [1, 2]},
    ]  # fmt: skip
    settings.TIME_ZONE = "UTC"
    with time_machine.travel(NOW, tick=False):
        control.sync("tests")


def run(*args) -> str:
    out = StringIO()
    call_command("scheduler", *args, stdout=out)
    return out.getvalue()


def next_run(job_id: str):
    return DjangoJob.objects.get(id=job_id).next_run_time


def test_a_pause_until_a_time_with_a_note_is_shown_in_status_and_its_json():
    with time_machine.travel(NOW, tick=False):
        said = run("pause", "nightly", "--until", "2026-12-24T08:00", "--note", "db move")
        with pytest.raises(CommandError):  # not healthy: no scheduler is active
            call_command("scheduler", "status", stdout=(text := StringIO()))
        with pytest.raises(CommandError):
            call_command("scheduler", "status", "--json", stdout=(data := StringIO()))

    assert "Paused nightly: paused until 2026-12-24T08:00:00+00:00 in the job store" in said
    assert next_run("nightly") is None
    pause = JobPause.objects.get(job_id="nightly")
    assert (pause.until, pause.note) == (datetime(2026, 12, 24, 8, 0, tzinfo=UTC), "db move")
    assert pause.paused_by.startswith("command line: ")
    assert "  paused     until 2026-12-24T08:00:00+00:00, by command line: " in text.getvalue()
    assert ": db move" in text.getvalue()
    [nightly] = [job for job in json.loads(data.getvalue())["jobs"] if job["id"] == "nightly"]
    assert nightly["pause"]["until"] == "2026-12-24T08:00:00Z"
    assert nightly["pause"]["note"] == "db move"
    assert nightly["paused"] is True


def test_the_scheduler_resumes_a_job_when_its_pause_ends_and_says_who_did():
    with time_machine.travel(NOW, tick=False):
        control.pause_job("nightly", "admin: anna", until=NOW + timedelta(hours=1))
        control.pause_job("heartbeat", "admin: anna")  # until resumed

    early, on_time = NOW + timedelta(minutes=59), NOW + timedelta(hours=1)
    with time_machine.travel(early, tick=False), control.job_store() as scheduler:
        assert intake.resume_ended_pauses(scheduler) == []
    with time_machine.travel(on_time, tick=False), control.job_store() as scheduler:
        assert intake.resume_ended_pauses(scheduler) == ["nightly"]

    assert next_run("nightly") == datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    assert next_run("heartbeat") is None
    assert list(JobPause.objects.values_list("job_id", flat=True)) == ["heartbeat"]
    resumed = SchedulerCommand.objects.get(action="resume")
    assert resumed.succeeded
    assert resumed.requested_by == "the pause until 2026-12-01T10:00:00+00:00 by admin: anna"


@pytest.mark.django_db(transaction=True)
def test_an_active_scheduler_ends_a_pause_on_time(active_scheduler):
    until = datetime.now(UTC) + timedelta(seconds=2)
    control.pause_job("heartbeat", "tests", until=until)
    assert next_run("heartbeat") is None

    wait_until(
        lambda: next_run("heartbeat") is not None and not JobPause.objects.exists(), timeout=10
    )

    assert datetime.now(UTC) >= until


def test_resuming_by_hand_ends_the_pause_and_its_note():
    control.pause_job("nightly", "tests", until=NOW + timedelta(days=400), note="why")

    run("resume", "nightly")

    assert next_run("nightly") is not None and not JobPause.objects.exists()


@pytest.mark.parametrize(
    ("until", "message"),
    [
        ("2020-01-01T00:00", "is not in the future"),
        ("next tuesday", "'next tuesday' is not an ISO 8601 time; write e.g. 2026-12-24T08:00"),
        ("2026-13-01", "is not an ISO 8601 time"),
    ],
)
def test_a_bad_until_is_one_line_naming_the_option(until, message):
    with pytest.raises(CommandError) as error:
        run("pause", "nightly", "--until", until)

    assert "--until" in str(error.value) and message in str(error.value)
    assert next_run("nightly") is not None and not SchedulerCommand.objects.exists()


def test_a_note_too_long_is_refused_before_anything_changes():
    with pytest.raises(CommandError, match="--note is 501 characters; at most 500 fit"):
        run("pause", "nightly", "--note", "x" * 501)

    assert next_run("nightly") is not None


def test_skip_skips_only_the_next_fire_and_records_who_skipped_it():
    with time_machine.travel(NOW, tick=False):
        said = run("skip", "nightly")

    skipped = DjangoJobExecution.objects.get(job_id="nightly")
    assert (skipped.run_time, skipped.status) == (datetime(2026, 12, 2, 2, 0, tzinfo=UTC), SKIPPED)
    assert skipped.exception.startswith("Skipped by command line: ")
    assert next_run("nightly") == datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
    assert "Skipped nightly: skipped the fire of 2026-12-02T02:00:00+00:00" in said


def test_a_paused_job_has_no_next_fire_to_skip():
    control.pause_job("nightly", "tests")

    with pytest.raises(CommandError, match=r"Not skipped: nightly is paused; no fire is next\."):
        run("skip", "nightly")


def test_skip_of_an_unknown_job_names_the_choices():
    with pytest.raises(CommandError, match=r"Unknown job 'nope'\. Choose one of: "):
        run("skip", "nope")


def messages_of(response) -> list[tuple[str, str]]:
    return [(message.level_tag, message.message) for message in response.context["messages"]]


def test_the_admin_pauses_until_a_time_with_a_note_and_shows_it(admin_client):
    form = {
        "action": "pause",
        "_selected_action": ["nightly", "heartbeat"],
        "until": "2026-12-24 08:00",
        "note": "moving the database",
    }
    with time_machine.travel(NOW, tick=False):
        response = admin_client.post(JOBS, form, follow=True)
        page = admin_client.get(JOBS).content.decode()

    assert messages_of(response) == [
        ("success", "Paused: heartbeat, nightly (in the job store; no scheduler is active).")
    ]
    assert set(JobPause.objects.values_list("job_id", "until", "note", "paused_by")) == {
        (job, datetime(2026, 12, 24, 8, 0, tzinfo=UTC), "moving the database", "admin: admin")
        for job in ("heartbeat", "nightly")
    }
    assert "paused until 2026-12-24 08:00 by admin: admin: moving the database" in page


def test_the_admin_refuses_a_pause_until_a_past_time_and_pauses_nothing(admin_client):
    form = {"action": "pause", "_selected_action": ["nightly"], "until": "2020-01-01 00:00"}

    response = admin_client.post(JOBS, form, follow=True)

    assert messages_of(response) == [
        ("error", "Nothing paused: the pause's end must be in the future.")
    ]
    assert next_run("nightly") is not None


def test_the_admin_skips_the_next_fire_of_the_selected_jobs(admin_client):
    form = {"action": "skip", "_selected_action": ["nightly"]}
    with time_machine.travel(NOW, tick=False):
        response = admin_client.post(JOBS, form, follow=True)

    assert messages_of(response) == [
        ("success", "Skipped: nightly (in the job store; no scheduler is active).")
    ]
    assert next_run("nightly") == datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
    assert DjangoJobExecution.objects.get(job_id="nightly").exception == "Skipped by admin: admin."
