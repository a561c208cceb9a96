"""The documented ways to run the app in production, for real:
`gunicorn -c deploy/gunicorn.conf.py` with 4 recycling workers beside a
`runscheduler`, and django-prodserver's `manage.py worker scheduler`."""

import signal
import subprocess
import sys
import time
import urllib.request
from itertools import pairwise
from pathlib import Path

import pytest

from tests.support.processes import (
    E2E_LEASE_SECONDS,
    PROJECT_DIR,
    assert_each_fire_ran_once,
    free_port,
    read_executions,
    read_fires,
    read_lease,
    start_group,
    stop_group,
    wait_until,
)

pytestmark = pytest.mark.e2e


def get(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            response.read()
            return True
    except OSError:
        return False


def test_gunicorn_conf_with_recycling_workers_runs_each_fire_once(app_env):
    port = free_port()
    env = {
        **app_env,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "4",
        # Every worker recycles after a few requests: the scheduler moves
        # from worker to worker, or to the runscheduler, many times.
        "GUNICORN_MAX_REQUESTS": "10",
    }
    gunicorn = start_group(
        [str(Path(sys.executable).parent / "gunicorn"), "-c", "deploy/gunicorn.conf.py"], env
    )
    scheduler = start_group([sys.executable, "manage.py", "runscheduler"], env)
    fire_log = Path(env["E2E_FIRE_LOG"])
    try:
        wait_until(lambda: get(f"http://127.0.0.1:{port}/health/scheduler/"), timeout=30)
        deadline = time.monotonic() + 20
        requests = 0
        while time.monotonic() < deadline:
            requests += get(f"http://127.0.0.1:{port}/admin/login/")
            time.sleep(0.05)
    finally:
        output = stop_group(gunicorn) + stop_group(scheduler)

    assert requests > 100, "too few requests to recycle the workers"
    assert output.count("Autorestarting worker") >= 4, output[-3000:]
    fires = read_fires(fire_log)
    assert_each_fire_ran_once(fires)
    times = sorted(fire for fire, _ in fires)
    assert len(times) >= 15, times
    longest_gap = max(later - earlier for earlier, later in pairwise(times))
    assert longest_gap.total_seconds() <= E2E_LEASE_SECONDS + 2, longest_gap


def test_prodserver_worker_runs_the_scheduler_and_stops_on_sigterm(app_env):
    fire_log = Path(app_env["E2E_FIRE_LOG"])
    worker = start_group([sys.executable, "manage.py", "worker", "scheduler"], app_env)
    try:
        wait_until(lambda: len(read_fires(fire_log)) >= 3, timeout=30)
        assert {pid for _, pid in read_fires(fire_log)} == {worker.pid}
        stopping = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=float(app_env["SCHEDULER_SHUTDOWN_WAIT_SECONDS"]) + 10)
        stopped_in = time.monotonic() - stopping
    finally:
        output = stop_group(worker)

    assert worker.returncode == 0, output
    assert stopped_in < 5, stopped_in
    assert "Starting worker named scheduler" in output
    lease = read_lease(app_env["DATABASE_URL"])
    assert lease is None or not lease.holder, "the lease was not given up"
    assert read_executions(app_env["DATABASE_URL"], "e2e_heartbeat")


def test_without_django_prodserver_worker_says_how_to_install_it(app_env):
    hide_prodserver = (
        "import runpy, sys; sys.modules['django_prodserver'] = None; "
        "sys.argv = ['manage.py', 'worker', 'scheduler']; "
        "runpy.run_path('manage.py', run_name='__main__')"
    )
    finished = subprocess.run(
        [sys.executable, "-c", hide_prodserver],
        cwd=PROJECT_DIR,
        env=app_env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert finished.returncode == 1
    assert "pip install 'django-prodserver>=3'" in finished.stderr
    assert "Traceback" not in finished.stderr
