"""Who gets in: tokens (revocable, expiring), browser sessions (with CSRF),
the admin's permissions, and the request rates."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_apscheduler.models import DjangoJob
from knox.models import AuthToken
from rest_framework.test import APIClient

from crm.scheduler.models import SchedulerCommand
from tests.api.conftest import OPERATE, client_with_token, user_with

pytestmark = pytest.mark.django_db
JOBS, RUNS = "/api/v1/jobs/", "/api/v1/executions/"


@pytest.mark.parametrize("url", [JOBS, "/api/v1/jobs/nightly/", RUNS])
def test_an_anonymous_request_is_401_and_names_the_scheme(anonymous, url):
    response = anonymous.get(url)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_an_anonymous_action_is_401_and_changes_nothing(anonymous):
    response = anonymous.post("/api/v1/jobs/nightly/pause/")

    assert response.status_code == 401
    assert DjangoJob.objects.get(id="nightly").next_run_time is not None
    assert not SchedulerCommand.objects.exists()


def test_a_wrong_token_is_401(anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Token " + "0" * 64)

    assert anonymous.get(JOBS).status_code == 401


@pytest.mark.parametrize(
    ("method", "url", "permission"),
    [
        ("get", JOBS, "django_apscheduler.view_djangojob"),
        ("get", "/api/v1/jobs/nightly/", "django_apscheduler.view_djangojob"),
        ("get", RUNS, "django_apscheduler.view_djangojobexecution"),
        ("post", "/api/v1/jobs/nightly/run/", "django_apscheduler.run_djangojob"),
        ("post", "/api/v1/jobs/nightly/pause/", "django_apscheduler.pause_djangojob"),
        ("post", "/api/v1/jobs/nightly/resume/", "django_apscheduler.resume_djangojob"),
    ],
)
def test_a_token_without_permissions_is_403_naming_the_one_needed(
    no_permissions, method, url, permission
):
    response = getattr(no_permissions, method)(url)

    assert response.status_code == 403
    assert permission in response.json()["detail"]
    assert not SchedulerCommand.objects.exists()


def test_each_action_needs_its_own_permission_as_in_the_admin(django_user_model):
    pauser = client_with_token(
        user_with(django_user_model, "pauser", ["view_djangojob", "pause_djangojob"])
    )

    assert pauser.post("/api/v1/jobs/nightly/pause/").status_code == 200
    assert pauser.post("/api/v1/jobs/nightly/resume/").status_code == 403
    assert pauser.post("/api/v1/jobs/nightly/run/").status_code == 403
    assert list(SchedulerCommand.objects.values_list("action", flat=True)) == ["pause"]


def test_a_staff_user_with_the_permissions_reads_and_acts(operator):
    assert operator.get(JOBS).status_code == 200
    assert operator.get(RUNS).status_code == 200
    assert operator.post("/api/v1/jobs/nightly/pause/").status_code == 200
    assert operator.post("/api/v1/jobs/nightly/resume/").status_code == 200
    assert operator.post("/api/v1/jobs/nightly/run/").status_code == 202


def test_a_revoked_token_is_refused_at_once(django_user_model):
    user = user_with(django_user_model, "operator", OPERATE)
    client = client_with_token(user)
    assert client.get(JOBS).status_code == 200

    AuthToken.objects.filter(user=user).delete()

    assert client.get(JOBS).status_code == 401


def test_an_expired_token_is_refused(django_user_model):
    user = user_with(django_user_model, "operator", OPERATE)
    _, token = AuthToken.objects.create(user, expiry=timedelta(hours=1))
    AuthToken.objects.filter(user=user).update(expiry=timezone.now() - timedelta(seconds=1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    assert client.get(JOBS).status_code == 401


def test_a_browser_session_reads_and_acts_only_with_the_csrf_token(django_user_model):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(user_with(django_user_model, "operator", OPERATE, is_staff=True))

    assert browser.get(JOBS).status_code == 200
    refused = browser.post("/api/v1/jobs/nightly/pause/")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert DjangoJob.objects.get(id="nightly").next_run_time is not None

    browser.get("/admin/")  # sets the CSRF cookie, as any admin page does
    csrf = browser.cookies["csrftoken"].value
    allowed = browser.post("/api/v1/jobs/nightly/pause/", HTTP_X_CSRFTOKEN=csrf)
    assert allowed.status_code == 200


def test_a_user_beyond_the_rate_gets_429_with_retry_after(viewer, settings):
    settings.API_USER_RATE = "2/minute"

    statuses = [viewer.get(JOBS).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
    response = viewer.get(JOBS)
    assert 0 < int(response["Retry-After"]) <= 60
    assert "throttled" in response.json()["detail"]


def test_anonymous_callers_have_a_rate_of_their_own(anonymous, viewer, settings):
    settings.API_ANON_RATE = "1/minute"

    assert [anonymous.get(JOBS).status_code for _ in range(2)] == [401, 429]
    assert viewer.get(JOBS).status_code == 200
