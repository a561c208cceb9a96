"""Syncing the declarations into the Django job store keeps what the store knows."""

from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from django_apscheduler.models import DjangoJob

from crm.scheduler.declarations import JobDeclaration
from crm.scheduler.jobstore import KeepingDjangoJobStore
from crm.scheduler.sync import sync_jobs
from tests import factories

pytestmark = pytest.mark.django_db


def declare(job_id="heartbeat", seconds=60, **options):
    return {
        job_id: JobDeclaration(
            id=job_id,
            func="tests.support.e2e_jobs.record_fire",
            interval_seconds=seconds,
            **options,
        )
    }


@pytest.fixture
def scheduler():
    scheduler = BackgroundScheduler(jobstores={"default": KeepingDjangoJobStore()}, timezone="UTC")
    scheduler.start(paused=True)
    yield scheduler
    scheduler.shutdown(wait=False)


def stored_next_run(job_id="heartbeat"):
    return DjangoJob.objects.get(id=job_id).next_run_time


def test_it_creates_declared_jobs_and_a_second_sync_changes_nothing(scheduler):
    first = sync_jobs(scheduler, declare())
    second = sync_jobs(scheduler, declare())

    assert (first.created, first.updated, first.removed) == (["heartbeat"], [], [])
    assert (second.created, second.updated, second.removed) == ([], [], [])
    assert stored_next_run() is not None


def test_it_keeps_the_stored_next_run_time_when_the_trigger_did_not_change(scheduler):
    sync_jobs(scheduler, declare())
    missed = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
    DjangoJob.objects.filter(id="heartbeat").update(next_run_time=missed)

    sync_jobs(scheduler, declare())

    assert stored_next_run() == missed


def test_it_updates_a_job_whose_trigger_changed(scheduler):
    sync_jobs(scheduler, declare(seconds=60))
    DjangoJob.objects.filter(id="heartbeat").update(next_run_time=datetime(2026, 1, 1, tzinfo=UTC))

    report = sync_jobs(scheduler, declare(seconds=300))

    assert report.updated == ["heartbeat"]
    assert scheduler.get_job("heartbeat").trigger.interval == timedelta(seconds=300)
    assert stored_next_run() > datetime(2026, 1, 1, tzinfo=UTC)


def test_a_paused_job_stays_paused_across_syncs_and_trigger_changes(scheduler):
    sync_jobs(scheduler, declare(seconds=60))
    scheduler.pause_job("heartbeat")

    sync_jobs(scheduler, declare(seconds=60))
    assert stored_next_run() is None
    sync_jobs(scheduler, declare(seconds=120))
    assert stored_next_run() is None


def test_a_disabled_declaration_is_stored_paused(scheduler):
    sync_jobs(scheduler, declare(enabled=False))

    assert stored_next_run() is None


def test_disabling_a_running_job_pauses_it_and_enabling_it_resumes_it(scheduler):
    sync_jobs(scheduler, declare())

    report = sync_jobs(scheduler, declare(enabled=False))
    assert report.updated == ["heartbeat"]
    assert stored_next_run() is None
    assert sync_jobs(scheduler, declare(enabled=False)).updated == []

    report = sync_jobs(scheduler, declare())
    assert report.updated == ["heartbeat"]
    assert stored_next_run() is not None
    assert sync_jobs(scheduler, declare()).updated == []


def test_enabling_a_job_again_keeps_an_operators_pause(scheduler):
    sync_jobs(scheduler, declare())
    scheduler.pause_job("heartbeat")

    sync_jobs(scheduler, declare(enabled=False))
    sync_jobs(scheduler, declare())

    assert stored_next_run() is None


def test_a_job_declared_disabled_from_the_start_runs_once_enabled(scheduler):
    sync_jobs(scheduler, declare(enabled=False))

    sync_jobs(scheduler, declare())

    assert stored_next_run() is not None


def test_it_removes_jobs_no_longer_declared(scheduler):
    sync_jobs(scheduler, {**declare("keep"), **declare("drop")})

    report = sync_jobs(scheduler, declare("keep"))

    assert report.removed == ["drop"]
    assert list(DjangoJob.objects.values_list("id", flat=True)) == ["keep"]


def test_a_dry_run_reports_and_changes_nothing(scheduler):
    sync_jobs(scheduler, declare("old"))

    report = sync_jobs(scheduler, declare("new"), dry_run=True)

    assert (report.created, report.removed) == (["new"], ["old"])
    assert list(DjangoJob.objects.values_list("id", flat=True)) == ["old"]


def test_a_stored_job_that_cannot_be_loaded_is_kept_with_its_history(scheduler, caplog):
    from django_apscheduler.models import DjangoJobExecution

    factories.stored_job("legacy", job_state=b"not a pickle")
    factories.job_run(
        "legacy", status=DjangoJobExecution.SUCCESS, run_time=datetime(2026, 1, 1, tzinfo=UTC)
    )

    assert [job.id for job in scheduler.get_jobs()] == []
    sync_jobs(scheduler, declare())

    assert DjangoJob.objects.filter(id="legacy").exists()
    assert DjangoJobExecution.objects.filter(job_id="legacy").count() == 1
    assert "cannot load stored job 'legacy'" in caplog.text


def test_a_sync_of_many_jobs_logs_one_short_line(scheduler, caplog):
    declarations = {}
    for n in range(1000):
        declarations |= declare(f"job-{n:04}")

    with caplog.at_level("INFO", logger="crm.scheduler"):
        sync_jobs(scheduler, declarations)

    (line,) = [record.getMessage() for record in caplog.records if "sync" in record.getMessage()]
    assert line.startswith("scheduler sync: created 1,000 jobs (job-0000, job-0001,")
    assert line.endswith("updated none, removed none")
    assert len(line) < 300
