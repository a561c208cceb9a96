"""Jobs over the API: their state in the scheduler's one JSON shape, and run
now, pause (until, note) and resume through the same path as the admin's."""

import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django_apscheduler.models import DjangoJob

from crm.scheduler import control, history
from crm.scheduler.lease import Lease
from crm.scheduler.models import AuditEntry, JobPause, SchedulerCommand
from crm.scheduler.runner import LEASE_NAME
from tests import factories
from tests.api.conftest import NOW

pytestmark = pytest.mark.django_db


def test_the_jobs_are_listed_as_scheduler_status_json_gives_them(viewer):
    factories.job_run("nightly", status=history.FAILED, run_time=NOW - timedelta(hours=3),
                      duration=Decimal("1.25"), exception="boom", detail={})  # fmt: skip

    with time_machine.travel(NOW, tick=False):
        listed = viewer.get("/api/v1/jobs/").json()["results"]
        out = io.StringIO()
        with pytest.raises(CommandError):  # unhealthy: nightly is failing
            call_command("scheduler", "status", "--json", stdout=out)

    assert listed == json.loads(out.getvalue())["jobs"]
    nightly = next(job for job in listed if job["id"] == "nightly")
    assert nightly["failing"] is True and nightly["last_run"]["error"] == "boom"


def test_one_job_is_read_by_its_id(viewer):
    job = viewer.get("/api/v1/jobs/heartbeat/").json()

    assert (job["id"], job["schedule"], job["paused"]) == ("heartbeat", "every 60 s", False)


def test_an_unknown_job_is_404_naming_it(viewer):
    response = viewer.get("/api/v1/jobs/nightly-typo/")

    assert response.status_code == 404
    assert response.json() == {"detail": "No job 'nightly-typo'; GET /api/v1/jobs/ lists the jobs."}


def test_run_now_is_queued_for_the_scheduler_and_answered_202(operator):
    response = operator.post("/api/v1/jobs/nightly/run/")

    command = SchedulerCommand.objects.get()
    assert response.status_code == 202
    assert response.json() == {
        "action": "run",
        "job": "nightly",
        "state": "queued",
        "message": "run requested; the active scheduler carries it out within seconds",
        "command": command.pk,
    }
    assert (command.action, command.requested_by, command.taken_at) == (
        "run", "api: operator", None
    )  # fmt: skip


def test_a_pause_with_an_end_and_a_note_is_recorded_with_who_asked(operator):
    until = NOW + timedelta(days=1)

    with time_machine.travel(NOW, tick=False):
        response = operator.post(
            "/api/v1/jobs/nightly/pause/",
            {"until": "2026-11-24T12:00:00Z", "note": "moving the database"},
            format="json",
        )

    assert response.status_code == 200  # no scheduler is active: done here
    assert response.json()["state"] == "done"
    assert DjangoJob.objects.get(id="nightly").next_run_time is None
    pause = JobPause.objects.get(job_id="nightly")
    assert (pause.paused_by, pause.until, pause.note) == (
        "api: operator", until, "moving the database"
    )  # fmt: skip
    job = operator.get("/api/v1/jobs/nightly/").json()
    assert job["pause"]["note"] == "moving the database"
    entry = AuditEntry.objects.latest("id")
    assert (entry.source, entry.action, entry.job_id) == (AuditEntry.Source.API, "pause", "nightly")
    assert entry.requested_by == "api: operator"


def test_with_a_scheduler_active_a_pause_is_queued_and_answered_202(operator):
    assert Lease(LEASE_NAME, timedelta(seconds=30)).acquire()

    response = operator.post("/api/v1/jobs/nightly/pause/")

    assert response.status_code == 202
    assert response.json()["state"] == "queued"
    assert SchedulerCommand.objects.get().finished_at is None


def test_resume_ends_a_pause(operator):
    operator.post("/api/v1/jobs/heartbeat/pause/")

    response = operator.post("/api/v1/jobs/heartbeat/resume/")

    assert response.status_code == 200
    assert DjangoJob.objects.get(id="heartbeat").next_run_time is not None
    assert list(SchedulerCommand.objects.values_list("action", "requested_by")) == [
        ("pause", "api: operator"),
        ("resume", "api: operator"),
    ]


def test_a_job_that_cannot_be_resumed_is_409_saying_why(operator, settings):
    heartbeat, *others = settings.SCHEDULER_JOBS
    settings.SCHEDULER_JOBS = [{**heartbeat, "enabled": False}, *others]
    control.sync("tests")

    response = operator.post("/api/v1/jobs/heartbeat/resume/")

    assert response.status_code == 409
    assert response.json()["state"] == "failed"
    assert "heartbeat is disabled, so it cannot be resumed" in response.json()["message"]


@pytest.mark.parametrize("action", ["run", "pause", "resume"])
def test_an_action_on_an_unknown_job_is_404_naming_the_known_ones(operator, action):
    response = operator.post(f"/api/v1/jobs/nope/{action}/")

    assert response.status_code == 404
    assert response.json()["detail"].startswith("Unknown job 'nope'. Choose one of:")
    assert "nightly" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"until": "2026-11-23T11:00:00Z"}, "until", "The pause's end must be in the future"),
        ({"until": "tomorrow"}, "until", "Datetime has wrong format."),
        ({"note": "x" * 501}, "note", "Ensure this field has no more than 500 characters."),
        ({"untill": "2026-11-24T12:00:00Z"}, "untill", "Not a field of this request; it "
         "takes until, note."),
    ],
)  # fmt: skip
def test_a_bad_pause_is_400_naming_the_field_and_changes_nothing(operator, body, field, message):
    with time_machine.travel(NOW, tick=False):
        response = operator.post("/api/v1/jobs/nightly/pause/", body, format="json")

    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{field}: {message}")
    assert response.json()["errors"][field][0].startswith(message)
    assert DjangoJob.objects.get(id="nightly").next_run_time is not None
    assert not SchedulerCommand.objects.exists()


@pytest.mark.parametrize(
    "body", [{"func": "os.system", "args": ["rm -rf /"]}, {"code": "print(1)"}]
)
def test_no_action_takes_a_function_or_code(operator, body):
    response = operator.post("/api/v1/jobs/nightly/run/", body, format="json")

    assert response.status_code == 400
    assert "Not a field of this request; it takes nothing." in response.json()["detail"]
    assert not SchedulerCommand.objects.exists()


def test_a_body_that_is_not_json_is_400_or_415(operator):
    malformed = operator.post("/api/v1/jobs/nightly/pause/", "{", content_type="application/json")
    form = operator.post("/api/v1/jobs/nightly/pause/", {"note": "x"})  # a form, not JSON

    assert malformed.status_code == 400 and "JSON parse error" in malformed.json()["detail"]
    assert form.status_code == 415 and "multipart/form-data" in form.json()["detail"]


def test_each_action_is_in_the_audit_trail_as_from_the_api(operator):
    for action in ("pause", "resume", "run"):
        operator.post(f"/api/v1/jobs/heartbeat/{action}/")

    entries = AuditEntry.objects.filter(source=AuditEntry.Source.API).order_by("id")
    assert [(e.source, e.action, e.job_id, e.requested_by) for e in entries] == [
        (AuditEntry.Source.API, action, "heartbeat", "api: operator")
        for action in ("pause", "resume", "run")
    ]
    assert entries[0].final_succeeded is True
