"""`manage.py check` catches bad job declarations, naming the job and the field."""

import pytest

from crm.scheduler.checks import declaration_errors
from tests.conftest import project_env, run_manage

GOOD = {"id": "good", "func": "tests.e2e_jobs.record_fire", "interval_seconds": 60}


def errors_for(settings, *jobs):
    settings.SCHEDULER_JOBS = list(jobs)
    return [(error.id, error.msg, error.hint) for error in declaration_errors()]


def test_good_declarations_pass(settings):
    assert (
        errors_for(
            settings, GOOD, {**GOOD, "id": "nightly", "interval_seconds": None, "cron": "0 2 * * *"}
        )
        == []
    )


@pytest.mark.parametrize(
    ("job", "code", "words"),
    [
        ({**GOOD, "cron": "0 2 * * *"}, "crm.E005", ["'good'", "trigger", "exactly one"]),
        ({**GOOD, "interval_seconds": None}, "crm.E005", ["'good'", "trigger"]),
        ({**GOOD, "interval_seconds": 0}, "crm.E008", ["'good'", "interval_seconds", "0"]),
        ({**GOOD, "interval_seconds": -5}, "crm.E008", ["interval_seconds", "-5"]),
        (
            {**GOOD, "func": "crm.nowhere.job"},
            "crm.E003",
            ["'good'", "func", "crm.nowhere.job", "cannot be imported"],
        ),
        (
            {**GOOD, "func": "tests.e2e_settings.SCHEDULER_JOBS"},
            "crm.E004",
            ["func", "not callable"],
        ),
        (
            {**GOOD, "timezone": "Europe/Atlantis"},
            "crm.E007",
            ["'good'", "timezone", "Europe/Atlantis"],
        ),
        ({**GOOD, "misfire_grace_seconds": 0}, "crm.E009", ["misfire_grace_seconds"]),
        ({**GOOD, "interval": 60}, "crm.E001", ["'good'", "unknown keys", "interval"]),
        ({"id": "no_func", "interval_seconds": 60}, "crm.E001", ["'no_func'", "func"]),
        ("crm.jobs.something", "crm.E001", ["not a dict"]),
    ],
)
def test_each_kind_of_bad_declaration_is_an_error_naming_job_and_field(settings, job, code, words):
    errors = errors_for(settings, job)

    assert [error_id for error_id, _, _ in errors] == [code]
    text = errors[0][1] + " " + errors[0][2]
    for word in words:
        assert word in text


def test_a_duplicate_id_is_an_error(settings):
    errors = errors_for(settings, GOOD, GOOD)

    assert [(error_id, "declared twice" in msg) for error_id, msg, _ in errors] == [
        ("crm.E002", True)
    ]


@pytest.mark.parametrize(
    ("cron", "field"),
    [
        ("0 2 * *", "5 fields"),
        ("61 2 * * *", "minute"),
        ("0 2 * * mon-xyz", "day-of-week"),
        ("0 0 30 2 *", ""),
    ],
)
def test_a_malformed_cron_expression_is_an_error(settings, cron, field):
    errors = errors_for(settings, {"id": "nightly", "func": GOOD["func"], "cron": cron})

    assert [error_id for error_id, _, _ in errors] == ["crm.E006"]
    assert "'nightly'" in errors[0][1] and cron in errors[0][1]
    assert field in errors[0][1]


def test_manage_py_check_fails_on_a_bad_declaration():
    env = project_env(SECRET_KEY="x", DJANGO_SETTINGS_MODULE="tests.bad_jobs_settings")
    result = run_manage("check", env=env)

    assert result.returncode == 1
    assert "crm.E008" in result.stderr and "'broken'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_malformed_cron_from_the_environment_names_the_variable_and_the_app_still_serves():
    env = project_env(SECRET_KEY="x", AUTO_CLOSE_CRON="0 25 * * *")

    checked = run_manage("check", env=env)
    shell = run_manage("shell", "-c", "print('serving')", env=env)

    assert checked.returncode == 1
    assert "crm.E006" in checked.stderr and "'auto_close_resolved_tickets'" in checked.stderr
    assert "Set AUTO_CLOSE_CRON to 5 fields" in checked.stderr
    assert "Traceback" not in checked.stderr
    assert shell.returncode == 0 and "serving" in shell.stdout
