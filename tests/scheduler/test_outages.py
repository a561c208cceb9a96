"""While the database is away: honest answers, no mail per request, no run
left unrecorded, and every thread back on a new connection once it answers.
The outages here are real: this process's connection pointed at a server
nobody listens on, or the server ending the scheduler's own connections."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django_apscheduler.models import DjangoJobExecution

from crm.log_filters import OncePerDatabaseOutage
from crm.scheduler import control, history, recovery
from crm.scheduler.execution import FireTimeThreadExecutor
from crm.scheduler.models import RunDetail
from crm.scheduler.schedulers import Mode, build_scheduler
from crm.scheduler.tracking import RunsInProcess
from tests.support.processes import database_unreachable, wait_until

HEALTH = "/health/scheduler/"
TOKEN = "h" * 32


@pytest.fixture(autouse=True)
def declared(settings):
    settings.SCHEDULER_JOBS = [
        {
            "id": "tick",
            "func": "tests.scheduler.test_outages.tick",
            "interval_seconds": 1,
            "misfire_grace_seconds": 30,
            "fire_time_kwarg": "fire_time",
        },
        {
            "id": "hourly",
            "func": "tests.scheduler.test_outages.tick",
            "interval_seconds": 3600,
            "misfire_grace_seconds": 600,
            "fire_time_kwarg": "fire_time",
        },
    ]
    settings.HEALTH_TOKEN = TOKEN
    settings.DEBUG = False
    settings.ADMINS = [("Ops", "ops@example.com")]


FIRES = []


def tick(fire_time):
    FIRES.append(fire_time)


@pytest.mark.django_db(transaction=True)
def test_health_answers_503_json_while_the_database_is_unreachable(mailoutbox):
    with database_unreachable():
        anonymous = Client().get(HEALTH)
        monitor = Client().get(HEALTH, headers={"Authorization": f"Bearer {TOKEN}"})

    assert anonymous.status_code == 503
    assert anonymous["Content-Type"] == "application/json"
    assert anonymous.json() == {"status": "unhealthy"}
    assert monitor.status_code == 503
    assert monitor.json()["problems"][0].startswith("the database is unreachable: ")
    assert Client().get(HEALTH).status_code == 503  # no scheduler, but the database answers
    assert mailoutbox == []


@pytest.mark.django_db
def test_an_unhealthy_answer_is_not_mailed_to_admins_as_a_server_error(client, mailoutbox):
    for _ in range(3):
        assert client.get(HEALTH).status_code == 503

    assert mailoutbox == []


@pytest.fixture
def fresh_outage_filter():
    """The mail filter remembers the last outage it let through, per process."""
    for handler in logging.getLogger("django.request").handlers:
        for log_filter in handler.filters:
            if isinstance(log_filter, OncePerDatabaseOutage):
                log_filter._last_passed = float("-inf")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_outage_filter")
def test_pages_failing_during_an_outage_are_mailed_once_not_per_request(mailoutbox):
    browser = Client(raise_request_exception=False)
    with database_unreachable():
        answers = [
            browser.post("/admin/login/", {"username": "a", "password": "b"}).status_code
            for _ in range(3)
        ]

    assert answers == [500, 500, 500]
    assert len(mailoutbox) == 1
    assert "OperationalError" in mailoutbox[0].body or "Error" in mailoutbox[0].subject


@pytest.mark.django_db(transaction=True)
def test_status_says_the_database_is_unreachable_not_to_migrate():
    with database_unreachable(), pytest.raises(CommandError) as raised:
        call_command("scheduler", "status")

    assert "The database is unreachable" in str(raised.value)
    assert "migrate" not in str(raised.value)


@pytest.mark.django_db(transaction=True)
def test_the_end_of_a_run_the_database_missed_is_recorded_when_it_answers():
    control.sync("tests")
    fire = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    run = history.start_run("tick", fire, "schedule", host="web1", pid=1, scheduler="a")

    runs = RunsInProcess()
    runs.started(run.execution.pk)

    with database_unreachable():
        unrecorded = history.finish_run(run, status=history.SUCCEEDED, result=42)
        assert unrecorded is not None
        runs.ended(run.execution.pk, unrecorded)
        assert runs.record_unrecorded_ends() == 0
    assert run.execution.pk in runs.in_progress()
    assert DjangoJobExecution.objects.get(pk=run.execution.pk).status == history.RUNNING
    # Kept from being marked interrupted meanwhile: this process will record it.
    assert history.mark_interrupted_runs("", runs.in_progress()) == 0

    assert runs.record_unrecorded_ends() == 1

    assert DjangoJobExecution.objects.get(pk=run.execution.pk).status == history.SUCCEEDED
    assert RunDetail.objects.get(execution_id=run.execution.pk).result == 42
    assert runs.in_progress() == frozenset()


@pytest.fixture
def paused_scheduler():
    """A real scheduler on the database store, paused: it dispatches nothing
    itself, but its executor runs what is handed to it."""
    scheduler = build_scheduler(Mode.CONTINUOUS, FireTimeThreadExecutor())
    scheduler.start(paused=True)
    yield scheduler
    scheduler.shutdown(wait=True)


def scheduled_row(job_id: str, fire: datetime) -> None:
    execution = DjangoJobExecution.objects.create(
        job_id=job_id, run_time=fire, status=history.SUCCEEDED
    )
    RunDetail.objects.create(
        execution=execution, triggered_by="schedule", started_at=fire, host="h", pid=1
    )


def fires_of(job_id: str) -> list[datetime]:
    runs = DjangoJobExecution.objects.filter(job_id=job_id).order_by("run_time")
    return list(runs.values_list("run_time", flat=True))


@pytest.mark.django_db(transaction=True)
def test_a_fire_dispatched_and_never_run_is_run_once_by_the_next_scheduler(paused_scheduler):
    FIRES.clear()
    control.sync("tests")
    now = datetime.now(UTC).replace(microsecond=0)
    ran, lost = now - timedelta(hours=1, minutes=1), now - timedelta(minutes=1)
    scheduled_row("hourly", ran)
    # The previous holder handed `lost` to its executor (moving the next run
    # time on) and stopped before the run started.
    paused_scheduler.modify_job("hourly", next_run_time=lost + timedelta(hours=1))

    recovered = recovery.recover(paused_scheduler, since=now - timedelta(minutes=5))

    assert recovered == [("hourly", lost)]
    wait_until(lambda: len(fires_of("hourly")) == 2, timeout=10)
    assert fires_of("hourly") == [ran, lost]
    assert recovery.recover(paused_scheduler, since=now - timedelta(minutes=5)) == []
    assert paused_scheduler.get_job("hourly").next_run_time == lost + timedelta(hours=1)


@pytest.mark.django_db(transaction=True)
def test_fires_before_the_handover_window_are_not_taken_for_lost_ones(paused_scheduler):
    control.sync("tests")
    now = datetime.now(UTC).replace(microsecond=0)
    scheduled_row("hourly", now - timedelta(hours=1, minutes=1))
    # Skipped while paused, then resumed: not a fire someone dispatched.
    paused_scheduler.modify_job("hourly", next_run_time=now + timedelta(minutes=59))

    assert recovery.recover(paused_scheduler, since=now - timedelta(seconds=30)) == []


@pytest.mark.django_db(transaction=True)
def test_a_lost_fire_older_than_its_grace_is_left_alone(paused_scheduler):
    control.sync("tests")
    now = datetime.now(UTC).replace(microsecond=0)
    lost = now - timedelta(minutes=20)  # grace: 10 minutes
    scheduled_row("hourly", lost - timedelta(hours=1))
    paused_scheduler.modify_job("hourly", next_run_time=lost + timedelta(hours=1))

    assert recovery.recover(paused_scheduler, since=now - timedelta(hours=1)) == []


def other_connections_ended() -> None:
    """The database server ends every other connection to the test database,
    as a restart, a failover or an idle timeout would."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        else:
            cursor.execute(
                "SELECT id FROM information_schema.processlist "
                "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
            )
            for (thread_id,) in cursor.fetchall():
                cursor.execute(f"KILL CONNECTION {int(thread_id)}")


