"""Demo jobs and demo run history are for development only: with DEBUG off
(production settings, read from the environment by a real process) no demo
job is declared and `seed_demo --history` refuses, in one line."""

import json

from tests.deploy.test_settings import PRODUCTION
from tests.support.processes import project_env, run_manage

PRINT_DECLARED = (
    "import json; from crm.scheduler.declarations import declared_jobs; "
    "print(json.dumps(sorted(declared_jobs())))"
)


def declared(tmp_path, **variables) -> list[str]:
    env = project_env(DATABASE_URL=f"sqlite:///{tmp_path}/demo.sqlite3", **variables)
    result = run_manage("shell", "-c", PRINT_DECLARED, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_settings_declare_no_demo_job(tmp_path):
    assert declared(tmp_path, **PRODUCTION) == [
        "auto_close_resolved_tickets",
        "delete_old_job_executions",
    ]


def test_debug_declares_the_demo_job_unless_demo_jobs_is_off(tmp_path):
    assert "demo_count_open_tickets" in declared(tmp_path, DEBUG="1")
    assert "demo_count_open_tickets" not in declared(tmp_path, DEBUG="1", DEMO_JOBS="0")


def test_demo_jobs_with_debug_off_stops_start_up_with_one_line(tmp_path):
    env = project_env(
        DATABASE_URL=f"sqlite:///{tmp_path}/demo.sqlite3", DEMO_JOBS="1", **PRODUCTION
    )

    result = run_manage("check", env=env)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Configuration error: DEMO_JOBS=1 needs DEBUG=1: demo jobs are for development only. "
        "Remove DEMO_JOBS, or set it to 0."
    ]


def test_seed_demo_refuses_run_history_with_debug_off_and_writes_nothing(tmp_path):
    database = tmp_path / "demo.sqlite3"
    env = project_env(DATABASE_URL=f"sqlite:///{database}", **PRODUCTION)
    assert run_manage("migrate", "-v0", env=env).returncode == 0

    result = run_manage("seed_demo", "--history", env=env)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "CommandError: Demo run history is for development only and DEBUG is off. "
        "Run with DEBUG=1 (make run does), or leave out --history."
    )
    count = (
        "from django_apscheduler.models import DjangoJobExecution as E; print(E.objects.count())"
    )
    assert run_manage("shell", "-c", count, env=env).stdout.strip().splitlines()[-1] == "0"
