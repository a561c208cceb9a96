"""GET /health/scheduler/: 200 or 503 for monitors, details for staff and token holders."""

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command

from crm.scheduler import control, history
from crm.scheduler.lease import Lease
from crm.scheduler.runner import LEASE_NAME
from tests import factories
from tests.support.processes import project_env, run_manage

pytestmark = pytest.mark.django_db
URL = "/health/scheduler/"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def heartbeat(settings):
    settings.SCHEDULER_JOBS = [
        {
            "id": "heartbeat",
            "func": "tests.support.e2e_jobs.record_fire",
            "interval_seconds": 60,
            "misfire_grace_seconds": 30,
        }
    ]
    settings.HEALTH_TOKEN = "s3cret"
    settings.HEALTH_CHECKS = ["active", "late", "failing"]
    with time_machine.travel(NOW, tick=False):
        control.sync("tests")


def active():
    assert Lease(LEASE_NAME, timedelta(seconds=30)).acquire()


def get(client, at=NOW + timedelta(seconds=10), **headers):
    with time_machine.travel(at, tick=False):
        return client.get(URL, headers=headers)


def test_it_is_200_with_an_active_scheduler_and_jobs_on_time(client):
    active()

    response = get(client)

    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_it_is_503_without_an_active_scheduler(client):
    response = get(client)

    assert response.status_code == 503 and response.json() == {"status": "unhealthy"}


def test_it_is_503_when_a_job_is_late(client):
    active()

    assert get(client, at=NOW + timedelta(seconds=91)).status_code == 503


def test_it_is_503_when_a_job_is_failing(client):
    active()
    factories.job_run("heartbeat", status=history.FAILED, run_time=NOW)

    assert get(client).status_code == 503


def test_health_checks_chooses_which_conditions_count(client, settings):
    settings.HEALTH_CHECKS = ["failing"]

    assert get(client, at=NOW + timedelta(hours=1)).status_code == 200


def test_a_token_holder_sees_the_details(client):
    active()

    details = get(client, at=NOW + timedelta(seconds=91), Authorization="Bearer s3cret").json()

    assert details["status"] == "unhealthy"
    assert details["problems"] == ["heartbeat is late"]
    assert details["active_scheduler"]["pid"] > 0
    heartbeat = next(job for job in details["jobs"] if job["id"] == "heartbeat")
    assert heartbeat["late"] is True and heartbeat["failing"] is False


def test_a_wrong_token_sees_only_the_status(client):
    assert set(get(client, Authorization="Bearer guess").json()) == {"status"}


def test_without_a_token_setting_no_token_opens_the_details(client, settings):
    settings.HEALTH_TOKEN = ""

    assert set(get(client, Authorization="Bearer ").json()) == {"status"}


def test_a_staff_user_sees_the_details(admin_client):
    assert "jobs" in get(admin_client).json()


def test_it_is_cheap(client, django_assert_max_num_queries):
    active()
    with django_assert_max_num_queries(4):
        get(client, Authorization="Bearer s3cret")


def test_it_answers_get_only(client):
    assert client.post(URL).status_code == 405


def test_a_bad_health_checks_setting_is_a_one_line_error():
    result = run_manage("check", env=project_env(SECRET_KEY="x", HEALTH_CHECKS="active,slow"))

    assert result.returncode != 0
    assert "HEALTH_CHECKS='active,slow' is not valid" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_details_are_the_same_shape_as_status_json(client):
    active()
    details = get(client, Authorization="Bearer s3cret").json()
    out = StringIO()
    with time_machine.travel(NOW + timedelta(seconds=10), tick=False):
        call_command("scheduler", "status", "--json", stdout=out)
    status_json = json.loads(out.getvalue())

    assert details["jobs"] == status_json["jobs"]
    assert details["problems"] == status_json["problems"] == []
    assert set(details["active_scheduler"]) == set(status_json["active_scheduler"])
