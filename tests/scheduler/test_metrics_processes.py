"""GET /metrics from two server processes on one database: after known runs,
both give the same values, read from the database."""

import sys
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import free_port, run_manage, start_group, stop_group, wait_until

pytestmark = pytest.mark.e2e
TOKEN = "metrics-" + "t" * 40
JOB = "e2e_heartbeat"


def scrape(port: int) -> dict[tuple, float] | None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_two_servers_give_the_same_metrics_after_known_runs(app_env):
    env = {**app_env, "ENABLE_SCHEDULER": "0", "METRICS_TOKEN": TOKEN}
    assert run_manage("scheduler", "sync", env=env).returncode == 0
    for _ in range(2):
        ran = run_manage("scheduler", "run", JOB, "--here", env=env)
        assert ran.returncode == 0, ran.stderr
    ports = [free_port(), free_port()]
    servers = [
        start_group(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"], env
        )
        for port in ports
    ]
    try:
        first, second = (wait_until(lambda p=port: scrape(p), timeout=30) for port in ports)
    finally:
        for server in servers:
            stop_group(server)

    assert first == second
    job = (("job", JOB),)
    assert first[("crm_job_runs_total", (*job, ("outcome", "succeeded")))] == 2
    assert first[("crm_job_runs_total", (*job, ("outcome", "failed")))] == 0
    assert first[("crm_job_run_duration_seconds_gcount", job)] == 2
    assert ("crm_job_last_success_timestamp_seconds", job) in first
    assert first[("crm_job_paused", job)] == 0
    assert first[("crm_scheduler_lease_held", ())] == 0
