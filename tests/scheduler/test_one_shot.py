"""One-shot jobs (`run_at`): one fire, then kept as done with their history;
caught up within their grace if missed; checked for a zone."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from crm.scheduler import control, history, status
from crm.scheduler.checks import check_job_declarations, declaration_errors
from crm.scheduler.oneshot import OnceTrigger
from crm.scheduler.runner import SchedulerRunner
from tests.support.processes import wait_until

RUNS = []


def migrate_once(fire_time):
    RUNS.append(fire_time)
    return "migrated"


def one_shot(run_at: datetime, **fields) -> dict:
    return {
        "id": "migrate",
        "func": f"{__name__}.migrate_once",
        "run_at": run_at.isoformat(),
        "fire_time_kwarg": "fire_time",
        **fields,
    }


def runs() -> list[tuple[datetime, str]]:
    rows = DjangoJobExecution.objects.filter(job_id="migrate").order_by("run_time")
    return list(rows.values_list("run_time", "status"))


def test_the_trigger_fires_once():
    moment = datetime(2026, 12, 24, 8, 0, tzinfo=UTC)
    trigger = OnceTrigger(moment)

    assert trigger.get_next_fire_time(None, moment - timedelta(days=1)) == moment
    assert trigger.get_next_fire_time(moment, moment) is None


@pytest.mark.django_db(transaction=True)
def test_it_runs_once_then_stays_done_with_its_history(settings, active_scheduler):
    RUNS.clear()
    run_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    settings.SCHEDULER_JOBS = [one_shot(run_at)]
    control.sync("tests")

    wait_until(lambda: runs() == [(run_at, history.SUCCEEDED)], timeout=15)

    wait_until(lambda: DjangoJob.objects.get(id="migrate").next_run_time is None, timeout=5)
    [state] = status.job_states(job_ids=["migrate"])
    assert state.done and not state.paused and not state.late
    assert [run_at] == RUNS

    # A new active scheduler syncs the declarations again: still done, not run again.
    active_scheduler.stop()
    again = SchedulerRunner()
    again.start()
    try:
        wait_until(lambda: again.active, timeout=15)
        control.sync("tests")
    finally:
        again.stop()
    assert [run_at] == RUNS and runs() == [(run_at, history.SUCCEEDED)]
    out = StringIO()
    call_command("scheduler", "list", stdout=out)
    assert "migrate  once at " in out.getvalue() and "[done]" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_a_fire_missed_by_less_than_its_grace_runs_when_a_scheduler_comes(
    settings, active_scheduler
):
    RUNS.clear()
    run_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    settings.SCHEDULER_JOBS = [one_shot(run_at, misfire_grace_seconds=3600)]

    control.sync("tests")

    wait_until(lambda: runs() == [(run_at, history.SUCCEEDED)], timeout=15)
    assert [run_at] == RUNS


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        ({"run_at": "2026-12-24T08:00"}, "crm.E014", "run_at is '2026-12-24T08:00', without a"),
        ({"run_at": "Christmas"}, "crm.E014", "run_at is 'Christmas', not an ISO 8601 time"),
        (
            {"run_at": "2026-12-24T08:00+01:00", "cron": "0 2 * * *"},
            "crm.E005",
            "trigger needs exactly one of cron, interval_seconds and run_at",
        ),
    ],
)
def test_a_bad_run_at_is_a_check_error_naming_the_job_and_field(settings, fields, code, message):
    settings.SCHEDULER_JOBS = [{"id": "migrate", "func": f"{__name__}.migrate_once", **fields}]

    errors = [error for error in declaration_errors() if error.id == code]

    assert len(errors) == 1 and message in errors[0].msg and "'migrate'" in errors[0].msg


def test_a_run_at_in_the_past_is_a_warning_and_the_scheduler_still_starts(settings):
    settings.SCHEDULER_JOBS = [one_shot(datetime(2026, 1, 1, tzinfo=UTC))]

    with time_machine.travel(datetime(2026, 12, 1, tzinfo=UTC)):
        found = check_job_declarations()

    assert declaration_errors() == []
    assert [(item.id, item.msg) for item in found] == [
        ("crm.W002", "Job 'migrate': run_at '2026-01-01T00:00:00+00:00' has passed.")
    ]
