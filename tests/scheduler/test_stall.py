"""A scheduler that holds the lease but dispatches nothing is "stalled", and
says so in `scheduler status`, the health endpoint, the admin banner and one
alert mail; so is the absence of any scheduler for longer than the lease plus
a minute."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from crm.scheduler import alerts, control, status
from crm.scheduler.lease import Lease, database_now_plus
from crm.scheduler.models import SchedulerLease
from crm.scheduler.runner import LEASE_NAME
from tests.support.processes import wait_until

pytestmark = pytest.mark.django_db
HEALTH = "/health/scheduler/"


@pytest.fixture(autouse=True)
def declared(settings):
    settings.SCHEDULER_JOBS = [
        {"id": "often", "func": "tests.support.e2e_jobs.record_fire", "interval_seconds": 3600}
    ]
    settings.SCHEDULER_LEASE_SECONDS = 30
    settings.SCHEDULER_STALL_SECONDS = 20
    settings.HEALTH_TOKEN = "t" * 32
    settings.ADMINS = [("Ops", "ops@example.com")]
    control.sync("tests")


def held_since(seconds: float, dispatched_seconds_ago: float | None) -> None:
    """Another process holds the lease, taken `seconds` ago, its dispatch loop
    last reading the store `dispatched_seconds_ago` (None: never)."""
    if not SchedulerLease.objects.exists():
        assert Lease(LEASE_NAME, timedelta(seconds=30)).acquire()
    SchedulerLease.objects.update(
        acquired_at=database_now_plus(-timedelta(seconds=seconds)),
        dispatched_at=None
        if dispatched_seconds_ago is None
        else database_now_plus(-timedelta(seconds=dispatched_seconds_ago)),
    )


def stalled() -> bool:
    active = status.active_scheduler()
    return active is not None and active.stalled_since(status.job_states()) is not None


def test_a_scheduler_whose_dispatch_loop_reads_the_store_is_not_stalled():
    held_since(seconds=600, dispatched_seconds_ago=1)

    assert not stalled()


def test_a_scheduler_whose_dispatch_loop_stopped_reading_the_store_is_stalled():
    held_since(seconds=600, dispatched_seconds_ago=25)

    assert stalled()


def test_a_scheduler_that_never_dispatched_is_stalled_once_the_limit_has_passed():
    held_since(seconds=5, dispatched_seconds_ago=None)
    assert not stalled()

    held_since(seconds=25, dispatched_seconds_ago=None)
    assert stalled()


def test_a_fire_due_long_ago_and_not_dispatched_is_a_stall_even_if_the_store_is_read():
    held_since(seconds=600, dispatched_seconds_ago=1)
    with control.job_store() as store:
        store.modify_job("often", next_run_time=datetime.now(UTC) - timedelta(minutes=5))

    assert stalled()


def test_the_limit_is_never_shorter_than_what_a_healthy_holder_shows_between_renewals(
    settings,
):
    settings.SCHEDULER_STALL_SECONDS = 5
    settings.SCHEDULER_LEASE_SECONDS = 60  # renewed every 20 s
    held_since(seconds=600, dispatched_seconds_ago=19)

    assert not stalled()


def test_status_exits_non_zero_and_says_stalled(capsys):
    held_since(seconds=600, dispatched_seconds_ago=40)

    with pytest.raises(CommandError, match="stalled") as raised:
        call_command("scheduler", "status")

    assert raised.value.returncode == 1
    assert "STALLED" in capsys.readouterr().out


def test_status_json_says_stalled(capsys):
    held_since(seconds=600, dispatched_seconds_ago=40)

    with pytest.raises(CommandError):
        call_command("scheduler", "status", "--json")

    assert '"stalled": true' in capsys.readouterr().out


def test_health_is_503_and_names_the_stall(client):
    held_since(seconds=600, dispatched_seconds_ago=40)

    response = client.get(HEALTH, headers={"Authorization": f"Bearer {'t' * 32}"})

    assert response.status_code == 503
    assert any("stalled" in problem for problem in response.json()["problems"])
    assert response.json()["active_scheduler"]["stalled"] is True


def test_health_checks_without_stalled_ignores_it(client, settings):
    settings.HEALTH_CHECKS = ["active"]
    held_since(seconds=600, dispatched_seconds_ago=40)

    assert client.get(HEALTH).status_code == 200


def test_the_admin_banner_says_stalled(admin_client):
    held_since(seconds=600, dispatched_seconds_ago=40)

    page = admin_client.get("/admin/").content.decode()

    assert "The active scheduler is stalled" in page


def test_a_stall_is_mailed_once_and_once_more_when_it_ends(mailoutbox):
    held_since(seconds=600, dispatched_seconds_ago=40)

    alerts.check()
    alerts.check()
    assert [mail.subject for mail in mailoutbox] == ["[CRM] The scheduler is stalled"]
    assert "holds the lease but has dispatched nothing" in mailoutbox[0].body

    SchedulerLease.objects.update(dispatched_at=database_now_plus(timedelta(0)))
    alerts.check()
    alerts.check()
    assert [mail.subject for mail in mailoutbox][1:] == ["[CRM] The scheduler dispatches again"]


def test_no_scheduler_for_longer_than_the_lease_and_a_minute_is_mailed_once(mailoutbox):
    assert Lease(LEASE_NAME, timedelta(seconds=30)).acquire()
    gone_for = lambda seconds: SchedulerLease.objects.update(  # noqa: E731
        heartbeat_at=database_now_plus(-timedelta(seconds=seconds)),
        expires_at=database_now_plus(-timedelta(seconds=seconds - 30)),
    )
    gone_for(60)
    alerts.check()
    assert mailoutbox == []

    gone_for(100)
    alerts.check()
    alerts.check()
    assert [mail.subject for mail in mailoutbox] == ["[CRM] No scheduler is running"]

    assert Lease(LEASE_NAME, timedelta(seconds=30)).acquire()
    alerts.check()
    assert [mail.subject for mail in mailoutbox][1:] == ["[CRM] A scheduler is running again"]


def test_no_scheduler_is_not_mailed_when_no_job_is_enabled(mailoutbox, settings):
    settings.SCHEDULER_JOBS = []
    settings.AUTO_CLOSE_ENABLED = settings.EXECUTION_PRUNE_ENABLED = False
    assert Lease(LEASE_NAME, timedelta(seconds=30)).acquire()
    SchedulerLease.objects.update(heartbeat_at=database_now_plus(-timedelta(hours=1)))

    alerts.check()

    assert mailoutbox == []


@pytest.fixture
def quick_alerts(settings):
    settings.SCHEDULER_STALL_SECONDS = 5
    settings.SCHEDULER_ALERT_CHECK_SECONDS = 1


@pytest.mark.django_db(transaction=True)
def test_a_real_dispatch_loop_that_blocks_is_reported_by_status_health_and_one_mail(
    quick_alerts, active_scheduler, client, mailoutbox
):
    assert not stalled()

    # A job (or a bug) that holds the job store's lock blocks every pass,
    # while the lease keeper goes on renewing the lease.
    active_scheduler.scheduler.jobstores_lock.acquire()
    try:
        wait_until(stalled, timeout=20, message="the blocked scheduler was not reported")
        with pytest.raises(CommandError, match="stalled"):
            call_command("scheduler", "status")
        health = client.get(HEALTH, headers={"Authorization": f"Bearer {'t' * 32}"})
        assert health.status_code == 503
        assert health.json()["active_scheduler"]["stalled"] is True
        wait_until(lambda: mailoutbox, timeout=10, message="no alert was mailed")
    finally:
        active_scheduler.scheduler.jobstores_lock.release()

    wait_until(lambda: not stalled(), timeout=10, message="still stalled after it was unblocked")
    wait_until(lambda: len(mailoutbox) >= 2, timeout=10, message="no mail that it recovered")
    assert [mail.subject for mail in mailoutbox] == [
        "[CRM] The scheduler is stalled",
        "[CRM] The scheduler dispatches again",
    ]