@pytest.mark.django_db(transaction=True)
def test_fires_go_on_after_the_server_ends_the_schedulers_connections(active_scheduler):
    if connection.vendor == "sqlite":
        pytest.skip("a SQLite file has no server to end connections")
    FIRES.clear()
    wait_until(lambda: len(FIRES) >= 2, timeout=15, message="no fires before the cut")

    for _ in range(3):
        other_connections_ended()
        cut = datetime.now(UTC)
        wait_until(
            lambda cut=cut: any(fire > cut for fire in FIRES),
            timeout=5,
            message="no fire within 5 s after the server ended the connections",
        )

    assert active_scheduler.active
    assert len(FIRES) == len(set(FIRES)), "a fire ran twice"


@pytest.mark.django_db(transaction=True)
def test_a_host_whose_clock_jumps_hours_ahead_runs_nothing_and_resumes_once_corrected(
    active_scheduler, caplog
):
    FIRES.clear()
    wait_until(lambda: len(FIRES) >= 2, timeout=15, message="no fires before the jump")

    with time_machine.travel(datetime.now(UTC) + timedelta(hours=2), tick=True):
        jumped = len(FIRES)
        wait_until(lambda: not active_scheduler.active, timeout=10, message="it kept the lease")
        during = list(FIRES[jumped:])
    corrected = datetime.now(UTC)
    wait_until(
        lambda: any(corrected < fire < corrected + timedelta(minutes=1) for fire in FIRES),
        timeout=15,
        message="no fire within seconds of the correction",
    )

    assert all(fire < corrected + timedelta(minutes=1) for fire in during), (
        "fires of the jumped clock ran"
    )
    assert not any(fire > corrected + timedelta(minutes=1) for fire in FIRES)
    assert "s ahead of the database's" in caplog.text
    assert len(FIRES) == len(set(FIRES))


