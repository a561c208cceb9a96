"""The API's personas: nobody, a user whose token has no permissions, a
viewer, and a staff operator with every scheduler permission; and two jobs
synced into the store, as the admin's tests have."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core.cache import cache
from knox.models import AuthToken
from rest_framework.test import APIClient

from crm.scheduler import control

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
VIEW = ["view_djangojob", "view_djangojobexecution"]
OPERATE = [*VIEW, "run_djangojob", "pause_djangojob", "resume_djangojob"]


def add(a, b):
    return a + b


@pytest.fixture(autouse=True)
def jobs(settings):
    settings.SCHEDULER_JOBS = [
        {"id": "heartbeat", "func": "tests.api.conftest.add", "interval_seconds": 60,
         "args": [1, 2], "misfire_grace_seconds": 30},
        {"id": "nightly", "func": "tests.api.conftest.add", "cron": "0 2 * * *",
         "args": [1, 2], "timezone": "Europe/Warsaw"},
    ]  # fmt: skip
    with time_machine.travel(NOW - timedelta(seconds=10), tick=False):
        control.sync("tests")


@pytest.fixture(autouse=True)
def no_requests_counted_yet():
    cache.clear()  # the throttles count in the default cache


def client_with_token(user) -> APIClient:
    _, token = AuthToken.objects.create(user, expiry=None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def user_with(django_user_model, username: str, codenames: list[str], **fields):
    user = django_user_model.objects.create_user(username, password="x", **fields)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def anonymous():
    return APIClient()


@pytest.fixture
def no_permissions(django_user_model):
    return client_with_token(user_with(django_user_model, "script", []))


@pytest.fixture
def viewer(django_user_model):
    return client_with_token(user_with(django_user_model, "dashboard", VIEW))


@pytest.fixture
def operator(django_user_model):
    return client_with_token(user_with(django_user_model, "operator", OPERATE, is_staff=True))
