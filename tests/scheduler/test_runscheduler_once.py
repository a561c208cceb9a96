"""`runscheduler --once`, the cron fallback: real processes on a real database."""

import subprocess
import sys

import pytest

from tests.support.processes import PROJECT_DIR, project_env, run_manage

pytestmark = pytest.mark.e2e
MISS = (
    "from datetime import UTC, datetime, timedelta\n"
    "from crm.scheduler import control\n"
    "with control.job_store() as store:\n"
    "    store.modify_job('{job}', next_run_time=datetime.now(UTC) - timedelta(hours={hours}))\n"
)
HISTORY = (
    "from django_apscheduler.models import DjangoJobExecution as E\n"
    "print(sorted(E.objects.values_list('status', flat=True)))\n"
)


@pytest.fixture
def env(tmp_path, fresh_database_url):
    env = project_env(
        DJANGO_SETTINGS_MODULE="tests.support.e2e_once_settings",
        SECRET_KEY="e2e",
        DATABASE_URL=fresh_database_url,
        LOG_DIR=str(tmp_path / "logs"),
        SCHEDULER_LEASE_SECONDS="5",
        E2E_FIRE_LOG=str(tmp_path / "fires.log"),
    )
    for step in (["migrate", "--noinput"], ["scheduler", "sync"]):
        done = run_manage(*step, env=env)
        assert done.returncode == 0, done.stderr
    return env


def fires(env):
    log = PROJECT_DIR / env["E2E_FIRE_LOG"]
    return log.read_text().splitlines() if log.exists() else []


def manage_shell(code, env):
    result = run_manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]  # after the shell's own banner


def test_it_runs_a_missed_job_once_and_exits(env):
    manage_shell(MISS.format(job="nightly", hours=2), env)

    result = run_manage("runscheduler", "--once", env=env)

    assert result.returncode == 0, result.stderr
    assert "Ran the jobs that were due; lease released." in result.stdout
    assert len(fires(env)) == 1
    assert manage_shell(HISTORY, env) == "['Executed']"
    again = run_manage("runscheduler", "--once", env=env)
    assert again.returncode == 0 and len(fires(env)) == 1


def test_two_at_once_run_it_once(env):
    manage_shell(MISS.format(job="nightly", hours=2), env)

    command = [sys.executable, "manage.py", "runscheduler", "--once"]
    both = [
        subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=60)[0] for process in both]

    assert [process.returncode for process in both] == [0, 0]
    assert len(fires(env)) == 1, outputs
    assert manage_shell(HISTORY, env) == "['Executed']"


def test_a_fire_missed_beyond_its_grace_is_recorded_missed_not_run(env):
    manage_shell(MISS.format(job="yearly", hours=2), env)

    assert run_manage("runscheduler", "--once", env=env).returncode == 0

    assert fires(env) == []
    assert manage_shell(HISTORY, env) == "['Missed!']"


def test_it_leaves_at_once_when_another_scheduler_is_active(env):
    hold = (
        "from datetime import timedelta\n"
        "from crm.scheduler.lease import Lease\n"
        "print(Lease('default', timedelta(minutes=5)).acquire())\n"
    )
    assert manage_shell(hold, env) == "True"
    manage_shell(MISS.format(job="nightly", hours=2), env)

    result = run_manage("runscheduler", "--once", env=env, timeout=30)

    assert result.returncode == 0
    assert "Another scheduler is active (host " in result.stdout
    assert fires(env) == []
