"""The scheduler in the Django admin: the jobs page (schedule in words, next and
last run, success rate, recent-runs chart, state), its actions with their own
permissions, the executions page, and the banner."""

import html
import io
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from crm.scheduler import control, history
from crm.scheduler.lease import Lease
from crm.scheduler.models import SchedulerCommand
from crm.scheduler.runner import LEASE_NAME
from tests import factories

pytestmark = pytest.mark.django_db
JOBS = reverse("admin:django_apscheduler_djangojob_changelist")
RUNS = reverse("admin:django_apscheduler_djangojobexecution_changelist")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def add(a, b):
    return a + b


@pytest.fixture(autouse=True)
def jobs(settings):
    settings.SCHEDULER_JOBS = [
        {"id": "heartbeat", "func": "tests.scheduler.test_admin.add", "interval_seconds": 60,
         "args": [1, 2], "misfire_grace_seconds": 30},
        {"id": "nightly", "func": "tests.scheduler.test_admin.add", "cron": "0 2 * * *",
         "args": [1, 2], "timezone": "Europe/Warsaw"},
    ]  # fmt: skip
    with time_machine.travel(NOW - timedelta(seconds=10), tick=False):
        control.sync("tests")


@pytest.fixture
def staff(django_user_model, client):
    user = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_djangojob"),
        Permission.objects.get(codename="view_djangojobexecution"),
    )
    client.force_login(user)
    return user


def runs(job_id, statuses, start=NOW - timedelta(days=1), **detail):
    rows = []
    for index, status in enumerate(statuses):
        when = start + timedelta(minutes=index)
        started = {"started_at": when + timedelta(seconds=2), "pid": 42}
        rows.append(
            factories.job_run(
                job_id,
                status=status,
                run_time=when,
                duration=Decimal(index + 1),
                detail={**started, **detail},
            )
        )
    return rows


def test_the_jobs_page_shows_schedule_next_and_last_run_success_rate_and_chart(admin_client):
    runs("nightly", [history.SUCCEEDED] * 3 + [history.FAILED])

    with time_machine.travel(NOW, tick=False):
        page = admin_client.get(JOBS).content.decode()

    assert "At 02:00 every day, Europe/Warsaw" in page and "<code>0 2 * * *</code>" in page
    assert "Every 1 minute" in page
    assert "2026-11-24 02:00:00 CET" in page or "2026-11-24 01:00:00" in page
    assert "75% of 4" in page
    assert page.count("<rect ") == 4
    assert "failing" in page


def test_a_job_page_shows_its_state_in_the_shape_of_scheduler_status_json(admin_client):
    runs("nightly", [history.SUCCEEDED, history.FAILED])
    page_url = reverse("admin:django_apscheduler_djangojob_change", args=["nightly"])

    with time_machine.travel(NOW, tick=False):
        page = admin_client.get(page_url).content.decode()
        out = io.StringIO()
        with pytest.raises(CommandError):  # unhealthy: nightly is failing
            call_command("scheduler", "status", "--json", stdout=out)

    shown = json.loads(html.unescape(re.search(r"<pre>(.*?)</pre>", page, re.S).group(1)))
    [listed] = [job for job in json.loads(out.getvalue())["jobs"] if job["id"] == "nightly"]
    assert shown == listed
    assert shown["failing"] is True and shown["last_run"]["status"] == history.FAILED


def test_a_late_job_is_flagged_on_the_jobs_page_and_in_the_banner(admin_client):
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        page = admin_client.get(JOBS).content.decode()

    assert "late" in page
    assert "Late: heartbeat" in page
    assert "No scheduler is active" in page


def test_the_banner_names_the_active_scheduler_on_the_admin_index(admin_client):
    assert Lease(LEASE_NAME, timedelta(seconds=30)).acquire()

    page = admin_client.get(reverse("admin:index")).content.decode()

    assert "Scheduler active on host" in page and "No scheduler is active" not in page


def test_the_banner_stays_off_the_ticket_pages(admin_client):
    page = admin_client.get(reverse("admin:crm_ticket_changelist")).content.decode()

    assert "No scheduler is active" not in page


def test_run_now_is_handed_to_the_scheduler_without_waiting(admin_client, admin_user):
    response = admin_client.post(
        JOBS, {"action": "run_now", "_selected_action": ["nightly"]}, follow=True
    )

    assert "Run requested: nightly" in response.content.decode()
    command = SchedulerCommand.objects.get()
    assert (command.action, command.job_id, command.taken_at) == ("run", "nightly", None)
    assert command.requested_by == f"admin: {admin_user.username}"


def test_pause_and_resume_are_recorded_with_who_did_them(admin_client):
    admin_client.post(JOBS, {"action": "pause", "_selected_action": ["heartbeat"]})
    assert DjangoJob.objects.get(id="heartbeat").next_run_time is None

    admin_client.post(JOBS, {"action": "resume", "_selected_action": ["heartbeat"]})
    assert DjangoJob.objects.get(id="heartbeat").next_run_time is not None

    assert list(SchedulerCommand.objects.values_list("action", "requested_by", "succeeded")) == [
        ("pause", "admin: admin", True),
        ("resume", "admin: admin", True),
    ]


def messages_of(response) -> list[tuple[str, str]]:
    return [(message.level_tag, message.message) for message in response.context["messages"]]


