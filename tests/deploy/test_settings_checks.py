"""`manage.py check` warns about bearer tokens short enough to guess."""

import secrets

import pytest

from crm.settings_checks import check_token_lengths
from tests.support.processes import project_env, run_manage

TOKENS = ("SCHEDULER_WAKE_TOKEN", "HEALTH_TOKEN")


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
