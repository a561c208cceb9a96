"""Headless Chromium on the live server's admin, for the browser tests:
Debian's chromium and chromium-driver (nothing is downloaded), and the admin
as a person uses it. Screenshots go to TEST_ARTIFACTS_DIR (default
tmp/test-artifacts)."""

import os
from pathlib import Path

import pytest
from django.urls import reverse
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.support.processes import PROJECT_DIR, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Generous: the machines that run the tests are shared and slow. Every wait
# polls and returns as soon as the page shows what it waits for.
WAIT_SECONDS = 30
JOBS = reverse("admin:django_apscheduler_djangojob_changelist")


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

    def scrolling_sideways(self) -> list[str]:
        """What scrolls sideways on the page shown: the page itself, or any box
        in it that scrolls (the admin's lists scroll inside `.results`)."""
        return self.driver.execute_script(
            """
            const page = document.documentElement;
            const found = page.scrollWidth > page.clientWidth ? ["the page"] : [];
            for (const box of document.querySelectorAll("*")) {
                const overflow = getComputedStyle(box).overflowX;
                if (["auto", "scroll"].includes(overflow) && box.scrollWidth > box.clientWidth) {
                    found.push(box.tagName.toLowerCase() + "." + box.className);
                }
            }
            return found;
            """
        )

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
