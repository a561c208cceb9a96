"""The scheduler's admin pages in a real browser: Debian's Chromium driven by
Selenium against a live server whose process holds the active scheduler. An
admin logs in through the form, runs a job now and sees its execution appear,
pauses a job and resumes it; a staff user who may only view is offered no actions.
Screenshots go to TEST_ARTIFACTS_DIR (default tmp/test-artifacts)."""

import os
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django_apscheduler.models import DjangoJob, DjangoJobExecution
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import Select, WebDriverWait

from crm.scheduler import control, history
from tests.support.processes import PROJECT_DIR, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Generous: the machines that run the tests are shared and slow. Every wait
# polls and returns as soon as the page shows what it waits for.
WAIT_SECONDS = 30
JOBS = reverse("admin:django_apscheduler_djangojob_changelist")
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


@pytest.fixture
def artifacts() -> Path:
    directory = Path(os.environ.get("TEST_ARTIFACTS_DIR") or PROJECT_DIR / "tmp" / "test-artifacts")
    directory = directory if directory.is_absolute() else PROJECT_DIR / directory
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def open_admin(request, live_server, artifacts, monkeypatch, tmp_path):
    """Starts headless Chromium from Debian's packages (nothing is downloaded) on
    the live server's admin. Called from the test, so that a missing browser
    fails the test rather than erroring its setup."""

    def start() -> "Admin":
        packages = {CHROMIUM: "chromium", CHROMEDRIVER: "chromium-driver"}
        missing = [f"{path} (package {name})" for path, name in packages.items()
                   if not path.is_file()]  # fmt: skip
        if missing:
            pytest.fail(
                f"Missing {', '.join(missing)}. The browser tests need Debian's Chromium: "
                "apt-get update && apt-get install -y chromium chromium-driver",
                pytrace=False,
            )
        monkeypatch.setenv("SE_OFFLINE", "true")  # never let Selenium Manager fetch anything
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for argument in ("--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--window-size=1920,1080"):  # fmt: skip
            options.add_argument(argument)
        try:
            # Chromium leaves profile and crash folders in TMPDIR: keep them in the test's.
            service = Service(str(CHROMEDRIVER), env={**os.environ, "TMPDIR": str(tmp_path)})
            driver = webdriver.Chrome(service=service, options=options)
        except WebDriverException as error:
            pytest.fail(f"Chromium did not start ({CHROMEDRIVER}): {error.msg}", pytrace=False)
        request.addfinalizer(lambda: close(driver))
        driver.set_page_load_timeout(WAIT_SECONDS)
        return Admin(driver, live_server.url, artifacts)

    def close(driver) -> None:
        try:
            if request.session.testsfailed > failed_before:
                driver.save_screenshot(artifacts / "admin-browser-failure.png")
        finally:
            driver.quit()

    failed_before = request.session.testsfailed
    return start


class Admin:
    """The admin as a person uses it: pages, forms, buttons."""

    def __init__(self, driver, base_url: str, artifacts: Path):
        self.driver, self.base_url, self.artifacts = driver, base_url, artifacts

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    def screenshot(self, name: str) -> Path:
        path = self.artifacts / f"admin-browser-{name}.png"
        assert self.driver.save_screenshot(path), f"no screenshot written to {path}"
        return path

    def log_in(self, username: str, password: str) -> None:
        self.open(reverse("admin:login") + "?next=" + reverse("admin:index"))
        self.driver.find_element(By.ID, "id_username").send_keys(username)
        self.driver.find_element(By.ID, "id_password").send_keys(password)
        self.driver.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
        WebDriverWait(self.driver, WAIT_SECONDS).until(
            lambda driver: driver.find_elements(By.ID, "logout-form"),
            f"{username} was not logged in",
        )

    def apply_action(self, action: str, job_id: str) -> list[str]:
        """Select the job on the jobs page and apply the action; the messages shown after."""
        self.open(JOBS)
        self.driver.find_element(
            By.CSS_SELECTOR, f'input[name="_selected_action"][value="{job_id}"]'
        ).click()
        Select(self.driver.find_element(By.NAME, "action")).select_by_value(action)
        go = self.driver.find_element(By.CSS_SELECTOR, 'button[name="index"]')
        go.click()
        wait = WebDriverWait(self.driver, WAIT_SECONDS)
        wait.until(staleness_of(go), f"{action} of {job_id}: the page did not change")
        wait.until(lambda driver: driver.find_elements(By.ID, "result_list"))
        return [item.text for item in self.driver.find_elements(By.CSS_SELECTOR, ".messagelist li")]

    def next_run_shown(self, job_id: str) -> str:
        """The "Next run" cell of the job's row on the jobs page shown now."""
        row = self.driver.find_element(
            By.XPATH, f'//input[@name="_selected_action" and @value="{job_id}"]/ancestor::tr'
        )
        return row.find_element(By.CSS_SELECTOR, "td.field-next_run").text

    def field(self, name: str) -> str:
        """A field's value as the object's page shows it."""
        return self.driver.find_element(By.CSS_SELECTOR, f".field-{name} .readonly").text

    def wait_for_page(self, path: str, shows, message: str):
        """Reload `path` until `shows()` is true of it: a bounded wait, no long sleeps."""

        def shown():
            self.open(path)
            return shows()

        return wait_until(shown, timeout=WAIT_SECONDS, interval=0.5, message=message)


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
