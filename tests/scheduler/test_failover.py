"""Exactly one active scheduler, when it matters: the active process killed with
-9, stopped with SIGTERM in the middle of a long run, or running on another
host whose clock is wrong. Real `runscheduler` processes on one database; the
lease row and the run history are read straight from that database."""

import glob
import os
import shutil
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from crm.scheduler.history import INTERRUPTED, RUNNING, SKIPPED, SUCCEEDED
from tests.support.processes import (
    E2E_LEASE_SECONDS,
    activated_at,
    assert_each_fire_ran_once,
    e2e_env,
    read_executions,
    read_fire_lines,
    read_fires,
    read_lease,
    wait_until,
)

pytestmark = pytest.mark.e2e
LEASE_SECONDS = E2E_LEASE_SECONDS
# A standby tries to take the lease this often (a third of the lease, at most 5 s).
STANDBY_POLL_SECONDS = LEASE_SECONDS / 3
RUNSCHEDULER = [sys.executable, "manage.py", "runscheduler"]


def wait_for_standby(output: Path):
    try:
        wait_until(lambda: "waiting for the lease" in output.read_text(), timeout=30)
    except AssertionError:
        raise AssertionError(f"runscheduler did not start: {output.read_text()}") from None


def wait_for_lease(database_url, taken, timeout: float):
    """The lease row once `taken(row)` holds, polled every 50 ms, and how long that took."""
    started = time.monotonic()
    try:
        row = wait_until(
            lambda: (row := read_lease(database_url)) and taken(row) and row,
            timeout=timeout,
            interval=0.05,
        )
    except AssertionError:
        raise AssertionError(
            f"the lease did not change hands in {timeout} s: {read_lease(database_url)}"
        ) from None
    return row, time.monotonic() - started


def test_after_kill_9_a_standby_takes_over_within_the_lease_and_catches_up_once(
    app_env, start, tmp_path
):
    url, fire_log = app_env["DATABASE_URL"], Path(app_env["E2E_FIRE_LOG"])
    victim = start(RUNSCHEDULER, app_env, tmp_path / "victim.out")
    wait_until(lambda: len(read_fires(fire_log)) >= 2, timeout=30, message="no fires")
    successor = start(RUNSCHEDULER, app_env, tmp_path / "successor.out")
    wait_for_standby(tmp_path / "successor.out")
    assert {pid for _, pid in read_fires(fire_log)} == {victim.pid}
    held = read_lease(url)

    os.killpg(victim.pid, signal.SIGKILL)
    taken, takeover = wait_for_lease(url, lambda row: row.pid == successor.pid, timeout=15)
    print(f"takeover {takeover:.2f} s after kill -9")
    wait_until(
        lambda: sum(pid == successor.pid for _, pid in read_fires(fire_log)) >= 4, timeout=15
    )

    assert takeover < LEASE_SECONDS + STANDBY_POLL_SECONDS + 0.5
    assert taken.acquired_at >= held.expires_at, "taken over before the dead holder's lease expired"
    fires = read_fires(fire_log)
    assert_each_fire_ran_once(fires)
    last_before = max(fire for fire, pid in fires if pid == victim.pid)
    after = sorted(fire for fire, pid in fires if pid == successor.pid)
    # The victim may have handed the next fire to its executor and died before
    # that run started: the successor runs it, once (crm.scheduler.recovery).
    recovered = [after.pop(0)] if after[0] == last_before + timedelta(seconds=1) else []
    catch_up = after[0]
    assert catch_up - last_before >= timedelta(seconds=2), "the missed fires ran one by one"
    active = activated_at(Path(app_env["LOG_DIR"]) / "django.log", successor.pid)
    # With the dispatched fire run, the next one may not have fallen due yet.
    on_time = active + timedelta(seconds=1) if recovered else active
    assert active - timedelta(seconds=1) < catch_up <= on_time, (
        "the first run after the takeover serves the latest missed fire, at once"
    )
    regular = after[1:]
    assert {later - earlier for earlier, later in pairwise(regular)} == {timedelta(seconds=1)}

    history = read_executions(url, "e2e_heartbeat")
    in_gap = [
        run.status
        for fire, run in history.items()
        if last_before < fire < catch_up and fire not in recovered
    ]
    # At most the victim's own run of the next fire, cut short by kill -9 before it logged.
    assert in_gap in ([], [INTERRUPTED]), f"missed fires each got a run: {in_gap}"
    assert [history[fire].status for fire in recovered] in ([], [SUCCEEDED])
    assert [history[fire].status for fire in after[:-1]] == [SUCCEEDED] * (len(after) - 1)
    # A catch-up that starts just before the next fire may still run at that
    # fire, which is then skipped (one run at a time) and recorded as skipped.
    between = [history[fire].status for fire in history if catch_up < fire < regular[0]]
    assert between in ([], [SKIPPED]), between


