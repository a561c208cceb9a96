"""`manage.py check` warns about bearer tokens short enough to guess, and reports
malformed metrics settings as errors."""

import secrets

import pytest

from crm.settings_checks import check_metrics_settings, check_token_lengths
from tests.support.processes import project_env, run_manage

TOKENS = ("SCHEDULER_WAKE_TOKEN", "HEALTH_TOKEN", "METRICS_TOKEN")


def warnings_for(settings, **tokens):
    for name in TOKENS:
        setattr(settings, name, tokens.get(name, ""))
    return [(warning.id, warning.msg, warning.hint) for warning in check_token_lengths()]


@pytest.mark.parametrize("name", TOKENS)
def test_a_token_shorter_than_32_characters_is_a_warning_naming_the_setting(settings, name):
    warnings = warnings_for(settings, **{name: "x" * 31})

    assert warnings == [
        (
            "crm.W001",
            f"{name} is 31 characters long; a bearer token that short can be guessed.",
            f"Set {name} to 32 characters or more, e.g. the output of "
            'python -c "import secrets; print(secrets.token_urlsafe(32))".',
        )
    ]


def test_each_short_token_is_a_warning_of_its_own(settings):
    warnings = warnings_for(settings, SCHEDULER_WAKE_TOKEN="wake-up", HEALTH_TOKEN="s3cret")

    assert [(warning_id, msg.split()[0]) for warning_id, msg, _ in warnings] == [
        ("crm.W001", "SCHEDULER_WAKE_TOKEN"),
        ("crm.W001", "HEALTH_TOKEN"),
    ]


def test_unset_tokens_and_tokens_of_32_characters_or_more_pass(settings):
    assert warnings_for(settings) == []
    assert warnings_for(settings, SCHEDULER_WAKE_TOKEN="x" * 32, HEALTH_TOKEN="x" * 200) == []
    assert warnings_for(settings, HEALTH_TOKEN=secrets.token_urlsafe(32)) == []


def test_manage_py_check_warns_without_failing_or_showing_the_token():
    token = "short-but-secret"
    result = run_manage("check", env=project_env(SECRET_KEY="x", SCHEDULER_WAKE_TOKEN=token))

    assert result.returncode == 0, result.stderr
    assert "crm.W001" in result.stderr and "SCHEDULER_WAKE_TOKEN is 16 characters" in result.stderr
    assert token not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "bounds",
    [["1", "0.5"], ["0", "1"], ["-1"], ["1", "1"], ["fast"], [], ["inf"]],
)
@pytest.mark.parametrize("name", ["METRICS_DURATION_BUCKETS", "METRICS_LATENESS_BUCKETS"])
def test_malformed_histogram_buckets_are_an_error_naming_the_setting(settings, name, bounds):
    setattr(settings, name, bounds)

    errors = check_metrics_settings()

    assert [(error.id, error.msg) for error in errors] == [
        ("crm.E031", f"{name}={','.join(bounds)!r} is not a list of histogram bucket bounds.")
    ]
    assert "increasing order" in errors[0].hint


@pytest.mark.parametrize("minutes", [0, -5, "60", 1.5, None])
def test_a_metrics_window_that_is_not_a_whole_number_of_minutes_is_an_error(settings, minutes):
    settings.METRICS_WINDOW_MINUTES = minutes

    errors = check_metrics_settings()

    assert [(error.id, error.msg) for error in errors] == [
        ("crm.E032", f"METRICS_WINDOW_MINUTES={minutes!r} is not valid.")
    ]


def test_the_default_metrics_settings_pass():
    assert check_metrics_settings() == []


def test_manage_py_check_fails_on_malformed_buckets_from_the_environment():
    result = run_manage(
        "check", env=project_env(SECRET_KEY="x", METRICS_LATENESS_BUCKETS="0.1,1,fast")
    )

    assert result.returncode == 1
    assert "crm.E031" in result.stderr
    assert "METRICS_LATENESS_BUCKETS='0.1,1,fast'" in result.stderr
    assert "Traceback" not in result.stderr
