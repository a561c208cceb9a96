"""`overlap`: what a fire due while a run of its job is still going does —
skip, queue one run for right after, or allow up to `max_concurrent` at once —
counting runs that go on in another process that still says so."""

import json
import threading
import time
from contextlib import contextmanager
from io import StringIO
from itertools import combinations, pairwise

import pytest
from django.core.management import call_command
from django_apscheduler.models import DjangoJobExecution

from crm.scheduler import control, history
from crm.scheduler.checks import declaration_errors
from crm.scheduler.runner import SchedulerRunner
from tests.factories import run_going_on_elsewhere
from tests.support.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
SPANS = []  # (start, end) of each run of `slow`, monotonic
SPANS_LOCK = threading.Lock()
RUN_SECONDS = 2.5


def slow():
    start = time.monotonic()
    time.sleep(RUN_SECONDS)
    with SPANS_LOCK:
        SPANS.append((start, time.monotonic()))


def quick():
    return "done"


@pytest.fixture
def declare(settings):
    SPANS.clear()

    def declare(func="slow", **fields):
        settings.SCHEDULER_JOBS = [
            {
                "id": "slow",
                "func": f"tests.scheduler.test_overlap.{func}",
                "interval_seconds": 1,
                **fields,
            }
        ]
        control.sync("tests")

    return declare


def runs(count: int) -> list[tuple[float, float]]:
    """The first `count` runs of a job firing each second, each run longer than that."""

    def ended():
        with SPANS_LOCK:
            return len(SPANS) >= count and sorted(SPANS)

    return wait_until(ended, timeout=30, interval=0.1)


def at_once(spans) -> int:
    """The most runs that went on at the same moment."""
    return max(sum(start <= moment < end for start, end in spans) for moment, _ in spans)


@contextmanager
def active_scheduler_here(settings):
    """As the `active_scheduler` fixture, started by the test when it is ready."""
    settings.SCHEDULER_LEASE_SECONDS = 3
    settings.SCHEDULER_SHUTDOWN_WAIT_SECONDS = 5
    runner = SchedulerRunner()
    runner.start()
    try:
        wait_until(lambda: runner.active, timeout=15, message="the scheduler did not become active")
        yield runner
    finally:
        runner.stop()


def rows(status):
    return list(DjangoJobExecution.objects.filter(job_id="slow", status=status))


def test_skip_records_the_fires_due_while_a_run_goes_on(declare, active_scheduler):
    declare(overlap="skip")

    spans = runs(3)

    assert len(spans) >= 2 and at_once(spans) == 1
    skipped = rows(history.SKIPPED)
    assert len(skipped) >= 2
    assert {row.exception for row in skipped} == {"Skipped: the previous run was still going."}
    assert rows(history.QUEUED) == []


def test_queue_runs_one_more_right_after_and_coalesces_the_rest(declare, active_scheduler):
    declare(overlap="queue")

    spans = runs(3)

    assert len(spans) >= 2 and at_once(spans) == 1
    for (_, end), (start, _) in pairwise(spans):
        assert start - end < 1.5  # the queued run follows at once (the scheduler looks each second)
    assert len(rows(history.QUEUED)) <= 1
    coalesced = rows(history.SKIPPED)
    assert coalesced and all(
        row.exception.startswith("Skipped: coalesced into the queued fire of") for row in coalesced
    )


def test_allow_runs_side_by_side_up_to_max_concurrent(declare, active_scheduler):
    declare(overlap="allow", max_concurrent=2)

    spans = runs(3)

    assert at_once(spans) == 2
    assert rows(history.SKIPPED)  # the third at once is skipped
    assert not any(
        a[0] < b[1] and b[0] < a[1] and a[0] < c[1] and c[0] < a[1] and b[0] < c[1] and c[0] < b[1]
        for a, b, c in combinations(spans, 3)
    )