@pytest.fixture
def long_run_env(tmp_path, fresh_database_url):
    """App processes running `e2e_long_run`, a job that takes a minute."""
    return e2e_env(tmp_path, fresh_database_url, "tests.support.e2e_slow_settings")


def test_a_run_cut_short_by_kill_9_is_marked_interrupted_when_another_process_takes_over(
    long_run_env, start, tmp_path
):
    url, fire_log = long_run_env["DATABASE_URL"], Path(long_run_env["E2E_FIRE_LOG"])
    victim = start(RUNSCHEDULER, long_run_env, tmp_path / "victim.out")
    [(fire, pid)] = wait_until(lambda: read_fires(fire_log), timeout=30, message="no run")
    assert pid == victim.pid
    successor = start(RUNSCHEDULER, long_run_env, tmp_path / "successor.out")
    wait_for_standby(tmp_path / "successor.out")
    assert read_executions(url, "e2e_long_run")[fire].status == RUNNING

    os.killpg(victim.pid, signal.SIGKILL)
    wait_for_lease(url, lambda row: row.pid == successor.pid, timeout=15)
    run = wait_until(
        lambda: (run := read_executions(url, "e2e_long_run")[fire]).status != RUNNING and run,
        timeout=5,
        message="the run cut short still shows as running",
    )
    assert run.status == INTERRUPTED
    assert f"pid {victim.pid}" in run.exception, run.exception
    # The successor carries on with the job.
    wait_until(lambda: successor.pid in {pid for _, pid in read_fires(fire_log)}, timeout=10)


def watch_handover(process, standby, database_url, timeout: float):
    """After `process` was told to stop: seconds until it exited, seconds until
    `standby` held the lease, that lease row, and the stopping holder's last one."""
    held = read_lease(database_url)
    started = time.monotonic()
    exited = taken = taken_after = None
    while time.monotonic() - started < timeout and not (exited and taken):
        if exited is None and process.poll() is not None:
            exited = time.monotonic() - started
        row = read_lease(database_url)
        if row.holder == held.holder:
            held = row
        elif taken is None and row.pid == standby.pid:
            taken, taken_after = row, time.monotonic() - started
        time.sleep(0.05)
    return exited, taken_after, taken, held


def test_sigterm_during_a_long_run_stops_within_the_shutdown_wait_and_frees_the_lease_at_once(
    tmp_path, fresh_database_url, start
):
    # A lease long enough that a takeover through its expiry (8 s or more after
    # SIGTERM) comes clearly later than one through its release.
    lease_seconds, shutdown_wait = 12, 2
    env = e2e_env(
        tmp_path,
        fresh_database_url,
        "tests.support.e2e_slow_settings",
        SCHEDULER_LEASE_SECONDS=str(lease_seconds),
        SCHEDULER_SHUTDOWN_WAIT_SECONDS=str(shutdown_wait),
    )
    url, fire_log = env["DATABASE_URL"], Path(env["E2E_FIRE_LOG"])
    active = start(RUNSCHEDULER, env, tmp_path / "active.out")
    wait_until(lambda: read_fires(fire_log), timeout=30, message="the long run did not start")
    standby = start(RUNSCHEDULER, env, tmp_path / "standby.out")
    wait_for_standby(tmp_path / "standby.out")
    assert read_lease(url).pid == active.pid

    active.send_signal(signal.SIGTERM)
    exited, taken_after, taken, held = watch_handover(active, standby, url, timeout=20)

    print(f"after SIGTERM: exit after {exited} s, takeover after {taken_after} s")
    assert exited is not None, (
        f"runscheduler still running 20 s after SIGTERM (shutdown wait {shutdown_wait} s, "
        "a 60 s run going)"
    )
    assert exited < shutdown_wait + 2
    assert taken is not None, "the standby did not take the lease within 20 s"
    assert taken.acquired_at < held.expires_at, "the standby had to wait for the lease to expire"
    assert taken_after < exited + lease_seconds / 3 + 1