@pytest.mark.django_db(transaction=True)
def test_the_admin_banner_says_the_database_is_unreachable():
    from django.template import Context, Template
    from django.test import RequestFactory

    page = Template("{% load scheduler_admin %}{% scheduler_banner %}")
    with database_unreachable():
        banner = page.render(Context({"request": RequestFactory().get("/admin/")}))

    assert "The database is unreachable" in banner


@pytest.fixture
def one_pass():
    """`runscheduler --once` in this process."""
    from crm.scheduler.runner import SchedulerRunner

    return lambda: SchedulerRunner().run_one_pass()


def this_connection_ended_by_the_server() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_backend_pid()"
            if connection.vendor == "postgresql"
            else "SELECT CONNECTION_ID()"
        )
        (ours,) = cursor.fetchone()
    admin = connection.get_new_connection(connection.get_connection_params())
    try:
        with admin.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT pg_terminate_backend(%s)", [ours])
            else:
                cursor.execute(f"KILL CONNECTION {int(ours)}")
    finally:
        admin.close()


@pytest.mark.django_db(transaction=True)
def test_one_pass_runs_what_is_due_on_a_connection_the_server_ended(one_pass):
    if connection.vendor == "sqlite":
        pytest.skip("a SQLite file has no server to end connections")
    FIRES.clear()
    control.sync("tests")
    with control.job_store() as store:
        store.modify_job("tick", next_run_time=datetime.now(UTC) - timedelta(seconds=5))
    this_connection_ended_by_the_server()

    assert one_pass() == "Ran the jobs that were due; lease released."
    assert len(FIRES) == 1


@pytest.mark.django_db(transaction=True)
def test_one_pass_says_the_database_is_unreachable(one_pass):
    with database_unreachable():
        outcome = one_pass()

    assert outcome.startswith("The database is unreachable; nothing run.")
