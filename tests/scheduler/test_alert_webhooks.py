"""Alerts posted to a webhook (ALERT_WEBHOOK_URL, or a job's own
alert_webhook_url) as JSON with a Slack-compatible `text`: once per
transition, claimed in the database like the mail (crm.scheduler.alerts)."""

import logging
from datetime import timedelta

import pytest
import time_machine
from django.apps import apps
from django_apscheduler.models import DjangoJobExecution

from crm.scheduler import alerts, control
from crm.scheduler.lease import LEASE_NAME, Lease, database_now_plus
from crm.scheduler.models import SchedulerLease
from tests.scheduler.test_alerts import DUE, GRACE, run
from tests.support.processes import free_port
from tests.support.receiver import Receiver

pytestmark = pytest.mark.django_db


def job(job_id, **fields):
    return {
        "id": job_id,
        "func": "tests.scheduler.test_alerts.flaky",
        "cron": "0 * * * *",
        "misfire_grace_seconds": int(GRACE.total_seconds()),
        **fields,
    }


@pytest.fixture(autouse=True)
def declared(settings, receiver):
    settings.ADMINS = []
    settings.SITE_URL = "https://crm.example.com"
    settings.ALERT_WEBHOOK_URL = receiver.url("/services/T0/B0/SECRET")
    settings.AUTO_CLOSE_ENABLED = settings.EXECUTION_PRUNE_ENABLED = False
    settings.SCHEDULER_JOBS = [job("flaky")]
    with time_machine.travel(DUE - timedelta(minutes=1), tick=False):
        control.sync("tests")


def posted(receiver) -> list[dict]:
    assert apps.get_app_config("crm").ping_sender.drain(timeout=15)
    assert {request.content_type for request in receiver.received} <= {"application/json"}
    return [request.json() for request in receiver.received]


def test_a_failing_job_is_posted_once_and_once_more_when_it_recovers(receiver):
    for minute in range(3):
        run(DUE + timedelta(minutes=minute), fail=True)

    (failing,) = posted(receiver)
    first_failure = DjangoJobExecution.objects.order_by("run_time").first()
    job_url = "https://crm.example.com/admin/django_apscheduler/djangojob/flaky/change/"
    assert failing == {
        "text": "Scheduled job flaky is failing: ValueError: the report server said no\n" + job_url,
        "job": "flaky",
        "state": "failing",
        "subject": "Scheduled job flaky is failing",
        "error": "ValueError: the report server said no",
        "run_time": "2026-11-23T12:00:00+00:00",
        "run_url": "https://crm.example.com/admin/django_apscheduler/djangojobexecution/"
        f"{first_failure.pk}/change/",
        "admin_url": job_url,
    }
    assert receiver.received[0].path == "/services/T0/B0/SECRET"

    run(DUE + timedelta(minutes=3), fail=False)
    run(DUE + timedelta(minutes=4), fail=False)
    assert [(alert["state"], alert["text"].split("\n")[0]) for alert in posted(receiver)[1:]] == [
        (
            "recovered",
            "Scheduled job flaky recovered: Its run for 2026-11-23T12:03:00+00:00 succeeded.",
        )
    ]


def test_a_late_job_is_posted_with_its_due_time_and_once_more_when_on_time(receiver):
    assert alerts.check(now=DUE + GRACE + timedelta(seconds=1)) == ["Scheduled job flaky is late"]
    assert alerts.check(now=DUE + timedelta(hours=5)) == []
    with control.job_store() as store:
        store.modify_job("flaky", next_run_time=DUE + timedelta(hours=6))
    alerts.check(now=DUE + timedelta(hours=5, minutes=1))

    late, on_time = posted(receiver)
    assert (late["state"], late["late_since"], late["misfire_grace_seconds"]) == (
        "late",
        "2026-11-23T12:00:00+00:00",
        600,
    )
    assert late["text"].startswith(
        "Scheduled job flaky is late: due at 2026-11-23T12:00:00+00:00, "
        "not run within its misfire grace of 600 s\n"
    )
    assert (on_time["state"], on_time["next_run"]) == ("on_time", "2026-11-23T18:00:00+00:00")