def on_host(
    hostname: str, command: list[str], clock_offset: str = "", clock_file: Path | None = None
) -> list[str]:
    """`command` in its own UTS, PID and mount namespaces named `hostname` (another
    host, as far as the app can tell), its wall clock shifted by `clock_offset`
    (libfaketime, e.g. "+5m"), or by the offset written in `clock_file`, read
    again every second, so a test can jump and correct the clock of a running
    host. The monotonic clock, which the app uses for durations, stays true."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.fail("this test runs as root with unshare: `apt-get install -y util-linux`")
    clock = []
    if clock_offset or clock_file:
        libraries = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
        if not libraries:
            pytest.fail("this test needs libfaketime: `apt-get install -y libfaketime`")
        offset = (
            [f"FAKETIME={clock_offset}"]
            if clock_offset
            else [f"FAKETIME_TIMESTAMP_FILE={clock_file}", "FAKETIME_CACHE_DURATION=1"]
        )
        clock = ["env", f"LD_PRELOAD={libraries[0]}", *offset, "FAKETIME_DONT_FAKE_MONOTONIC=1"]
    return [
        *("unshare", "--uts", "--pid", "--fork", "--mount-proc"),
        # Its own /dev/shm too, where libfaketime leaves files behind.
        *("sh", "-c", 'hostname "$0" && mount -t tmpfs tmpfs /dev/shm && exec "$@"', hostname),
        *clock,
        *command,
    ]


def test_hosts_with_skewed_clocks_share_the_lease_by_the_database_clock(app_env, start, tmp_path):
    url, fire_log = app_env["DATABASE_URL"], Path(app_env["E2E_FIRE_LOG"])
    if url.startswith("sqlite"):
        pytest.skip(
            "SQLite cannot be shared by hosts: it has no clock of its own, "
            "each process's clock judges the lease"
        )
    host_a = start(on_host("crm-host-a", RUNSCHEDULER), app_env, tmp_path / "host-a.out")
    wait_until(lambda: len(read_fires(fire_log)) >= 2, timeout=30, message="no fires")
    held = read_lease(url)
    assert held.host == "crm-host-a"

    # By host B's clock, 5 minutes ahead, the lease held by host A has expired.
    # (Allowed to run jobs with such a clock here; by default it would not.)
    tolerant = {**app_env, "SCHEDULER_MAX_CLOCK_SKEW_SECONDS": "600"}
    start(on_host("crm-host-b", RUNSCHEDULER, "+5m"), tolerant, tmp_path / "host-b.out")
    wait_for_standby(tmp_path / "host-b.out")
    time.sleep(2 * LEASE_SECONDS)
    renewed = read_lease(url)
    assert renewed.holder == held.holder, "host B took a live lease"
    assert {fire.host for fire in read_fire_lines(fire_log)} == {"crm-host-a"}

    os.killpg(host_a.pid, signal.SIGKILL)
    taken, takeover = wait_for_lease(url, lambda row: row.host == "crm-host-b", timeout=15)
    print(f"takeover by the skewed host {takeover:.2f} s after kill -9")
    wait_until(
        lambda: sum(fire.host == "crm-host-b" for fire in read_fire_lines(fire_log)) >= 2,
        timeout=15,
    )

    assert takeover < LEASE_SECONDS + STANDBY_POLL_SECONDS + 0.5
    assert taken.acquired_at >= renewed.expires_at
    fires = read_fire_lines(fire_log)
    assert_each_fire_ran_once(fires)
    # Fire times follow the active host's clock (the documented limit of clock
    # skew); this also shows that host B really ran 5 minutes ahead.
    skewed_fires = [fire.time for fire in fires if fire.host == "crm-host-b"]
    assert min(skewed_fires) > datetime.now(UTC) + timedelta(minutes=4)


def test_a_host_whose_clock_jumps_ahead_hands_over_and_runs_again_once_corrected(
    app_env, start, tmp_path
):
    url, fire_log = app_env["DATABASE_URL"], Path(app_env["E2E_FIRE_LOG"])
    if url.startswith("sqlite"):
        pytest.skip("SQLite has no clock of its own to compare a host's clock with")
    clock = tmp_path / "host-b.clock"
    clock.write_text("+0\n")
    start(on_host("crm-host-b", RUNSCHEDULER, clock_file=clock), app_env, tmp_path / "b.out")
    wait_until(lambda: len(read_fires(fire_log)) >= 2, timeout=30, message="no fires")
    assert read_lease(url).host == "crm-host-b"
    host_a = start(on_host("crm-host-a", RUNSCHEDULER), app_env, tmp_path / "a.out")
    wait_for_standby(tmp_path / "a.out")

    def fires_by(host, since):
        return [f for f in read_fire_lines(fire_log) if f.host == host and f.time > since]

    clock.write_text("+2h\n")
    jumped = datetime.now(UTC)
    wait_until(
        lambda: fires_by("crm-host-a", jumped),
        timeout=LEASE_SECONDS + 10,
        message="the host with the right clock did not take over",
    )
    clock.write_text("+0\n")
    time.sleep(2)  # libfaketime reads the file again within a second
    os.killpg(host_a.pid, signal.SIGKILL)
    corrected = datetime.now(UTC)
    wait_until(
        lambda: fires_by("crm-host-b", corrected),
        timeout=LEASE_SECONDS + 10,
        message="the corrected host did not run jobs again",
    )

    fires = read_fire_lines(fire_log)
    assert_each_fire_ran_once(fires)
    assert all(fire.time < datetime.now(UTC) + timedelta(minutes=1) for fire in fires), (
        "fires of the jumped clock ran"
    )
    log = (tmp_path / "logs" / "django.log").read_text()
    assert "s ahead of the database's" in log
