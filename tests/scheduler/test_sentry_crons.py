"""Sentry Crons check-ins (crm.scheduler.sentry_crons): with sentry-sdk set up,
each run checks in `in_progress` as it starts and `ok` or `error` as it ends,
under one check-in id, with the job's schedule so that Sentry creates the
monitor. Sent for real, by sentry-sdk's own transport, to the loopback
receiver standing in for Sentry."""

import json
import logging
import threading
from datetime import UTC, datetime

import pytest
import sentry_sdk
import time_machine
from django.apps import apps
from django_apscheduler.models import DjangoJobExecution

from crm.scheduler import control, execution, history, retries
from crm.scheduler.declarations import JobDeclaration
from crm.scheduler.execution import FireTimeThreadExecutor, RunContext
from crm.scheduler.schedulers import Mode, build_scheduler
from crm.scheduler.sentry_crons import active_sdk, monitor_config
from tests.support.e2e_jobs import fail_times
from tests.support.processes import free_port, wait_until

pytestmark = pytest.mark.django_db(transaction=True)
SCHEDULER = RunContext(scheduler="lease-token")
ENVELOPES = "/api/1/envelope/"
TEN_O_CLOCK = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def succeed():
    return "ok"


def fail():
    raise ValueError("the report server said no")


def fail_once(count_file):
    return fail_times(count_file, failures=1)


@pytest.fixture
def declare(settings):
    settings.AUTO_CLOSE_ENABLED = settings.EXECUTION_PRUNE_ENABLED = False

    def declare(func="succeed", **fields):
        settings.SCHEDULER_JOBS = [
            {
                "id": "reports.nightly",
                "func": f"tests.scheduler.test_sentry_crons.{func}",
                "interval_seconds": 3600,
                **fields,
            }
        ]
        control.sync("tests")

    return declare


def start_sentry(dsn, **options):
    # No integrations: they would patch Django and logging for the tests after.
    sentry_sdk.init(
        dsn=dsn, default_integrations=False, auto_enabling_integrations=False, **options
    )


@pytest.fixture
def sentry(receiver):
    """sentry-sdk sending to `receiver` as project 1; closed after the test."""
    start_sentry(receiver.url("/1").replace("http://", "http://public@"))
    yield receiver
    stop_sentry()


def stop_sentry():
    sentry_sdk.get_client().close(timeout=5)
    sentry_sdk.get_global_scope().set_client(None)


def check_ins(receiver) -> list[dict]:
    """The check-ins of the envelopes received so far, in order."""
    sentry_sdk.flush(timeout=10)
    found = []
    for request in receiver.received:
        assert request.path == ENVELOPES
        # An envelope: its header, then each item's header and payload, one line each.
        for line in request.body.splitlines()[1:]:
            item = json.loads(line)
            if item.get("type") == "check_in" and "check_in_id" in item:
                found.append(item)
    return found


def test_a_run_checks_in_in_progress_then_ok_with_its_duration_under_one_id(declare, sentry):
    declare()

    assert SCHEDULER.call(execution.run_declared_job, "reports.nightly") == "ok"

    started, ended = check_ins(sentry)
    assert (started["monitor_slug"], started["status"]) == ("reports.nightly", "in_progress")
    assert (ended["monitor_slug"], ended["status"]) == ("reports.nightly", "ok")
    assert ended["check_in_id"] == started["check_in_id"]
    assert started["duration"] is None
    assert 0 <= ended["duration"] < 5
    assert started["monitor_config"] == {
        "schedule": {"type": "interval", "value": 1, "unit": "hour"},
        "timezone": "UTC",
        "checkin_margin": 1,
    }
    assert ended["monitor_config"] == started["monitor_config"]
    assert apps.get_app_config("crm").sentry_check_ins.open_count() == 0


def test_a_failed_run_checks_in_error(declare, sentry):
    declare(func="fail")

    with pytest.raises(ValueError):
        SCHEDULER.call(execution.run_declared_job, "reports.nightly")

    started, ended = check_ins(sentry)
    assert [started["status"], ended["status"]] == ["in_progress", "error"]
    assert ended["check_in_id"] == started["check_in_id"]
    assert ended["duration"] >= 0
    assert DjangoJobExecution.objects.get().status == history.FAILED


def test_each_run_has_a_check_in_of_its_own(declare, sentry):
    declare()

    execution.run_declared_job("reports.nightly")
    execution.run_declared_job("reports.nightly")

    first, second = (check_in["check_in_id"] for check_in in check_ins(sentry)[::2])
    assert first != second
    assert [check_in["status"] for check_in in check_ins(sentry)] == [
        "in_progress",
        "ok",
        "in_progress",
        "ok",
    ]


def test_a_cron_job_gives_sentry_its_crontab_zone_and_margin(declare, sentry):
    declare(cron="30  2 * * 1-5", interval_seconds=None, timezone="Europe/Warsaw")

    assert SCHEDULER.call(execution.run_declared_job, "reports.nightly") == "ok"

    started, ended = check_ins(sentry)
    assert started["monitor_config"] == {
        "schedule": {"type": "crontab", "value": "30 2 * * 1-5"},
        "timezone": "Europe/Warsaw",
        "checkin_margin": 1,
    }
    assert ended["status"] == "ok"


def test_jitter_widens_the_margin_and_a_timeout_bounds_the_runtime():
    declaration = JobDeclaration(
        id="j", func="f", cron="0 2 * * *", timeout_seconds=120, jitter_seconds=90
    )

    config = monitor_config(declaration)

    assert config["checkin_margin"] == 3  # Sentry's minute, and the 90 s of jitter
    assert config["max_runtime"] == 3  # the timeout, and a minute


