"""`make run`, the quick start's first command, serves the admin with demo data."""

import contextlib
import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from tests.conftest import PROJECT_DIR, project_env

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    server = subprocess.Popen(
        ["make", "run"],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    yield f"http://127.0.0.1:{port}", server
    stop_group(server)


def stop_group(server: subprocess.Popen) -> str:
    """Stop make and the runserver processes it started; return their output."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        return server.communicate(timeout=20)[0] or ""
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        return server.communicate()[0] or ""


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
