"""Outbound pings (crm.scheduler.pings): a job's ping_url as each run starts
and ends, in the healthchecks.io convention, and the active scheduler's
heartbeat; sent in the background, so a slow or dead receiver never holds a
run up, and logged once per change of the receiver's state."""

import logging
import os

import pytest
from django.apps import apps
from django_apscheduler.models import DjangoJobExecution

from crm.scheduler import control, execution, history
from tests.support.processes import free_port

pytestmark = pytest.mark.django_db


def succeed(ping_held=None):
    if ping_held is not None:
        # The run goes on only once its start ping is stuck in the receiver.
        assert ping_held.wait(10), "the start ping never reached the receiver"
    return "ok"


def fail():
    raise ValueError("the report server said no")


@pytest.fixture
def declare(settings):
    settings.AUTO_CLOSE_ENABLED = settings.EXECUTION_PRUNE_ENABLED = False
    settings.PING_TIMEOUT_SECONDS = 0.5

    def declare(func="succeed", **fields):
        settings.SCHEDULER_JOBS = [
            {
                "id": "pinged",
                "func": f"tests.scheduler.test_pings.{func}",
                "interval_seconds": 3600,
                **fields,
            }
        ]
        control.sync("tests")

    return declare


def sent_everything():
    assert apps.get_app_config("crm").ping_sender.drain(timeout=15)


def ping_warnings(caplog) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "crm.scheduler" and record.levelno >= logging.WARNING
    ]


def test_a_run_pings_start_then_success_with_its_duration(declare, receiver):
    declare(ping_url=receiver.url("/ping/abc"))

    assert execution.run_declared_job("pinged") == "ok"

    start, success = receiver.wait_for(2)
    assert (start.method, start.path) == ("POST", "/ping/abc/start")
    assert start.body.startswith("started the fire of ")
    assert success.path == "/ping/abc"
    assert success.body.startswith("succeeded in ") and success.body.endswith(" s")


def test_a_failed_run_pings_fail_with_its_error_keeping_the_query_string(declare, receiver):
    declare(func="fail", ping_url=receiver.url("/ping/KEY/nightly?create=1"))

    with pytest.raises(ValueError):
        execution.run_declared_job("pinged")

    start, failure = receiver.wait_for(2)
    assert start.path == "/ping/KEY/nightly/start?create=1"
    assert failure.path == "/ping/KEY/nightly/fail?create=1"
    assert failure.body.startswith("failed after ")
    assert "ValueError: the report server said no" in failure.body


def test_a_job_without_a_ping_url_sends_nothing(declare, receiver):
    declare()

    execution.run_declared_job("pinged")
    sent_everything()

    assert receiver.received == []


def test_a_slow_receiver_times_out_without_holding_the_run_up(declare, receiver):
    receiver.hold["/ping/start"] = 1  # the first start ping gets no answer
    declare(ping_url=receiver.url("/ping"), kwargs={"ping_held": receiver.held})

    assert execution.run_declared_job("pinged") == "ok"

    # The run has ended and is recorded while its start ping is still unanswered.
    assert receiver.holding == 1
    run = DjangoJobExecution.objects.get(job_id="pinged")
    assert run.status == history.SUCCEEDED
    # The sender gave up on it after PING_TIMEOUT_SECONDS, tried again, went on.
    assert [request.path for request in receiver.wait_for(3)] == [
        "/ping/start",
        "/ping/start",
        "/ping",
    ]


def test_an_unreachable_ping_target_is_logged_once_not_at_each_run(declare, caplog):
    declare(ping_url=f"http://127.0.0.1:{free_port()}/ping/SECRET-KEY")

    with caplog.at_level(logging.INFO, logger="crm.scheduler"):
        for _ in range(3):
            assert execution.run_declared_job("pinged") == "ok"
        sent_everything()

    (warning,) = ping_warnings(caplog)
    assert warning.startswith("job pinged's ping to http://127.0.0.1:")
    assert "failed: [Errno 111] Connection refused" in warning
    assert "SECRET-KEY" not in caplog.text and "Traceback" not in caplog.text
    assert DjangoJobExecution.objects.filter(status=history.SUCCEEDED).count() == 3


def test_a_refusing_receiver_is_logged_as_it_fails_and_as_it_takes_pings_again(
    declare, receiver, caplog
):
    declare(ping_url=receiver.url("/ping"))

    def runs(count):
        for _ in range(count):
            execution.run_declared_job("pinged")
        sent_everything()

    with caplog.at_level(logging.INFO, logger="crm.scheduler"):
        receiver.status.update({"/ping/start": 404, "/ping": 404})
        runs(2)
        receiver.status.clear()
        runs(2)
        receiver.status["/ping"] = 503
        runs(1)

    lines = [r.getMessage() for r in caplog.records if "job pinged's ping" in r.getMessage()]
    assert [line.split(": ", 1)[-1].split(";")[0] for line in lines] == [
        "HTTP 404",
        f"job pinged's ping to {receiver.url('/')}… goes through again",
        "HTTP 503",
    ]
    # 404 is not retried; 503 is, twice: 4 pings per run, then 1 + 3.
    assert len(receiver.received) == 2 * 2 + 2 * 2 + 1 + 3


@pytest.mark.django_db(transaction=True)
def test_each_pass_of_runscheduler_once_pings_the_heartbeat(settings, receiver):
    from crm.scheduler.runner import SchedulerRunner

    settings.SCHEDULER_HEARTBEAT_URL = receiver.url("/heartbeat")

    for _ in range(2):
        assert SchedulerRunner().run_one_pass() == "Ran the jobs that were due; lease released."

    first, second = receiver.wait_for(2)
    assert first.path == second.path == "/heartbeat"
    assert first.body.startswith("scheduler active: host ")


@pytest.mark.django_db(transaction=True)
def test_the_active_scheduler_pings_the_heartbeat_every_n_minutes(
    settings, receiver, active_scheduler
):
    settings.SCHEDULER_HEARTBEAT_MINUTES = 1 / 60  # a second, for the test
    settings.SCHEDULER_HEARTBEAT_URL = receiver.url("/heartbeat")

    first, second = receiver.wait_for(2)

    assert first.path == second.path == "/heartbeat"
    assert (
        first.body
        == f"scheduler active: host {active_scheduler.lease.holder.host}, pid {os.getpid()}"
    )
    assert second.at - first.at >= 0.9
