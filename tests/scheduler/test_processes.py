"""Real processes: gunicorn workers, runserver with its autoreloader and a
runscheduler all load the app with a job that fires every second. Exactly one of
them runs each fire; when the active one dies another takes over."""

import os
import signal
import sys
import time
import urllib.request
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from tests.support.processes import (
    E2E_LEASE_SECONDS,
    activated_at,
    assert_each_fire_ran_once,
    free_port,
    query,
    read_fires,
    run_manage,
    start_group,
    stop_group,
    wait_until,
)

pytestmark = pytest.mark.e2e
LEASE_SECONDS = E2E_LEASE_SECONDS


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            response.read()
            return response
    except OSError:
        return None


def lease_holder_pid(env):
    code = (
        "from crm.scheduler.lease import current_holder; "
        "row = current_holder('default'); print(row.pid if row else 0)"
    )
    result = run_manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def cluster(app_env):
    env, fire_log = app_env, Path(app_env["E2E_FIRE_LOG"])
    bin_dir = os.path.dirname(sys.executable)
    processes = {
        "gunicorn": start_group(
            [f"{bin_dir}/gunicorn", "-w", "4", "-b", f"127.0.0.1:{free_port()}", "config.wsgi"],
            env,
        ),
        "runserver": start_group(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{free_port()}"], env
        ),
        "runscheduler": start_group([sys.executable, "manage.py", "runscheduler"], env),
    }
    yield env, fire_log, processes
    for process in processes.values():
        stop_group(process)


def test_each_fire_runs_exactly_once_across_every_process_and_survives_failover(cluster):
    env, fire_log, _ = cluster

    wait_until(lambda: len(read_fires(fire_log)) >= 60, timeout=120, message="no 60 fires")
    fires = read_fires(fire_log)
    assert_each_fire_ran_once(fires)
    steady = sorted(fire for fire, _ in fires)[-55:]
    gaps = [later - earlier for earlier, later in pairwise(steady)]
    assert set(gaps) == {timedelta(seconds=1)}, "every second fired once in steady state"

    victim = lease_holder_pid(env)
    assert victim in {pid for _, pid in fires}
    os.kill(victim, signal.SIGKILL)
    killed_at = datetime.now().astimezone()

    def taken_over():
        return [
            (fire, pid)
            for fire, pid in read_fires(fire_log)
            if pid != victim and fire > killed_at - timedelta(seconds=1)
        ]

    wait_until(taken_over, timeout=LEASE_SECONDS + 10, message="no takeover after kill -9")
    _, successor = min(taken_over())
    assert successor != victim

    wait_until(lambda: len(taken_over()) >= 5, timeout=20)
    assert_each_fire_ran_once(read_fires(fire_log))

    os.kill(successor, signal.SIGTERM)
    terminated_at = datetime.now().astimezone()
    wait_until(
        lambda: any(
            pid not in {victim, successor} and fire > terminated_at
            for fire, pid in read_fires(fire_log)
        ),
        timeout=4,
        message="SIGTERM did not hand the lease over within seconds",
    )
    assert_each_fire_ran_once(read_fires(fire_log))


def next_in_line_pid(env):
    rows = query(
        env["DATABASE_URL"],
        "SELECT pid FROM crm_schedulerlease WHERE name = 'next-in-line' AND holder <> ''",
    )
    return rows[0][0] if rows else None


def test_one_standby_watches_the_lease_and_another_takes_its_place_when_it_dies(app_env):
    """Of several standbys one watches the lease closely (the others only look
    now and then whether it is still there): it takes over at once on a clean
    stop, and when it dies another standby takes its place."""
    env, fire_log = app_env, Path(app_env["E2E_FIRE_LOG"])
    runscheduler = [sys.executable, "manage.py", "runscheduler"]
    active = start_group(runscheduler, env)
    standbys = []
    try:
        wait_until(lambda: read_fires(fire_log), timeout=60, message="no first fire")
        standbys = [start_group(runscheduler, env) for _ in range(3)]
        pids = {process.pid: process for process in standbys}
        watcher = wait_until(
            lambda: next_in_line_pid(env) in pids and next_in_line_pid(env),
            timeout=60,
            message="no standby is next in line",
        )
        assert lease_holder_pid(env) == active.pid

        os.kill(watcher, signal.SIGKILL)
        others = set(pids) - {watcher}
        # Its place expires with it (a lease), then a standby's next look takes it.
        replacement = wait_until(
            lambda: next_in_line_pid(env) in others and next_in_line_pid(env),
            timeout=LEASE_SECONDS * 1.5 + 5,
            message="no standby took the place of the one that died",
        )

        stop_group(active)
        stopped_at = datetime.now().astimezone()
        wait_until(
            lambda: any(
                pid == replacement and fire > stopped_at for fire, pid in read_fires(fire_log)
            ),
            timeout=4,
            message="the standby next in line did not take over within seconds of a clean stop",
        )
        assert lease_holder_pid(env) == replacement
        wait_until(
            lambda: next_in_line_pid(env) in others - {replacement},
            timeout=LEASE_SECONDS + 5,
            message="the last standby did not become next in line",
        )
        assert_each_fire_ran_once(read_fires(fire_log))
    finally:
        for process in [active, *standbys]:
            stop_group(process)


