"""The scheduler dashboard in the admin (every job at a glance: schedule, state,
next fire, a 30-day strip of its runs, lateness, success rate), who may see
it, what it costs in queries, and the executions list's job column."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.urls import reverse

from crm.scheduler import control, history
from tests import factories

pytestmark = pytest.mark.django_db
DASHBOARD = reverse("admin:django_apscheduler_djangojob_dashboard")
JOBS = reverse("admin:django_apscheduler_djangojob_changelist")
RUNS = reverse("admin:django_apscheduler_djangojobexecution_changelist")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RED, ORANGE, GREEN = "#c62828", "#ef6c00", "#2e7d32"


def add(a, b):
    return a + b


@pytest.fixture(autouse=True)
def jobs(settings):
    settings.SCHEDULER_JOBS = [
        {"id": "heartbeat", "func": "tests.scheduler.test_dashboard.add", "interval_seconds": 60,
         "args": [1, 2]},
        {"id": "nightly", "func": "tests.scheduler.test_dashboard.add", "cron": "0 2 * * *",
         "args": [1, 2]},
    ]  # fmt: skip
    with time_machine.travel(NOW - timedelta(seconds=10), tick=False):
        control.sync("tests")


@pytest.fixture(autouse=True)
def at_noon():
    with time_machine.travel(NOW, tick=False):
        yield


def nightly_runs(days_ago_and_status, late_by=0.5):
    for days_ago, status in days_ago_and_status:
        fire = NOW.replace(hour=2) - timedelta(days=days_ago)
        detail = (
            None if status == history.MISSED else {"started_at": fire + timedelta(seconds=late_by)}
        )
        factories.job_run(
            "nightly",
            status=status,
            run_time=fire,
            duration=None if status == history.MISSED else Decimal("1.50"),
            detail=detail,
        )


def row_of(page: str, job_id: str) -> str:
    match = re.search(rf'<tr class="job-row" data-job="{job_id}">(.*?)</tr>', page, re.S)
    assert match, f"no row for {job_id}"
    return match.group(1)


def day_bar(row: str, day: str) -> tuple[str, str]:
    """(colour, title) of the strip's bar for `day` (YYYY-MM-DD)."""
    match = re.search(rf'fill="(#\w+)"><title>\w+ {day}: ([^<]*)</title>', row)
    assert match, f"no bar for {day}"
    return match.group(1), match.group(2)


def test_each_job_shows_its_schedule_state_and_next_fire(admin_client):
    page = admin_client.get(DASHBOARD).content.decode()

    nightly = row_of(page, "nightly")
    assert "At 02:00 every day, UTC" in nightly
    assert "2026-11-24 02:00:00 UTC" in nightly
    assert ">ok<" in nightly
    job_page = reverse("admin:django_apscheduler_djangojob_change", args=["nightly"])
    assert f'<a href="{job_page}">nightly</a>' in nightly
    assert "Every 1 minute" in row_of(page, "heartbeat")


def test_the_strip_shows_each_day_of_the_last_30_by_its_worst_outcome(admin_client):
    nightly_runs([(0, history.SUCCEEDED), (1, history.FAILED), (2, history.MISSED)])
    nightly_runs([(31, history.FAILED)])  # outside the window

    row = row_of(admin_client.get(DASHBOARD).content.decode(), "nightly")

    assert row.count("<rect") == 30
    assert day_bar(row, "2026-11-23") == (GREEN, "1 Executed; 1.50 s on average, longest 1.50 s")
    assert day_bar(row, "2026-11-22")[0] == RED
    assert day_bar(row, "2026-11-21") == (ORANGE, "1 Missed!")
    assert day_bar(row, "2026-10-25")[1] == "no runs"
    assert "2026-10-23" not in row


def test_the_success_rate_counts_the_fires_that_should_have_run(admin_client):
    nightly_runs([(0, history.SUCCEEDED), (1, history.SUCCEEDED), (2, history.FAILED)])
    nightly_runs([(3, history.MISSED), (4, history.SKIPPED)])

    row = row_of(admin_client.get(DASHBOARD).content.decode(), "nightly")

    assert "50% of 4" in row


def test_lateness_is_the_p95_of_the_recent_scheduled_runs(admin_client):
    nightly_runs([(days, history.SUCCEEDED) for days in range(1, 20)], late_by=0.25)
    nightly_runs([(0, history.SUCCEEDED)], late_by=9)
    by_hand = NOW - timedelta(hours=1)
    factories.job_run(
        "nightly",
        run_time=by_hand,
        detail={"started_at": by_hand + timedelta(seconds=60), "triggered_by": "admin: a"},
    )

    row = row_of(admin_client.get(DASHBOARD).content.decode(), "nightly")

    assert "9.00 s (19 runs)" in row  # the run by hand does not count


def test_a_job_never_run_shows_dashes_and_an_empty_strip(admin_client):
    row = row_of(admin_client.get(DASHBOARD).content.decode(), "heartbeat")

    assert row.count("no runs") == 30
    assert row.count(">-<") == 2


def test_the_dashboard_costs_the_same_queries_for_many_jobs_as_for_two(
    admin_client, django_assert_num_queries
):
    nightly_runs([(days, history.SUCCEEDED) for days in range(30)])
    with django_assert_num_queries(10) as few:
        admin_client.get(DASHBOARD)
    for number in range(60):
        factories.job_run(f"extra-{number:02}", run_time=NOW - timedelta(days=number % 30))

    with django_assert_num_queries(len(few.captured_queries)):
        page = admin_client.get(DASHBOARD).content.decode()

    assert page.count('class="job-row"') == 64


def test_it_shows_a_page_of_jobs_at_a_time(admin_client):
    for number in range(120):
        factories.stored_job(f"extra-{number:03}")

    first = admin_client.get(DASHBOARD).content.decode()
    second = admin_client.get(DASHBOARD, {"p": 2}).content.decode()

    assert first.count('class="job-row"') == 100 and "page 1 of 2 (124 jobs)" in first
    assert second.count('class="job-row"') == 24 and 'data-job="nightly"' in second


def test_it_is_linked_from_the_admin_index_and_the_jobs_page(admin_client):
    for page in (reverse("admin:index"), JOBS):
        assert f'href="{DASHBOARD}"' in admin_client.get(page).content.decode()


def test_it_needs_the_view_permission_on_jobs(client, django_user_model):
    user = django_user_model.objects.create_user("agent", password="x", is_staff=True)
    client.force_login(user)

    assert client.get(DASHBOARD).status_code == 403
    assert f'href="{DASHBOARD}"' not in client.get(reverse("admin:index")).content.decode()

    user.user_permissions.add(Permission.objects.get(codename="view_djangojob"))
    assert client.get(DASHBOARD).status_code == 200


def test_the_executions_list_names_the_job_by_its_id_linked_to_its_page(admin_client):
    nightly_runs([(0, history.SUCCEEDED)])

    page = admin_client.get(RUNS).content.decode()

    job_page = reverse("admin:django_apscheduler_djangojob_change", args=["nightly"])
    assert f'<td class="field-job_link"><a href="{job_page}">nightly</a></td>' in page
    assert "next run at" not in page
    assert "2026-11-23 02:00:00" in page


def test_the_executions_list_cuts_long_errors_and_keeps_them_whole_on_hover(admin_client):
    long_error = "RuntimeError: " + "the payment gateway said no " * 10
    factories.job_run("nightly", status=history.FAILED, run_time=NOW, exception=long_error)

    page = admin_client.get(RUNS).content.decode()

    assert f'title="{long_error}"' in page
    assert long_error not in page.replace(f'title="{long_error}"', "")
