"""A soak of clean handovers: two `runscheduler` processes, the active one
stopped with SIGTERM again and again while a job fires every second. Every
fire runs exactly once: none twice, none lost at a handover."""

import signal
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.processes import (
    assert_each_fire_ran_once,
    read_fires,
    read_lease,
    start_group,
    stop_group,
    wait_until,
)

pytestmark = pytest.mark.e2e
HANDOVERS = 20
RUNSCHEDULER = [sys.executable, "manage.py", "runscheduler"]


def lost_fires(fires) -> list:
    """Whole seconds between the first and the last fire that no process ran."""
    times = sorted({fire for fire, _ in fires})
    expected, second = [], times[0]
    while second <= times[-1]:
        expected.append(second)
        second += timedelta(seconds=1)
    return sorted(set(expected) - set(times))


def test_twenty_sigterm_handovers_lose_and_double_no_fire(app_env, tmp_path):
    url, fire_log = app_env["DATABASE_URL"], Path(app_env["E2E_FIRE_LOG"])
    started = iter(range(1000))

    def standby():
        output = tmp_path / f"runscheduler-{next(started)}.out"
        process = start_group(RUNSCHEDULER, app_env, output=output)
        wait_until(lambda: "waiting for the lease" in output.read_text(), timeout=30)
        return process

    processes = [standby(), standby()]
    try:
        wait_until(lambda: len(read_fires(fire_log)) >= 3, timeout=30, message="no fires")
        for _ in range(HANDOVERS):
            holder = wait_until(lambda: (row := read_lease(url)) and row.holder and row, 10)
            active = next(p for p in processes if p.pid == holder.pid)
            ran_before = len(read_fires(fire_log))
            stop_group(active, signal.SIGTERM)
            processes.remove(active)
            wait_until(
                lambda ran_before=ran_before, holder=holder: any(
                    pid != holder.pid for _, pid in read_fires(fire_log)[ran_before:]
                ),
                timeout=10,
                message="the standby did not take over",
            )
            processes.append(standby())
        wait_until(lambda: len(read_fires(fire_log)) >= 3, timeout=5)
    finally:
        for process in processes:
            stop_group(process)

    fires = read_fires(fire_log)
    assert_each_fire_ran_once(fires)
    assert len({pid for _, pid in fires}) >= HANDOVERS
    assert lost_fires(fires) == []
