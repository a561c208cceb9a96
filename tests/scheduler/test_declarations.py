"""The one declaration of jobs: the built-in jobs, their schedules from the
environment, and a deployment's own jobs from SCHEDULER_JOBS."""

import json

import pytest

from crm.scheduler.declarations import JobDeclaration, declared_jobs
from tests.support.processes import project_env, run_manage


@pytest.fixture(scope="module")
def database_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('declarations')}/db.sqlite3"
    migrated = run_manage("migrate", env=project_env(SECRET_KEY="x", DATABASE_URL=url))
    assert migrated.returncode == 0, migrated.stderr
    return url


@pytest.fixture
def listed(database_url):
    def list_jobs(**environment) -> dict:
        env = project_env(SECRET_KEY="x", DATABASE_URL=database_url, **environment)
        result = run_manage("scheduler", "list", "--json", env=env)
        assert result.returncode == 0, result.stderr
        return {job["id"]: job for job in json.loads(result.stdout)}

    return list_jobs


def test_the_built_in_jobs_run_daily_at_two_and_on_sundays_at_three_by_default(listed):
    jobs = listed()

    assert jobs["auto_close_resolved_tickets"]["schedule"] == "0 2 * * *"
    assert jobs["auto_close_resolved_tickets"]["schedule_in_words"] == "At 02:00 every day, UTC"
    assert jobs["auto_close_resolved_tickets"]["enabled"] is True
    assert jobs["delete_old_job_executions"]["schedule_in_words"] == "At 03:00 on Sunday, UTC"


def test_a_deployment_changes_a_built_in_schedule_and_turns_a_job_off_from_the_environment(
    listed,
):
    jobs = listed(
        AUTO_CLOSE_CRON="30 4 * * 1-5",
        AUTO_CLOSE_ENABLED="0",
        TIME_ZONE="Europe/Warsaw",
    )

    auto_close = jobs["auto_close_resolved_tickets"]
    assert auto_close["schedule"] == "30 4 * * 1-5"
    assert auto_close["schedule_in_words"] == "At 04:30 on Monday to Friday, Europe/Warsaw"
    assert auto_close["enabled"] is False


def test_a_deployment_adds_its_own_jobs_in_settings(settings):
    settings.SCHEDULER_JOBS = [
        {
            "id": "nightly_report",
            "func": "tests.support.e2e_jobs.record_fire",
            "cron": "15 1 * * *",
            "timezone": "America/New_York",
            "kwargs": {"to": "ops@example.com"},
        }
    ]

    job = declared_jobs()["nightly_report"]

    assert job == JobDeclaration(
        id="nightly_report",
        func="tests.support.e2e_jobs.record_fire",
        cron="15 1 * * *",
        timezone="America/New_York",
        kwargs={"to": "ops@example.com"},
    )
    assert job.describe_schedule() == "At 01:15 every day, America/New_York"
    assert list(declared_jobs())[:2] == ["auto_close_resolved_tickets", "delete_old_job_executions"]


def test_intervals_are_described_in_the_largest_whole_unit():
    def words(seconds):
        return JobDeclaration(id="x", func="f", interval_seconds=seconds).describe_schedule()

    assert [words(1), words(90), words(120), words(7200), words(86400)] == [
        "Every 1 second",
        "Every 90 seconds",
        "Every 2 minutes",
        "Every 2 hours",
        "Every 1 day",
    ]
