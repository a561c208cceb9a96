"""`make run`, the quick start's first command, serves the admin with demo data."""

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
    )
    server = start_group(["make", "run"], env)
    yield f"http://127.0.0.1:{port}", server
    stop_group(server)


def test_make_run_serves_the_admin_within_60_seconds_and_the_demo_login_works(make_run):
    base_url, server = make_run
    cookies = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))

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