def test_a_run_in_a_process_that_still_says_so_counts_as_running(declare, settings):
    declare(func="quick")  # no scheduler is active: into the store at once
    # web2 was the active scheduler and started a run; then it lost the lease.
    elsewhere = run_going_on_elsewhere("slow")
    history.beat([elsewhere.execution.pk])
    with active_scheduler_here(settings):
        beating_until = time.monotonic() + 3
        while time.monotonic() < beating_until:  # its run goes on
            history.beat([elsewhere.execution.pk])
            time.sleep(0.5)
        assert len(rows(history.SKIPPED)) >= 2
        assert rows(history.SUCCEEDED) == []

        # web2 says nothing more: after a lease's time it is taken for gone (the
        # count of runs going on and the marking of interrupted ones see it at
        # about the same moment, in either order).
        wait_until(lambda: rows(history.SUCCEEDED), timeout=15, message="the job never ran again")
        cut_short = DjangoJobExecution.objects.filter(pk=elsewhere.execution.pk)
        wait_until(lambda: cut_short.get().status == history.INTERRUPTED, timeout=5)
        assert "host web2, pid 4242" in cut_short.get().exception


def test_a_run_another_process_records_after_the_scheduler_started_counts_within_a_second(
    declare, active_scheduler
):
    declare(func="quick")
    # Its row written late: web2's run began as it still held the lease.
    elsewhere = run_going_on_elsewhere("slow")
    # The active scheduler looks for such runs once a second: a fire or two may run first.
    wait_until(lambda: rows(history.SKIPPED), timeout=5, message="no fire was skipped")
    ran_before = len(rows(history.SUCCEEDED))

    beating_until = time.monotonic() + 3
    while time.monotonic() < beating_until:
        history.beat([elsewhere.execution.pk])
        time.sleep(0.5)
    assert len(rows(history.SKIPPED)) >= 3
    assert len(rows(history.SUCCEEDED)) == ran_before <= 2


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        ({"overlap": "parallel"}, "crm.E019", "overlap is 'parallel'."),
        ({"overlap": "allow"}, "crm.E020", 'max_concurrent is missing with overlap="allow".'),
        ({"overlap": "allow", "max_concurrent": 1}, "crm.E020", "max_concurrent is 1."),
        ({"overlap": "allow", "max_concurrent": "4"}, "crm.E020", "max_concurrent is '4'."),
        ({"max_concurrent": 3}, "crm.E020", "max_concurrent is 3, but overlap is 'skip'."),
    ],
)
def test_bad_overlap_fields_are_check_errors(settings, fields, code, message):
    settings.SCHEDULER_JOBS = [
        {"id": "slow", "func": "tests.scheduler.test_overlap.slow", "interval_seconds": 1, **fields}
    ]

    [error] = declaration_errors()

    assert (error.id, error.msg) == (code, f"Job 'slow': {message}")


def test_list_status_and_the_admin_show_how_a_job_runs(settings, admin_client):
    settings.SCHEDULER_JOBS = [
        {
            "id": "mailer",
            "func": "tests.scheduler.test_overlap.quick",
            "interval_seconds": 60,
            "timeout_seconds": 30,
            "retries": 3,
            "retry_backoff_seconds": 10,
            "retry_on": ["smtplib.SMTPException"],
            "overlap": "allow",
            "max_concurrent": 4,
        }
    ]
    control.sync("tests")
    words = (
        "In a process of its own, killed after 30 seconds; 3 retries on smtplib.SMTPException, "
        "10 seconds apart at first, doubling to at most 1 hour; up to 4 runs at once"
    )

    listed = StringIO()
    call_command("scheduler", "list", stdout=listed)
    assert f"    {words}" in listed.getvalue().splitlines()
    as_json = StringIO()
    call_command("scheduler", "list", "--json", stdout=as_json)
    [mailer] = [job for job in json.loads(as_json.getvalue()) if job["id"] == "mailer"]
    assert mailer["runs_in"] == "process"
    assert (mailer["timeout_seconds"], mailer["retries"], mailer["overlap"]) == (30, 3, "allow")
    assert mailer["max_concurrent"] == 4 and mailer["retry_on"] == ["smtplib.SMTPException"]
    assert mailer["policy_in_words"] == words

    page = admin_client.get("/admin/django_apscheduler/djangojob/mailer/change/")
    assert words in page.content.decode()
