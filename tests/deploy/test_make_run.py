"""`make run`, the quick start's first command, serves the admin with demo data:
tickets, the demo job, weeks of demo run history on the scheduler dashboard,
and the demo tickets due to close closed by the first scheduler at once."""

import http.cookiejar
import re
import time
import urllib.parse
import urllib.request

import pytest

from tests.support.processes import free_port, project_env, start_group, stop_group

pytestmark = pytest.mark.e2e


def wait_for(url: str, opener, deadline: float) -> str:
    while time.monotonic() < deadline:
        try:
            with opener.open(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in time")


@pytest.fixture
def make_run(tmp_path):
    port = free_port()
    env = project_env(
        PORT=str(port),
        DATABASE_URL=f"sqlite:///{tmp_path}/quickstart.sqlite3",
        LOG_DIR=str(tmp_path / "logs"),
        ENABLE_SCHEDULER="1",
    )
    server = start_group(["make", "run"], env)
    yield f"http://127.0.0.1:{port}", server
    stop_group(server)


def logged_in(base_url: str):
    cookies = http.cookiejar.CookieJar()
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))


def test_make_run_serves_the_admin_within_60_seconds_and_the_demo_login_works(make_run):
    base_url, server = make_run
    opener = logged_in(base_url)

    login_page = wait_for(f"{base_url}/admin/login/", opener, time.monotonic() + 60)

    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page).group(1)
    form = urllib.parse.urlencode(
        {
            "username": "admin",
            "password": "admin",
            "csrfmiddlewaretoken": token,
            "next": "/admin/crm/ticket/",
        }
    ).encode()
    with opener.open(f"{base_url}/admin/login/?next=/admin/crm/ticket/", form) as response:
        tickets_page = response.read().decode()
    assert "Select ticket to change" in tickets_page
    assert re.search(r"500 tickets", tickets_page)

    output = stop_group(server)
    assert "admin / admin" in output
    assert "Created 500 demo tickets" in output


def test_make_run_shows_the_scheduler_at_work_at_once(make_run):
    base_url, server = make_run
    opener = logged_in(base_url)
    login_page = wait_for(f"{base_url}/admin/login/", opener, time.monotonic() + 60)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page).group(1)
    dashboard = "/admin/django_apscheduler/djangojob/dashboard/"
    form = {"username": "admin", "password": "admin", "csrfmiddlewaretoken": token}
    with opener.open(
        f"{base_url}/admin/login/?next={dashboard}", urllib.parse.urlencode(form).encode()
    ) as response:
        page = response.read().decode()

    for job_id in ("auto_close_resolved_tickets", "delete_old_job_executions",
                   "demo_count_open_tickets"):  # fmt: skip
        assert f'data-job="{job_id}"' in page
    assert "Error!" in page and "Missed!" in page  # in the strip's day titles
    closed_by_first_run = (
        f"{base_url}/admin/django_apscheduler/djangojobexecution/"
        "?job__id__exact=auto_close_resolved_tickets&status=Executed"
    )
    deadline = time.monotonic() + 60
    while "seed_demo (demo data)" not in (runs := wait_for(closed_by_first_run, opener, deadline)):
        assert time.monotonic() < deadline, "auto-close did not run at the first start"
        time.sleep(0.5)
    row = next(row for row in runs.split("<tr") if "seed_demo (demo data)" in row)
    run_page = re.search(r'<th class="field-fire"><a href="([^"]+)"', row).group(1)
    with opener.open(base_url + run_page) as response:
        assert "{&#x27;closed&#x27;: 50, &#x27;skipped&#x27;: 0}" in response.read().decode()

    output = stop_group(server)
    assert "Wrote 2,9" in output and "demo runs" in output