def test_runservers_autoreloader_parent_starts_no_scheduler(app_env):
    server = start_group(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{free_port()}"], app_env
    )
    try:
        log = Path(app_env["LOG_DIR"]) / "django.log"
        wait_until(lambda: log.exists() and "scheduler active" in log.read_text(), timeout=30)
        time.sleep(2)
        started = [line for line in log.read_text().splitlines() if "standby started" in line]
    finally:
        stop_group(server)
    assert len(started) == 1, started
    assert f"(pid {server.pid})" not in started[0]


def test_fires_missed_while_no_process_ran_are_caught_up_once(app_env):
    fire_log = Path(app_env["E2E_FIRE_LOG"])
    scheduler = start_group([sys.executable, "manage.py", "runscheduler"], app_env)
    wait_until(lambda: len(read_fires(fire_log)) >= 3, timeout=30)
    stop_group(scheduler)
    last_before = max(fire for fire, _ in read_fires(fire_log))

    time.sleep(4)  # several fires pass with no process alive
    scheduler = start_group([sys.executable, "manage.py", "runscheduler"], app_env)
    try:
        wait_until(
            lambda: sum(pid == scheduler.pid for _, pid in read_fires(fire_log)) >= 3, timeout=30
        )
    finally:
        stop_group(scheduler)

    fires = read_fires(fire_log)
    assert_each_fire_ran_once(fires)
    active = activated_at(Path(app_env["LOG_DIR"]) / "django.log", scheduler.pid)
    caught_up = [fire for fire, _ in fires if last_before < fire <= active]
    assert len(caught_up) == 1, f"missed fires should coalesce into one run: {caught_up}"
    assert caught_up[0] - last_before >= timedelta(seconds=3), "the missed fires ran one by one"
    assert caught_up[0] > active - timedelta(seconds=1), "the run serves the latest fire"


def test_with_a_bad_declaration_the_scheduler_stays_off_and_the_app_serves(app_env):
    port = free_port()
    env = {**app_env, "DJANGO_SETTINGS_MODULE": "tests.support.bad_jobs_settings"}
    gunicorn = f"{os.path.dirname(sys.executable)}/gunicorn"
    # runserver refuses to start on system check errors; WSGI servers run no checks.
    server = start_group([gunicorn, "-w", "2", "-b", f"127.0.0.1:{port}", "config.wsgi"], env)
    try:
        log = Path(env["LOG_DIR"]) / "django.log"
        wait_until(lambda: log.exists() and "scheduler not started" in log.read_text(), timeout=30)
        page = wait_until(lambda: fetch(f"http://127.0.0.1:{port}/admin/login/"), timeout=30)
        assert page.status == 200
        time.sleep(2)
    finally:
        stop_group(server)
    lines = [line for line in log.read_text().splitlines() if "scheduler not started" in line]
    assert len(lines) == 2, "one line from each worker"
    assert "'broken'" in lines[0] and "manage.py check" in lines[0]
    assert not read_fires(Path(env["E2E_FIRE_LOG"]))


def test_a_pause_from_another_process_stops_the_runs_within_seconds(app_env):
    fire_log = Path(app_env["E2E_FIRE_LOG"])
    scheduler = start_group([sys.executable, "manage.py", "runscheduler"], app_env)
    try:
        wait_until(lambda: len(read_fires(fire_log)) >= 2, timeout=30)
        paused = run_manage("scheduler", "pause", "e2e_heartbeat", env=app_env)
        assert paused.returncode == 0, paused.stderr
        paused_at = datetime.now().astimezone()
        time.sleep(5)
        late_fires = [
            fire for fire, _ in read_fires(fire_log) if fire > paused_at + timedelta(seconds=3)
        ]
        assert late_fires == [], "the job still ran seconds after the pause"

        resumed = run_manage("scheduler", "resume", "e2e_heartbeat", env=app_env)
        assert resumed.returncode == 0, resumed.stderr
        resumed_at = datetime.now().astimezone()
        wait_until(lambda: any(fire > resumed_at for fire, _ in read_fires(fire_log)), timeout=6)
    finally:
        stop_group(scheduler)
