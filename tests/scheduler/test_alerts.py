"""ADMINS get one mail when a job becomes failing or late and one when it
recovers, whichever process notices first (crm.scheduler.alerts)."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.apps import apps
from django.db import connection
from django_apscheduler.models import DjangoJobExecution

from crm.scheduler import alerts, control, execution
from crm.scheduler.lease import LEASE_NAME, Lease
from crm.scheduler.runner import SchedulerRunner
from tests.support.processes import wait_until

pytestmark = pytest.mark.django_db
DUE = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
GRACE = timedelta(seconds=600)
OUTCOME = {"fail": False}


def flaky():
    if OUTCOME["fail"]:
        raise ValueError("the report server said no")
    return "ok"


@pytest.fixture(autouse=True)
def declared(settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.SITE_URL = "https://crm.example.com"
    settings.AUTO_CLOSE_ENABLED = settings.EXECUTION_PRUNE_ENABLED = False
    settings.SCHEDULER_JOBS = [
        {
            "id": "flaky",
            "func": "tests.scheduler.test_alerts.flaky",
            "cron": "0 * * * *",
            "misfire_grace_seconds": int(GRACE.total_seconds()),
        }
    ]
    with time_machine.travel(DUE - timedelta(minutes=1), tick=False):
        control.sync("tests")
    OUTCOME["fail"] = False


def run(at: datetime, fail: bool) -> None:
    OUTCOME["fail"] = fail
    with time_machine.travel(at, tick=False):
        if fail:
            with pytest.raises(ValueError):
                execution.run_declared_job("flaky")
        else:
            execution.run_declared_job("flaky")


def subjects(outbox) -> list[str]:
    assert all(message.subject.startswith("[CRM] ") for message in outbox)
    return [message.subject.removeprefix("[CRM] ") for message in outbox]


def test_a_failing_job_is_mailed_once_and_once_more_when_it_recovers(mailoutbox):
    for minute in range(3):
        run(DUE + timedelta(minutes=minute), fail=True)
    assert subjects(mailoutbox) == ["Scheduled job flaky is failing"]
    first_failure = DjangoJobExecution.objects.order_by("run_time").first()
    body = mailoutbox[0].body
    assert "ValueError: the report server said no" in body and "Traceback" in body
    assert (
        "https://crm.example.com/admin/django_apscheduler/djangojobexecution/"
        f"{first_failure.pk}/change/" in body
    )

    run(DUE + timedelta(minutes=3), fail=False)
    run(DUE + timedelta(minutes=4), fail=False)
    assert subjects(mailoutbox)[1:] == ["Scheduled job flaky recovered"]
    assert "https://crm.example.com/admin/django_apscheduler/djangojob/flaky/change/" in (
        mailoutbox[1].body
    )

    run(DUE + timedelta(minutes=5), fail=True)
    assert subjects(mailoutbox)[2:] == ["Scheduled job flaky is failing"]


def test_a_late_job_is_mailed_once_and_once_more_when_it_is_on_time_again(mailoutbox):
    assert alerts.check(now=DUE + GRACE) == []
    assert alerts.check(now=DUE + GRACE + timedelta(seconds=1)) == ["Scheduled job flaky is late"]
    assert "was due at 2026-11-23T12:00:00+00:00" in mailoutbox[0].body
    assert alerts.check(now=DUE + timedelta(hours=5)) == []
    # A process whose clock lags sees the job on time; it was not run, so
    # nothing changed and nobody is told it recovered.
    assert alerts.check(now=DUE) == []

    # A scheduler came back and ran the missed fire: the next fire moved.
    with control.job_store() as store:
        store.modify_job("flaky", next_run_time=DUE + timedelta(hours=6))
    assert alerts.check(now=DUE + timedelta(hours=5, minutes=1)) == [
        "Scheduled job flaky is on time again"
    ]
    assert "Its next run is at 2026-11-23T18:00:00+00:00" in mailoutbox[1].body
    assert len(mailoutbox) == 2


def test_pausing_a_late_job_ends_its_lateness_with_one_mail(mailoutbox):
    alerts.check(now=DUE + timedelta(hours=1))
    control.pause_job("flaky", "tests")

    assert alerts.check(now=DUE + timedelta(hours=2)) == ["Scheduled job flaky is on time again"]
    assert "It is paused." in mailoutbox[1].body


def test_without_admins_nothing_is_mailed_or_recorded(settings, mailoutbox):
    settings.ADMINS = []
    run(DUE, fail=True)

    assert alerts.check(now=DUE + timedelta(hours=1)) == []
    assert mailoutbox == []


def test_without_site_url_the_link_is_a_path_with_a_hint(settings, mailoutbox):
    settings.SITE_URL = ""
    alerts.check(now=DUE + timedelta(hours=1))

    assert (
        "/admin/django_apscheduler/djangojob/flaky/change/ (set SITE_URL for a full link)"
        in mailoutbox[0].body
    )


@pytest.mark.django_db(transaction=True)
def test_processes_noticing_the_same_change_at_once_mail_and_post_it_once(
    settings, mailoutbox, receiver
):
    settings.ALERT_WEBHOOK_URL = receiver.url("/webhook")
    start = threading.Barrier(4)

    def notice():
        start.wait()
        try:
            alerts.check(now=DUE + timedelta(hours=1))
        finally:
            connection.close()

    threads = [threading.Thread(target=notice) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert subjects(mailoutbox) == ["Scheduled job flaky is late"]
    assert apps.get_app_config("crm").ping_sender.drain(timeout=15)
    assert [request.json()["subject"] for request in receiver.received] == [
        "Scheduled job flaky is late"
    ]


@pytest.mark.django_db(transaction=True)
def test_a_standby_process_mails_that_a_job_is_late_while_no_scheduler_runs_it(
    settings, mailoutbox
):
    settings.SCHEDULER_ALERT_CHECK_SECONDS = 1
    with control.job_store() as store:
        store.modify_job("flaky", next_run_time=datetime.now(UTC) - timedelta(hours=2))
    # Another process holds the lease (and has stopped renewing it).
    assert Lease(LEASE_NAME, timedelta(seconds=60)).acquire()

    runner = SchedulerRunner()
    runner.start()
    try:
        wait_until(lambda: mailoutbox, timeout=15, message="no alert was mailed")
    finally:
        runner.stop()

    assert not runner.active
    assert subjects(mailoutbox) == ["Scheduled job flaky is late"]
