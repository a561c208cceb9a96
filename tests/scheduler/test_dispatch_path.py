"""The way from a fire to its job's first line: the run's history row written
(what makes it run once) and nothing else read or written, on a database
connection kept from one fire to the next and replaced once the server ended it."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution

from crm.scheduler import control, execution, history, overlap
from tests.factories import run_going_on_elsewhere

pytestmark = pytest.mark.django_db(transaction=True)
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK")
SEEN = []  # what each run of `note` saw as it started
CAPTURE = None  # the CaptureQueriesContext a run of `note` reads, if any


def note(fire_time):
    SEEN.append(
        {
            "fire_time": fire_time,
            "queries": statements(CAPTURE.captured_queries) if CAPTURE else None,
            "connection": connection.connection,  # kept: no other object gets its id
            "server_id": server_connection_id(),
        }
    )


def statements(captured) -> list[str]:
    return [
        query["sql"]
        for query in captured
        if not query["sql"].upper().startswith(TRANSACTION_CONTROL)
    ]


def server_connection_id():
    if connection.vendor == "sqlite":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_backend_pid()"
            if connection.vendor == "postgresql"
            else "SELECT CONNECTION_ID()"
        )
        return cursor.fetchone()[0]


@pytest.fixture(autouse=True)
def declared(settings):
    SEEN.clear()
    settings.SCHEDULER_JOBS = [
        {
            "id": "note",
            "func": "tests.scheduler.test_dispatch_path.note",
            "interval_seconds": 60,
            "fire_time_kwarg": "fire_time",
        },
        {
            "id": "note_retried",
            "func": "tests.scheduler.test_dispatch_path.note",
            "interval_seconds": 60,
            "fire_time_kwarg": "fire_time",
            "retries": 2,
            "retry_backoff_seconds": 10,
        },
    ]
    control.sync("tests")


def run_as_scheduled(job_id: str, fire_time: datetime):
    """Run `job_id` in this thread as the active scheduler runs a fire, the
    queries it makes captured for `note` to read."""
    global CAPTURE
    context = execution.RunContext(scheduler="the active scheduler")
    token = execution.scheduled_fire_time.set(fire_time)
    try:
        with CaptureQueriesContext(connection) as CAPTURE:
            context.call(execution.run_declared_job, job_id)
    finally:
        CAPTURE = None
        execution.scheduled_fire_time.reset(token)


def test_a_fire_writes_its_history_row_and_nothing_else_before_its_job_starts():
    run_as_scheduled("note", datetime(2026, 12, 1, 9, 0, tzinfo=UTC))

    [seen] = SEEN
    if connection.vendor == "postgresql":  # both in one statement
        [statement] = seen["queries"]
        assert statement.startswith("WITH execution AS ( INSERT INTO")
    else:
        assert [sql.split()[:3] for sql in seen["queries"]] == [
            ["INSERT", "INTO", connection.ops.quote_name("django_apscheduler_djangojobexecution")],
            ["INSERT", "INTO", connection.ops.quote_name("crm_rundetail")],
        ]
    assert DjangoJobExecution.objects.get(job_id="note").status == history.SUCCEEDED


def test_a_job_with_retries_also_looks_for_earlier_fires_waiting_for_a_retry():
    run_as_scheduled("note_retried", datetime(2026, 12, 1, 9, 0, tzinfo=UTC))

    [seen] = SEEN
    *history_row, look_for_retries = seen["queries"]
    assert len(history_row) == (1 if connection.vendor == "postgresql" else 2)
    assert look_for_retries.startswith("SELECT")


def test_a_fire_that_already_ran_is_not_run_again():
    fire = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    run_as_scheduled("note", fire)
    run_as_scheduled("note", fire)

    assert len(SEEN) == 1
    assert DjangoJobExecution.objects.filter(job_id="note").count() == 1


class Fires:
    """Fires `note` through the active scheduler's executor, one at a time."""

    def __init__(self):
        self.executor = execution.FireTimeThreadExecutor(
            execution.RunContext(scheduler="the active scheduler")
        )
        self.scheduler = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": self.executor},
            timezone="UTC",
        )
        self.done = threading.Semaphore(0)
        self.scheduler.add_listener(
            lambda event: self.done.release(), EVENT_JOB_EXECUTED | EVENT_JOB_ERROR
        )
        self.scheduler.start()

    def fire(self, minutes_ago: int) -> None:
        fire_time = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)
        self.scheduler.add_job(
            execution.run_declared_job,
            "date",
            run_date=fire_time,
            args=["note"],
            misfire_grace_time=3600,
        )
        assert self.done.acquire(timeout=10), "the fire did not run"

    def stop(self) -> None:
        self.scheduler.shutdown(wait=True)


@pytest.fixture
def fires():
    fires = Fires()
    yield fires
    fires.stop()


def test_the_next_fire_runs_on_the_connection_the_last_one_used(fires):
    fires.fire(minutes_ago=2)
    fires.fire(minutes_ago=1)

    first, second = SEEN
    assert first["connection"] is not None and second["connection"] is first["connection"]
    assert DjangoJobExecution.objects.filter(status=history.SUCCEEDED).count() == 2


@pytest.mark.skipif("connection.vendor == 'sqlite'", reason="SQLite has no server to cut it")
def test_a_connection_the_server_ended_is_replaced_and_the_next_fire_runs(fires):
    fires.fire(minutes_ago=2)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_terminate_backend(%s)", [SEEN[0]["server_id"]])
        else:
            cursor.execute(f"KILL {int(SEEN[0]['server_id'])}")

    fires.fire(minutes_ago=1)

    first, second = SEEN
    assert second["server_id"] != first["server_id"]
    assert DjangoJobExecution.objects.filter(status=history.SUCCEEDED).count() == 2


def test_a_fire_counts_no_runs_elsewhere_without_a_query_when_none_went_on_at_its_start():
    elsewhere = overlap.RunsElsewhere(host="web1", pid=1, live_within=timedelta(seconds=30))
    elsewhere.refresh()

    with CaptureQueriesContext(connection) as queries:
        assert elsewhere.count("note") == 0
    assert len(queries) == 0


def test_a_run_another_scheduler_started_counts_once_looked_up():
    run_going_on_elsewhere("note")
    elsewhere = overlap.RunsElsewhere(host="web1", pid=1, live_within=timedelta(seconds=30))
    elsewhere.refresh()

    assert elsewhere.count("note") == 1
    assert elsewhere.count("note_retried") == 0
