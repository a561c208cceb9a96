"""POST /scheduler/wake/: a monitor's way to make sure a scheduler is active on
hosts that put idle apps to sleep."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.apps import apps
from django.core.cache import cache
from django.test import Client

from crm import views
from crm.scheduler.lease import Holder, Lease
from crm.scheduler.runner import LEASE_NAME, SchedulerRunner

pytestmark = pytest.mark.django_db
URL = "/scheduler/wake/"
BEARER = {"Authorization": "Bearer wake-up"}


@pytest.fixture(autouse=True)
def token(settings):
    settings.SCHEDULER_WAKE_TOKEN = "wake-up"
    settings.SCHEDULER_JOBS = []
    cache.clear()  # the wake limits, kept in the cache


@pytest.fixture
def this_process_runs(monkeypatch):
    """Say which SchedulerRunner this process started (crm.scheduler.startup)."""
    return lambda runner: monkeypatch.setattr(
        apps.get_app_config("crm"), "scheduler_runner", runner
    )


def test_it_is_a_404_when_no_token_is_configured(client, settings):
    settings.SCHEDULER_WAKE_TOKEN = ""

    assert client.post(URL, headers=BEARER).status_code == 404


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wake-upp"}, {"Authorization": "wake-up"}]
)
def test_a_missing_or_wrong_token_is_a_403(client, headers):
    assert client.post(URL, headers=headers).status_code == 403


WRONG = {"Authorization": "Bearer wake-upp"}


def test_after_5_wrong_tokens_in_a_minute_further_ones_are_a_429(client):
    answers = [client.post(URL, headers=WRONG).status_code for _ in range(5)]

    limited = [client.post(URL, headers=WRONG), client.post(URL)]

    assert answers == [403] * 5
    assert [response.status_code for response in limited] == [429, 429]
    assert "too many wrong or missing bearer tokens" in limited[0].json()["error"]
    assert 1 <= int(limited[0]["Retry-After"]) <= views.FAILED_WAKES_WINDOW_SECONDS


def test_the_right_token_still_wakes_while_wrong_ones_are_limited(client, this_process_runs):
    this_process_runs(None)
    for _ in range(10):
        client.post(URL, headers=WRONG)
    assert client.post(URL, headers=WRONG).status_code == 429

    response = client.post(URL, headers=BEARER)

    assert response.status_code == 503 and "ENABLE_SCHEDULER=0" in response.json()["reason"]


def test_wrong_tokens_are_a_403_again_once_the_window_has_passed(client):
    for _ in range(5):
        client.post(URL, headers=WRONG)
    assert client.post(URL, headers=WRONG).status_code == 429

    window_later = timedelta(seconds=views.FAILED_WAKES_WINDOW_SECONDS + 1)
    with time_machine.travel(datetime.now(UTC) + window_later):
        assert client.post(URL, headers=WRONG).status_code == 403


def test_it_answers_post_only(client):
    assert client.get(URL, headers=BEARER).status_code == 405


def test_it_needs_no_csrf_token_while_other_posts_still_do(django_user_model):
    client = Client(enforce_csrf_checks=True)

    assert client.post(URL, headers=BEARER).status_code != 403
    assert client.post("/admin/login/", {"username": "x", "password": "y"}).status_code == 403


def test_it_is_rate_limited(client):
    client.post(URL, headers=BEARER)

    second = client.post(URL, headers=BEARER)

    assert second.status_code == 429
    assert 1 <= int(second["Retry-After"]) <= views.WAKE_INTERVAL_SECONDS


def test_it_says_why_when_this_process_runs_no_scheduler(client, this_process_runs):
    this_process_runs(None)

    response = client.post(URL, headers=BEARER)

    assert response.status_code == 503
    assert "ENABLE_SCHEDULER=0" in response.json()["reason"]


def test_it_reports_the_active_scheduler_when_one_is(client):
    assert Lease(LEASE_NAME, timedelta(seconds=30)).acquire()

    answer = client.post(URL, headers=BEARER).json()

    assert answer["status"] == "active" and answer["this_process"] is False


@pytest.mark.django_db(transaction=True)
def test_it_makes_this_process_take_a_lease_left_free_at_once(client, settings, this_process_runs):
    # Another process held the lease; it is free now. This process's standby
    # would look again only in 30 s: the wake makes it look now.
    settings.SCHEDULER_LEASE_SECONDS = 30
    gone = Lease(LEASE_NAME, timedelta(seconds=30), Holder("gone:1:x", "gone", 1))
    assert gone.acquire()
    runner = SchedulerRunner()
    runner.standby_poll = 30
    looked = threading.Event()
    acquire = runner.lease.acquire

    def acquire_and_tell(*args):
        held = acquire(*args)
        looked.set()
        return held

    runner.lease.acquire = acquire_and_tell
    runner.start()
    this_process_runs(runner)
    try:
        assert looked.wait(15), "the standby never looked at the lease"
        gone.release()
        assert not runner.active

        started = time.monotonic()
        answer = client.post(URL, headers=BEARER).json()

        assert answer["status"] == "active" and answer["this_process"] is True
        assert time.monotonic() - started < views.WAKE_WAIT_SECONDS
    finally:
        runner.stop()