def test_a_retried_fire_is_one_check_in_closed_by_its_last_attempt(declare, sentry, tmp_path):
    declare(
        func="fail_once",
        kwargs={"count_file": str(tmp_path / "calls")},
        retries=1,
        retry_backoff_seconds=60,
    )
    scheduler = build_scheduler(Mode.CONTINUOUS, FireTimeThreadExecutor(SCHEDULER))
    scheduler.start(paused=True)
    try:
        with time_machine.travel(TEN_O_CLOCK, tick=False) as clock:
            with pytest.raises(ConnectionError):
                SCHEDULER.call(execution.run_declared_job, "reports.nightly")
            assert [check_in["status"] for check_in in check_ins(sentry)] == ["in_progress"]

            fire = DjangoJobExecution.objects.select_related("detail").get()
            clock.move_to(fire.detail.retry_at)
            assert retries.start_due(scheduler) == 1
            executor = scheduler.lookup_executor("default")
            wait_until(lambda: not executor.has_running_jobs(), timeout=10)
    finally:
        scheduler.shutdown(wait=True)

    started, ended = check_ins(sentry)
    assert [started["status"], ended["status"]] == ["in_progress", "ok"]
    assert ended["check_in_id"] == started["check_in_id"]
    assert DjangoJobExecution.objects.get().status == history.SUCCEEDED
    # Two attempts of 60 minutes at most (30 each without a timeout), the
    # wait between them, and a minute.
    assert started["monitor_config"]["max_runtime"] == 62


def test_without_a_dsn_nothing_is_sent_and_the_run_goes_on(declare, receiver):
    declare()

    assert active_sdk() is None
    assert SCHEDULER.call(execution.run_declared_job, "reports.nightly") == "ok"

    assert receiver.received == []
    assert apps.get_app_config("crm").sentry_check_ins.open_count() == 0
    assert DjangoJobExecution.objects.get().status == history.SUCCEEDED


def test_sentry_crons_off_sends_no_check_in(declare, sentry, settings):
    settings.SENTRY_CRONS = False
    declare()

    assert SCHEDULER.call(execution.run_declared_job, "reports.nightly") == "ok"

    assert check_ins(sentry) == []


def test_a_sentry_that_fails_or_is_not_there_holds_no_run_up(declare, receiver):
    declare()
    receiver.status[ENVELOPES] = 500
    start_sentry(receiver.url("/1").replace("http://", "http://public@"))
    try:
        assert SCHEDULER.call(execution.run_declared_job, "reports.nightly") == "ok"
        sentry_sdk.flush(timeout=10)
        assert receiver.received  # it was tried, and answered 500
    finally:
        stop_sentry()

    start_sentry(f"http://public@127.0.0.1:{free_port()}/1")  # nothing listens there
    try:
        assert execution.run_declared_job("reports.nightly") == "ok"
        sentry_sdk.flush(timeout=10)
    finally:
        stop_sentry()
    assert DjangoJobExecution.objects.filter(status=history.SUCCEEDED).count() == 2


@pytest.mark.parametrize(
    ("seconds", "schedule"),
    [
        (60, {"type": "interval", "value": 1, "unit": "minute"}),
        (900, {"type": "interval", "value": 15, "unit": "minute"}),
        (7200, {"type": "interval", "value": 2, "unit": "hour"}),
        (172800, {"type": "interval", "value": 2, "unit": "day"}),
        # Under a minute, or not whole minutes: rounded up (Sentry has no seconds).
        (30, {"type": "interval", "value": 1, "unit": "minute"}),
        (90, {"type": "interval", "value": 2, "unit": "minute"}),
    ],
)
def test_an_interval_is_given_in_the_largest_unit_sentry_takes(seconds, schedule):
    declaration = JobDeclaration(id="j", func="f", interval_seconds=seconds)

    assert monitor_config(declaration)["schedule"] == schedule


def test_a_cron_macro_is_spelled_out_and_a_one_shot_job_has_no_monitor_config():
    daily = JobDeclaration(id="j", func="f", cron="@daily", timezone="UTC")
    once = JobDeclaration(id="j", func="f", run_at="2030-01-01T00:00:00+00:00")

    assert monitor_config(daily)["schedule"] == {"type": "crontab", "value": "0 0 * * *"}
    assert monitor_config(once) is None


def test_check_ins_that_cannot_be_made_are_logged_once_and_again_as_they_can(
    declare, receiver, caplog
):
    declare()
    dropping = threading.Event()
    dropping.set()
    start_sentry(
        receiver.url("/1").replace("http://", "http://public@"),
        before_send=lambda event, hint: None if dropping.is_set() else event,
    )
    try:
        with caplog.at_level(logging.INFO, logger="crm.scheduler"):
            for _ in range(3):
                assert SCHEDULER.call(execution.run_declared_job, "reports.nightly") == "ok"
            assert check_ins(receiver) == []
            dropping.clear()
            assert SCHEDULER.call(execution.run_declared_job, "reports.nightly") == "ok"
        assert [check_in["status"] for check_in in check_ins(receiver)] == ["in_progress", "ok"]
    finally:
        stop_sentry()

    lines = [r.getMessage() for r in caplog.records if "Sentry check-in" in r.getMessage()]
    assert lines == [
        "job reports.nightly's Sentry check-in could not be made: sentry-sdk dropped it; "
        "not logged again until one is",
        "Sentry check-ins are made again (job reports.nightly)",
    ]
