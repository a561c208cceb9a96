"""The audit trail: every run now, pause, resume, skip, backfill and sync, from
the admin, the command line or the API (control.operate and the other entry
points with source="api"), recorded with who, from where, what, when and how
it ended, and listed read-only in the admin."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from crm.scheduler import control, intake
from crm.scheduler.lease import Lease
from crm.scheduler.models import AuditEntry, JobPause
from crm.scheduler.runner import LEASE_NAME

pytestmark = pytest.mark.django_db
JOBS = reverse("admin:django_apscheduler_djangojob_changelist")
TRAIL = reverse("admin:crm_auditentry_changelist")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def add(a, b):
    return a + b


def explode():
    raise ZeroDivisionError("the job broke")


def report(fire_time):
    return fire_time.isoformat()


@pytest.fixture(autouse=True)
def declared(settings):
    settings.TIME_ZONE = "UTC"
    settings.SCHEDULER_JOBS = [
        {"id": "heartbeat", "func": "tests.scheduler.test_audit.add", "interval_seconds": 60,
         "args": [1, 2]},
        {"id": "broken", "func": "tests.scheduler.test_audit.explode", "cron": "0 6 * * *"},
        {"id": "report", "func": "tests.scheduler.test_audit.report", "cron": "0 2 * * *",
         "fire_time_kwarg": "fire_time"},
    ]  # fmt: skip
    control.sync("tests")
    AuditEntry.objects.all().delete()  # the setup's own sync


def cli(*args) -> str:
    out = StringIO()
    call_command("scheduler", *args, stdout=out)
    return out.getvalue()


def last_entry() -> AuditEntry:
    return AuditEntry.objects.select_related("command").latest("id")


def take_lease():
    lease = Lease(LEASE_NAME, timedelta(seconds=30))
    assert lease.acquire()
    return lease


# from the command line


@pytest.mark.parametrize(
    ("args", "action", "job_id", "details", "outcome"),
    [
        (["pause", "heartbeat", "--until", "2030-01-01T08:00", "--note", "moving the database"],
         "pause", "heartbeat", "until 2030-01-01T08:00:00+00:00; note: moving the database",
         "paused until 2030-01-01T08:00:00+00:00"),
        (["resume", "heartbeat"], "resume", "heartbeat", "", "resumed"),
        (["skip", "heartbeat"], "skip", "heartbeat", "", "skipped the fire of "),
        (["run", "heartbeat", "--here"], "run", "heartbeat", "in this process",
         "run succeeded in this process"),
        (["backfill", "report", "--from", "2025-11-01", "--to", "2025-11-02T23:59"], "backfill",
         "report", "from 2025-11-01T00:00:00+00:00 to 2025-11-02T23:59:00+00:00",
         "ran 2 fires: 2 succeeded (in this process)"),
        (["sync"], "sync", "", "", "nothing to change"),
    ],
)  # fmt: skip
def test_each_action_on_the_command_line_is_recorded_with_who_what_and_outcome(
    args, action, job_id, details, outcome
):
    before = timezone.now()

    cli(*args)

    entry = last_entry()
    assert entry.source == AuditEntry.Source.CLI
    assert entry.requested_by.startswith("command line: ") and "@" in entry.requested_by
    assert (entry.action, entry.job_id, entry.details) == (action, job_id, details)
    assert before <= entry.at <= timezone.now()
    assert entry.final_succeeded is True
    assert entry.final_outcome.startswith(outcome)


def test_a_failed_or_refused_request_is_recorded_with_the_reason():
    with pytest.raises(CommandError):
        cli("run", "broken", "--here")
    with pytest.raises(CommandError):
        cli("pause", "nosuchjob")
    with pytest.raises(CommandError):
        cli("run", "heartbeat")  # no scheduler is active

    failed = AuditEntry.objects.order_by("id")
    assert [(entry.action, entry.job_id, entry.final_succeeded) for entry in failed] == [
        ("run", "broken", False),
        ("pause", "nosuchjob", False),
        ("run", "heartbeat", False),
    ]
    assert failed[0].final_outcome == "ZeroDivisionError: the job broke"
    assert failed[1].final_outcome.startswith("Unknown job 'nosuchjob'. Choose one of:")
    assert failed[2].final_outcome.startswith("No scheduler is active to run heartbeat.")


def test_dry_runs_change_nothing_and_are_not_recorded():
    cli("sync", "--dry-run")
    cli("backfill", "report", "--from", "2025-11-01", "--to", "2025-11-02", "--dry-run")

    assert not AuditEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_run_carried_out_by_the_active_scheduler_ends_as_its_command(active_scheduler):
    cli("run", "heartbeat")

    entry = last_entry()
    assert entry.command.execution.job_id == "heartbeat"
    assert (entry.final_succeeded, entry.final_outcome) == (True, "run succeeded")


# from the admin


def test_each_admin_action_is_recorded_as_the_admin_user(admin_client):
    for action in ("pause", "resume", "skip"):
        admin_client.post(JOBS, {"action": action, "_selected_action": ["heartbeat", "report"]})

    entries = AuditEntry.objects.order_by("id")
    assert [(entry.action, entry.job_id) for entry in entries] == [
        ("pause", "heartbeat"), ("pause", "report"), ("resume", "heartbeat"),
        ("resume", "report"), ("skip", "heartbeat"), ("skip", "report"),
    ]  # fmt: skip
    assert {(entry.source, entry.requested_by) for entry in entries} == {("admin", "admin: admin")}
    assert all(entry.final_succeeded for entry in entries)


def test_an_admin_run_now_is_pending_until_the_active_scheduler_carries_it_out(admin_client):
    take_lease()  # a scheduler is active elsewhere

    admin_client.post(JOBS, {"action": "run_now", "_selected_action": ["heartbeat"]})

    entry = last_entry()
    assert (entry.source, entry.action, entry.job_id) == ("admin", "run", "heartbeat")
    assert (entry.final_succeeded, entry.final_outcome) == (None, "queued for the active scheduler")


def test_an_admin_pause_ends_as_the_active_scheduler_carried_it_out(admin_client):
    take_lease()
    admin_client.post(JOBS, {"action": "pause", "_selected_action": ["heartbeat"]})

    with control.job_store() as scheduler:  # what the active scheduler does each second
        intake.apply_pending(scheduler)

    assert (last_entry().final_succeeded, last_entry().final_outcome) == (True, "paused")


def test_an_admin_backfill_is_recorded_when_confirmed_not_when_planned(admin_client):
    page = reverse("admin:django_apscheduler_djangojob_backfill", args=["report"])
    data = {"start": "2025-11-01 00:00", "end": "2025-11-02 23:59"}

    admin_client.post(page, data)
    assert not AuditEntry.objects.exists()
    admin_client.post(page, {**data, "confirm": "Backfill"})

    entry = last_entry()
    assert (entry.source, entry.requested_by, entry.action) == (
        "admin", "admin: admin (backfill)", "backfill"
    )  # fmt: skip
    assert entry.details == "from 2025-11-01T00:00:00+00:00 to 2025-11-02T23:59:00+00:00"
    assert entry.command.action == "backfill" and entry.final_succeeded is None


# from the API (which calls these entry points with source="api")


def test_requests_through_the_api_entry_points_are_recorded_as_from_the_api():
    control.operate("pause", ["heartbeat"], "api: token ci-deploy", source="api")
    control.sync("api: token ci-deploy", source="api")
    control.request_backfill(
        "report",
        datetime(2025, 11, 1, tzinfo=UTC),
        datetime(2025, 11, 2, tzinfo=UTC),
        "api: token ci-deploy",
        source="api",
    )
    with pytest.raises(control.NoActiveScheduler):
        control.run_now("heartbeat", "api: token ci-deploy", wait=0, source="api")

    entries = AuditEntry.objects.order_by("id")
    assert [(entry.source, entry.action, entry.final_succeeded) for entry in entries] == [
        ("api", "pause", True),
        ("api", "sync", True),
        ("api", "backfill", None),  # queued for a scheduler
        ("api", "run", False),
    ]
    assert {entry.requested_by for entry in entries} == {"api: token ci-deploy"}


def test_a_pause_reaching_its_end_records_the_resume_as_the_schedulers():
    with time_machine.travel(NOW, tick=False):
        control.operate("pause", ["heartbeat"], "tests", until=NOW + timedelta(hours=1))
    with time_machine.travel(NOW + timedelta(hours=2), tick=False), control.job_store() as store:
        intake.resume_ended_pauses(store)

    entry = last_entry()
    assert (entry.source, entry.action, entry.job_id) == ("scheduler", "resume", "heartbeat")
    assert entry.requested_by.startswith("the pause until 2026-11-23T13:00:00+00:00 by tests")
    assert entry.final_outcome == "resumed"
    assert not JobPause.objects.exists()


# the admin's list


def test_the_admin_lists_the_trail_newest_first_with_outcomes(admin_client):
    cli("pause", "heartbeat")
    with pytest.raises(CommandError):
        cli("run", "broken", "--here")

    page = admin_client.get(TRAIL).content.decode()

    assert page.index("ZeroDivisionError: the job broke") < page.index("paused")
    assert "Command line" in page and "failed" in page and "succeeded" in page


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ({"source": "admin"}, ["heartbeat"]),
        ({"source": "cli"}, ["broken", "report"]),
        ({"outcome": "failed"}, ["broken"]),
        ({"outcome": "succeeded"}, ["heartbeat", "report"]),
        ({"action": "pause"}, ["heartbeat", "report"]),
        ({"job_id": "report"}, ["report"]),
    ],
)
def test_the_trail_is_filtered_by_source_outcome_action_and_job(admin_client, query, shown):
    admin_client.post(JOBS, {"action": "pause", "_selected_action": ["heartbeat"]})
    cli("pause", "report")
    with pytest.raises(CommandError):
        cli("run", "broken", "--here")

    response = admin_client.get(TRAIL, query)

    assert sorted(entry.job_id for entry in response.context["cl"].result_list) == shown


def test_the_trail_is_read_only_even_for_a_superuser(admin_client):
    cli("pause", "heartbeat")
    entry = last_entry()

    assert admin_client.get(reverse("admin:crm_auditentry_add")).status_code == 403
    delete = reverse("admin:crm_auditentry_delete", args=[entry.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    change = reverse("admin:crm_auditentry_change", args=[entry.pk])
    admin_client.post(change, {"requested_by": "someone else"})
    entry.refresh_from_db()
    assert entry.requested_by.startswith("command line: ")
    assert AuditEntry.objects.count() == 1


def test_staff_without_the_view_permission_do_not_see_the_trail(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_djangojob"))
    client.force_login(user)

    assert client.get(TRAIL).status_code == 403
