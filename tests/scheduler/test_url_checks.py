"""`manage.py check` reports a ping or webhook URL that cannot work, naming the
job or setting and the field, never quoting the URL (it holds a secret):
crm.E021 for a job's ping_url and alert_webhook_url, crm.E022 for
SCHEDULER_HEARTBEAT_URL and ALERT_WEBHOOK_URL."""

import pytest

from crm.scheduler.checks import declaration_errors
from crm.settings_checks import check_outbound_urls
from tests.support.processes import project_env, run_manage

GOOD = {"id": "good", "func": "tests.support.e2e_jobs.record_fire", "interval_seconds": 60}
BAD_URLS = [
    ("hc-ping.com/SECRET", "does not start with http:// or https://"),
    ("ftp://example.com/SECRET", "does not start with http:// or https://"),
    ("https:///SECRET", "names no host"),
    ("https://hc-ping.com/SECRET two", "contains spaces"),
    ("https://hc-ping.com:port/SECRET", "is not a URL"),
    ("http://[::1/SECRET", "is not a URL"),
]


@pytest.mark.parametrize(("url", "problem"), BAD_URLS)
@pytest.mark.parametrize("field", ["ping_url", "alert_webhook_url"])
def test_a_malformed_url_of_a_job_is_an_error_naming_job_and_field(settings, field, url, problem):
    settings.SCHEDULER_JOBS = [{**GOOD, field: url}]

    (error,) = declaration_errors()

    assert (error.id, error.msg) == ("crm.E021", f"Job 'good': {field} {problem}.")
    assert "SECRET" not in error.msg + error.hint


def test_a_url_that_is_not_text_is_an_error(settings):
    settings.SCHEDULER_JOBS = [{**GOOD, "ping_url": 42}]

    assert [error.msg for error in declaration_errors()] == [
        "Job 'good': ping_url is int, not text."
    ]


def test_good_or_empty_urls_of_a_job_pass(settings):
    settings.SCHEDULER_JOBS = [
        {**GOOD, "ping_url": "https://hc-ping.com/KEY/nightly?create=1"},
        {**GOOD, "id": "other", "ping_url": "", "alert_webhook_url": "http://127.0.0.1:8080/x"},
    ]

    assert declaration_errors() == []


@pytest.mark.parametrize(("url", "problem"), BAD_URLS)
@pytest.mark.parametrize("name", ["SCHEDULER_HEARTBEAT_URL", "ALERT_WEBHOOK_URL"])
def test_a_malformed_url_setting_is_an_error_naming_it(settings, name, url, problem):
    setattr(settings, name, url)

    (error,) = check_outbound_urls()

    assert (error.id, error.msg) == ("crm.E022", f"{name} {problem}.")
    assert error.hint == f"Set {name} to an http:// or https:// URL, or leave it empty."


def test_unset_and_good_url_settings_pass(settings):
    settings.SCHEDULER_HEARTBEAT_URL = ""
    settings.ALERT_WEBHOOK_URL = "https://hooks.slack.com/services/T0/B0/XYZ"

    assert check_outbound_urls() == []


def test_manage_py_check_fails_on_a_malformed_webhook_without_showing_it():
    env = project_env(SECRET_KEY="x", ALERT_WEBHOOK_URL="hooks.slack.com/services/T0/B0/SECRET")
    result = run_manage("check", env=env)

    assert result.returncode == 1
    assert "crm.E022" in result.stderr
    assert "ALERT_WEBHOOK_URL does not start with http:// or https://" in result.stderr
    assert "SECRET" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_a_heartbeat_period_below_a_minute_stops_start_up_with_one_line():
    result = run_manage("check", env=project_env(SECRET_KEY="x", SCHEDULER_HEARTBEAT_MINUTES="0"))

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Configuration error: SCHEDULER_HEARTBEAT_MINUTES='0' is not valid. "
        "Use a whole number of at least 1."
    )
