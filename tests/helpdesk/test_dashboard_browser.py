"""The scheduler dashboard and the executions list in a real browser at
1,366 px (a common laptop width), on `make run`'s demo history: everything
fits without scrolling sideways, and the demo runs are there. Screenshots go
to TEST_ARTIFACTS_DIR (default tmp/test-artifacts)."""

import pytest
from django.contrib.admin.utils import quote
from django.urls import reverse
from selenium.webdriver.common.by import By

from crm.demo_history import seed_run_history
from crm.scheduler.declarations import DEMO_JOB_ID

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
DASHBOARD = reverse("admin:django_apscheduler_djangojob_dashboard")
RUNS = reverse("admin:django_apscheduler_djangojobexecution_changelist")
RED, ORANGE = "#c62828", "#ef6c00"
WIDTH, HEIGHT = 1366, 768


@pytest.fixture(autouse=True)
def demo_history(settings):
    settings.DEBUG = settings.DEMO_JOBS = True
    # The live server speaks plain HTTP; with DEBUG off the cookies would be HTTPS-only.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    seed_run_history()


@pytest.fixture
def admin(open_admin, admin_user):
    admin = open_admin()
    admin.driver.set_window_size(WIDTH, HEIGHT)
    assert admin.driver.execute_script("return window.innerWidth") == WIDTH
    admin.log_in("admin", "password")
    return admin


def test_the_dashboard_shows_the_demo_history_without_scrolling_sideways(admin):
    admin.open(reverse("admin:index"))
    admin.driver.find_element(By.LINK_TEXT, "Dashboard").click()

    rows = admin.driver.find_elements(By.CSS_SELECTOR, "#dashboard tr.job-row")
    assert [row.get_attribute("data-job") for row in rows] == [
        "auto_close_resolved_tickets",
        "delete_old_job_executions",
        DEMO_JOB_ID,
    ]
    nightly = rows[0]
    assert len(nightly.find_elements(By.CSS_SELECTOR, f'rect[fill="{RED}"]')) == 1
    assert len(nightly.find_elements(By.CSS_SELECTOR, f'rect[fill="{ORANGE}"]')) == 1
    assert nightly.find_element(By.CSS_SELECTOR, ".success").text == "92% of 28"
    assert nightly.find_element(By.CSS_SELECTOR, ".lateness").text.endswith(
        "(19 runs)"
    )  # the missed fire never started
    admin.screenshot("dashboard-1366")
    assert admin.scrolling_sideways() == []


def test_the_executions_list_fits_1366_px_and_links_each_run_to_its_job(admin):
    admin.open(RUNS + "?job__id__exact=auto_close_resolved_tickets")

    rows = admin.driver.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert len(rows) == 28
    statuses = [row.find_element(By.CSS_SELECTOR, ".field-status_badge").text for row in rows]
    assert statuses.count("Error!") == 1 and statuses.count("Missed!") == 1
    admin.screenshot("executions-1366")
    assert admin.scrolling_sideways() == []

    admin.open(RUNS)
    admin.screenshot("executions-all-1366")
    assert admin.scrolling_sideways() == []
    link = admin.driver.find_element(By.CSS_SELECTOR, "#result_list tbody tr .field-job_link a")
    assert link.text == DEMO_JOB_ID
    link.click()
    job_page = reverse("admin:django_apscheduler_djangojob_change", args=[quote(DEMO_JOB_ID)])
    assert admin.driver.current_url.endswith(job_page)