def test_pausing_several_jobs_with_a_scheduler_active_returns_at_once_with_one_message(
    admin_client,
):
    # Active elsewhere, and not taking commands now: nothing here may wait for it.
    assert Lease(LEASE_NAME, timedelta(seconds=30)).acquire()

    response = admin_client.post(
        JOBS, {"action": "pause", "_selected_action": ["nightly", "heartbeat"]}, follow=True
    )

    assert messages_of(response) == [
        (
            "success",
            "Pause of heartbeat, nightly requested; the active scheduler applies it "
            "within seconds.",
        )
    ]
    queued = SchedulerCommand.objects.order_by("job_id")
    assert [(c.action, c.job_id, c.finished_at) for c in queued] == [
        ("pause", "heartbeat", None),
        ("pause", "nightly", None),
    ]


def test_with_no_scheduler_active_an_action_on_several_jobs_is_done_in_one_message(
    admin_client,
):
    response = admin_client.post(
        JOBS, {"action": "pause", "_selected_action": ["nightly", "heartbeat"]}, follow=True
    )

    assert messages_of(response) == [
        ("success", "Paused: heartbeat, nightly (in the job store; no scheduler is active).")
    ]
    selected = DjangoJob.objects.filter(id__in=["nightly", "heartbeat"])
    assert list(selected.values_list("next_run_time", flat=True)) == [None, None]


def test_a_job_that_cannot_be_resumed_is_named_in_the_one_message(admin_client, settings):
    heartbeat, *others = settings.SCHEDULER_JOBS
    settings.SCHEDULER_JOBS = [{**heartbeat, "enabled": False}, *others]
    control.sync("tests")
    admin_client.post(JOBS, {"action": "pause", "_selected_action": ["nightly"]}, follow=True)

    response = admin_client.post(
        JOBS, {"action": "resume", "_selected_action": ["nightly", "heartbeat"]}, follow=True
    )

    [(level, message)] = messages_of(response)
    assert level == "warning"
    assert message.startswith("Resumed: nightly (in the job store; no scheduler is active).")
    assert "heartbeat: heartbeat is disabled, so it cannot be resumed." in message
    assert DjangoJob.objects.get(id="nightly").next_run_time is not None


def test_a_staff_user_without_the_permissions_gets_no_actions(client, staff):
    page = client.get(JOBS).content.decode()
    assert 'name="action"' not in page

    response = client.post(JOBS, {"action": "pause", "_selected_action": ["heartbeat"]})

    assert response.status_code == 200
    assert DjangoJob.objects.get(id="heartbeat").next_run_time is not None
    assert not SchedulerCommand.objects.exists()


def test_each_action_needs_its_own_permission(client, staff):
    staff.user_permissions.add(Permission.objects.get(codename="pause_djangojob"))

    page = client.get(JOBS).content.decode()

    assert 'value="pause"' in page
    assert 'value="resume"' not in page and 'value="run_now"' not in page


def test_the_executions_page_shows_lateness_duration_and_who_triggered_it(admin_client):
    runs("nightly", [history.SUCCEEDED], triggered_by="admin: alice")

    page = admin_client.get(RUNS).content.decode()

    assert "admin: alice" in page and "2.0 s" in page and "1.00 s" in page


def test_the_executions_page_filters_by_job_status_and_date(admin_client):
    runs("nightly", [history.SUCCEEDED, history.FAILED])
    runs("heartbeat", [history.FAILED], start=NOW - timedelta(days=30))

    def listed(**query):
        return admin_client.get(RUNS, query).context["cl"].result_count

    assert listed() == 3
    assert listed(job__id__exact="nightly") == 2
    assert listed(status=history.FAILED) == 2
    assert (
        listed(run_time__gte="2026-11-20 00:00:00+00:00", run_time__lt="2026-11-24 00:00:00+00:00")
        == 2
    )


def test_an_execution_shows_its_error_and_traceback(admin_client):
    failed = runs("nightly", [history.FAILED])[0]
    DjangoJobExecution.objects.filter(pk=failed.pk).update(
        exception="ZeroDivisionError: the job broke", traceback="Traceback (most recent call)"
    )

    page = admin_client.get(
        reverse("admin:django_apscheduler_djangojobexecution_change", args=[failed.pk])
    ).content.decode()

    assert "ZeroDivisionError: the job broke" in page and "Traceback (most recent call)" in page


def test_a_run_without_details_shows_dashes_not_none(admin_client):
    bare = factories.job_run("nightly", status=history.SUCCEEDED, run_time=NOW)

    page = admin_client.get(
        reverse("admin:django_apscheduler_djangojobexecution_change", args=[bare.pk])
    ).content.decode()

    assert '<div class="readonly">-</div>' in page
    assert '<div class="readonly">None</div>' not in page


@pytest.mark.parametrize("url", [JOBS, RUNS])
def test_the_scheduler_pages_take_under_ten_queries(
    admin_client, django_assert_max_num_queries, url
):
    runs("nightly", [history.SUCCEEDED] * 30)
    runs("heartbeat", [history.FAILED] * 30)

    with django_assert_max_num_queries(9):
        assert admin_client.get(url).status_code == 200


def test_the_jobs_page_and_a_jobs_page_work_with_thousands_of_jobs(admin_client):
    # Judging every stored job's recent runs at once made SQLite refuse the
    # query ("Expression tree is too large") from about 1,000 jobs on.
    job_ids = [f"many-{number:04}" for number in range(1200)]
    DjangoJob.objects.bulk_create(DjangoJob(id=job_id, job_state=b"") for job_id in job_ids)
    DjangoJobExecution.objects.bulk_create(
        DjangoJobExecution(job_id=job_id, status=history.SUCCEEDED, run_time=NOW)
        for job_id in job_ids
    )
    job_page = reverse("admin:django_apscheduler_djangojob_change", args=["many-0042"])

    assert admin_client.get(JOBS).status_code == 200
    assert "many-0042" in admin_client.get(job_page).content.decode()
