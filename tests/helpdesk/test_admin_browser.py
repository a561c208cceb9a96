"""The scheduler's admin pages in a real browser: Debian's Chromium driven by
Selenium against a live server whose process holds the active scheduler. An
admin logs in through the form, runs a job now and sees its execution appear,
pauses a job and resumes it; a staff user who may only view is offered no actions.
Screenshots go to TEST_ARTIFACTS_DIR (default tmp/test-artifacts)."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django_apscheduler.models import DjangoJob, DjangoJobExecution
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from crm.scheduler import control, history
from tests.support.browser import JOBS, WAIT_SECONDS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
RUNS = reverse("admin:django_apscheduler_djangojobexecution_changelist")
SCHEDULED = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def add(a, b):
    return {"sum": a + b}


@pytest.fixture(autouse=True)
def declared(settings):
    # Neither fires during the test: runs come only from "Run now".
    add = "tests.helpdesk.test_admin_browser.add"
    settings.SCHEDULER_JOBS = [
        {"id": "browser_report", "func": add, "cron": "0 2 * * *", "args": [2, 3]},
        {"id": "browser_digest", "func": add, "interval_seconds": 3600, "args": [1, 1]},
    ]
    # The live server speaks plain HTTP; with DEBUG off the cookies would be HTTPS-only.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False


def test_an_admin_runs_a_job_now_and_sees_its_execution(active_scheduler, open_admin, admin_user):
    admin = open_admin()
    admin.log_in("admin", "password")

    admin.open(JOBS)
    assert "Scheduler active on host" in admin.text()
    assert {"browser_report", "browser_digest"} <= {
        link.text for link in admin.driver.find_elements(By.CSS_SELECTOR, "#result_list th a")
    }
    offered = Select(admin.driver.find_element(By.NAME, "action")).options
    assert {"run_now", "pause", "resume"} <= {option.get_attribute("value") for option in offered}
    admin.screenshot("jobs")

    messages = admin.apply_action("run_now", "browser_report")
    assert any(message.startswith("Run requested: browser_report") for message in messages)

    def succeeded_rows():
        rows = admin.driver.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
        return [
            row
            for row in rows
            if row.find_element(By.CSS_SELECTOR, "td.field-status_badge").text == history.SUCCEEDED
        ]

    rows = admin.wait_for_page(
        f"{RUNS}?job__id__exact=browser_report",
        succeeded_rows,
        message="the run of browser_report did not show as succeeded in the executions list",
    )
    assert len(rows) == 1
    assert rows[0].find_element(By.CSS_SELECTOR, ".field-triggered_by").text == "admin: admin"
    admin.screenshot("executions")
    execution = DjangoJobExecution.objects.get(job_id="browser_report")
    assert execution.status == history.SUCCEEDED

    rows[0].find_element(By.CSS_SELECTOR, "th a").click()
    WebDriverWait(admin.driver, WAIT_SECONDS).until(
        lambda driver: (
            f"/{execution.pk}/change/" in driver.current_url
            and driver.find_elements(By.CSS_SELECTOR, ".field-status")
        )
    )
    assert admin.field("job").startswith("browser_report")
    assert admin.field("status") == history.SUCCEEDED
    assert admin.field("triggered_by") == "admin: admin"
    assert admin.field("result") == "{'sum': 5}"
    admin.screenshot("execution")


def test_an_admin_pauses_a_job_and_resumes_it(active_scheduler, open_admin, admin_user):
    admin = open_admin()
    admin.log_in("admin", "password")

    # Either the scheduler confirms at once, or the page says it will apply it.
    messages = admin.apply_action("pause", "browser_digest")
    assert any(
        message.startswith(("Paused: browser_digest", "Pause of browser_digest requested"))
        for message in messages
    ), messages
    admin.wait_for_page(
        JOBS,
        lambda: admin.next_run_shown("browser_digest") == "paused",
        message="browser_digest was not shown paused",
    )
    assert DjangoJob.objects.get(id="browser_digest").next_run_time is None
    assert SCHEDULED.match(admin.next_run_shown("browser_report"))
    admin.screenshot("job-paused")

    messages = admin.apply_action("resume", "browser_digest")
    assert any(
        message.startswith(("Resumed: browser_digest", "Resume of browser_digest requested"))
        for message in messages
    ), messages
    admin.wait_for_page(
        JOBS,
        lambda: SCHEDULED.match(admin.next_run_shown("browser_digest")),
        message="browser_digest was not shown scheduled again",
    )
    assert DjangoJob.objects.get(id="browser_digest").next_run_time is not None


def test_a_staff_user_who_may_only_view_jobs_is_offered_no_actions(open_admin, django_user_model):
    control.sync("tests")  # no scheduler needed: the jobs only have to be in the store
    viewer = django_user_model.objects.create_user("viewer", password="viewer-pass", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_djangojob"),
        Permission.objects.get(codename="view_djangojobexecution"),
    )
    admin = open_admin()
    admin.log_in("viewer", "viewer-pass")

    admin.open(JOBS)

    assert "browser_report" in admin.text()
    assert admin.driver.find_elements(By.NAME, "action") == []
    assert admin.driver.find_elements(By.NAME, "_selected_action") == []
    admin.screenshot("jobs-viewer")
