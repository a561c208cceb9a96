"""With LOG_FORMAT=json, lines logged while a job runs say which job, fire and
run they belong to (crm.log_format); other lines do not."""

import io
import json
import logging
import os

import pytest
from django_apscheduler.models import DjangoJobExecution

from crm.log_format import JsonFormatter, RunFields
from crm.scheduler import control

pytestmark = pytest.mark.django_db


def closes_tickets():
    logging.getLogger("crm.jobs").info("closing tickets")


def breaks():
    logging.getLogger("crm.jobs").info("about to break")
    raise RuntimeError("the job broke")


@pytest.fixture(autouse=True)
def declared(settings):
    settings.SCHEDULER_JOBS = [
        {"id": "closer", "func": f"{__name__}.closes_tickets", "cron": "0 2 * * *"},
        {"id": "breaker", "func": f"{__name__}.breaks", "cron": "0 2 * * *"},
    ]
    control.sync("tests")


@pytest.fixture
def json_log():
    """The lines logged meanwhile, as the json log format writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RunFields())
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)


def test_a_jobs_lines_carry_its_job_fire_time_and_run(json_log):
    control.run_here("closer", "tests")
    logging.getLogger("crm.scheduler").warning("after the run")

    run = DjangoJobExecution.objects.get(job_id="closer")
    closing = next(line for line in json_log() if line["message"] == "closing tickets")
    assert closing["job_id"] == "closer"
    assert closing["fire_time"] == run.run_time.isoformat()
    assert closing["run_id"] == run.pk
    after = next(line for line in json_log() if line["message"] == "after the run")
    assert not after.keys() & {"job_id", "fire_time", "run_id"}


@pytest.mark.django_db(transaction=True)
def test_in_the_active_scheduler_the_schedulers_lines_about_a_fire_carry_it_too(
    active_scheduler, json_log
):
    command = control.run_now("breaker", "tests", wait=15)

    run = command.execution
    lines = [line for line in json_log() if line.get("job_id") == "breaker"]
    started = next(line for line in lines if line["message"] == "about to break")
    assert started["run_id"] == run.pk and started["fire_time"] == run.run_time.isoformat()
    failed = next(line for line in lines if "exception" in line)
    assert failed["logger"].startswith("apscheduler")
    assert failed["fire_time"] == run.run_time.isoformat()
    assert "RuntimeError: the job broke" in failed["exception"]


@pytest.mark.django_db(transaction=True)
def test_the_lines_of_a_job_run_in_a_process_of_its_own_carry_its_run_too(
    settings, monkeypatch, tmp_path
):
    monkeypatch.setenv("LOG_FORMAT", "json")  # the child process reads its settings anew
    monkeypatch.setenv("LOG_DIR", str(tmp_path))
    settings.SCHEDULER_JOBS = [
        {
            "id": "isolated",
            "func": f"{__name__}.closes_tickets",
            "cron": "0 2 * * *",
            "timeout_seconds": 30,
        }
    ]
    control.sync("tests")

    control.run_here("isolated", "tests")

    run = DjangoJobExecution.objects.get(job_id="isolated")
    lines = [json.loads(line) for line in (tmp_path / "django.log").read_text().splitlines()]
    closing = next(line for line in lines if line["message"] == "closing tickets")
    assert closing["pid"] != os.getpid()
    assert (closing["job_id"], closing["run_id"]) == ("isolated", run.pk)
    assert closing["fire_time"] == run.run_time.isoformat()
