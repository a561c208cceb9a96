"""Stopping a scheduler never consumes a due fire without running it, and the
store-only scheduler that other processes use never touches due jobs."""

from datetime import UTC, datetime, timedelta

import pytest
from django_apscheduler.models import DjangoJob

from crm.scheduler.jobstore import KeepingDjangoJobStore
from crm.scheduler.schedulers import (
    ClosingBackgroundScheduler,  # APScheduler's own, closing its connection at the end
    SafeBackgroundScheduler,
    StoreOnlyScheduler,
)

pytestmark = pytest.mark.django_db(transaction=True)
CALLS = []


def work():
    CALLS.append(1)


def stop_with_a_due_job(scheduler_class):
    """Start paused with a job that was due a minute ago, then stop: what the
    runner does when it loses its lease or the process exits, and what a
    `scheduler pause` from another process does."""
    CALLS.clear()
    scheduler = scheduler_class(jobstores={"default": KeepingDjangoJobStore()}, timezone="UTC")
    scheduler.start(paused=True)
    due = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    scheduler.add_job(work, "interval", hours=1, id="work", next_run_time=due)
    scheduler.shutdown(wait=True)
    return due, DjangoJob.objects.get(id="work").next_run_time


@pytest.mark.parametrize("scheduler_class", [SafeBackgroundScheduler, StoreOnlyScheduler])
def test_stopping_leaves_a_due_fire_for_the_next_scheduler(scheduler_class):
    due, next_run = stop_with_a_due_job(scheduler_class)

    assert next_run == due and CALLS == []


def test_apschedulers_own_background_scheduler_skips_that_fire_unrun():
    """The race the subclasses close, shown on APScheduler itself."""
    due, next_run = stop_with_a_due_job(ClosingBackgroundScheduler)

    assert next_run == due + timedelta(hours=1) and CALLS == []