def test_a_jobs_own_webhook_gets_its_alerts_instead_of_the_global_one(settings, receiver):
    with Receiver() as own:
        settings.SCHEDULER_JOBS = [job("flaky", alert_webhook_url=own.url("/team")), job("other")]
        with time_machine.travel(DUE - timedelta(minutes=1), tick=False):
            control.sync("tests")

        alerts.check(now=DUE + timedelta(hours=1))

        assert [alert["job"] for alert in posted(own)] == ["flaky"]
        assert [alert["job"] for alert in posted(receiver)] == ["other"]


def test_a_jobs_own_webhook_works_without_admins_or_a_global_webhook(settings):
    settings.ALERT_WEBHOOK_URL = ""
    with Receiver() as own:
        settings.SCHEDULER_JOBS = [job("flaky", alert_webhook_url=own.url("/team")), job("other")]

        assert alerts.check(now=DUE + timedelta(hours=1)) == ["Scheduled job flaky is late"]
        assert [alert["state"] for alert in posted(own)] == ["late"]


def test_with_admins_the_same_transition_is_mailed_and_posted(settings, receiver, mailoutbox):
    settings.ADMINS = [("Ops", "ops@example.com")]

    alerts.check(now=DUE + timedelta(hours=1))

    assert [message.subject for message in mailoutbox] == ["[CRM] Scheduled job flaky is late"]
    assert [alert["subject"] for alert in posted(receiver)] == ["Scheduled job flaky is late"]


def test_the_scheduler_missing_is_posted_to_the_global_webhook(receiver):
    assert Lease(LEASE_NAME, timedelta(seconds=30)).acquire()
    # Its holder stopped renewing it five minutes ago (by the database's clock).
    SchedulerLease.objects.update(
        heartbeat_at=database_now_plus(-timedelta(minutes=5)),
        expires_at=database_now_plus(-timedelta(minutes=4)),
    )

    alerts.check()

    states = [(alert["job"], alert["state"]) for alert in posted(receiver)]
    assert (None, "no_scheduler") in states
    (absent,) = [alert for alert in posted(receiver) if alert["state"] == "no_scheduler"]
    assert absent["text"].startswith("No scheduler is running: since ")
    assert absent["admin_url"] == "https://crm.example.com/admin/django_apscheduler/djangojob/"


def test_an_unreachable_webhook_is_logged_once_never_with_its_secret(settings, caplog):
    settings.ALERT_WEBHOOK_URL = f"http://127.0.0.1:{free_port()}/services/T0/B0/SECRET"

    with caplog.at_level(logging.INFO, logger="crm.scheduler"):
        run(DUE, fail=True)
        run(DUE + timedelta(minutes=1), fail=False)
        run(DUE + timedelta(minutes=2), fail=True)
        assert apps.get_app_config("crm").ping_sender.drain(timeout=15)

    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("the alert webhook to http://127.0.0.1:")
    assert "SECRET" not in caplog.text and "Traceback" not in caplog.text
    posted_lines = [
        r.getMessage() for r in caplog.records if "posted to the webhook" in r.getMessage()
    ]
    assert len(posted_lines) == 3


@pytest.mark.parametrize(
    "url", ["hooks.slack.com/services/T0/B0/SECRET", "https://[hooks.slack.com/services/SECRET"]
)
def test_a_malformed_webhook_is_logged_once_never_with_its_secret(settings, caplog, url):
    settings.ALERT_WEBHOOK_URL = url

    with caplog.at_level(logging.INFO, logger="crm.scheduler"):
        run(DUE, fail=True)
        run(DUE + timedelta(minutes=1), fail=False)
        assert apps.get_app_config("crm").ping_sender.drain(timeout=15)

    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "failed: not an http:// or https:// URL (`manage.py check` says why)" in warnings[0]
    assert "SECRET" not in caplog.text and "Traceback" not in caplog.text
