"""`manage.py check` catches bad job declarations, naming the job and the field."""

import pytest

from crm.scheduler.checks import declaration_errors
from tests.support.processes import project_env, run_manage

GOOD = {"id": "good", "func": "tests.support.e2e_jobs.record_fire", "interval_seconds": 60}


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
            {**GOOD, "func": "tests.support.e2e_settings.SCHEDULER_JOBS"},
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
    env = project_env(SECRET_KEY="x", DJANGO_SETTINGS_MODULE="tests.support.bad_jobs_settings")
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


@pytest.mark.parametrize("seconds", [0.001, 0.5, 0.999])
def test_an_interval_below_one_second_is_an_error(settings, seconds):
    errors = errors_for(settings, {**GOOD, "interval_seconds": seconds})

    assert [error_id for error_id, _, _ in errors] == ["crm.E010"]
    assert f"is {seconds}, below the floor of 1 second" in errors[0][1]
    assert "1 or more" in errors[0][2]


def test_an_interval_of_one_second_is_allowed(settings):
    assert errors_for(settings, {**GOOD, "interval_seconds": 1}) == []


@pytest.mark.parametrize(
    "job_id", ["a", "nightly_report", "billing.sync-2", "A" * 255, "Report-2.v1"]
)
def test_ids_of_letters_digits_underscores_dashes_and_dots_pass(settings, job_id):
    assert errors_for(settings, {**GOOD, "id": job_id}) == []


@pytest.mark.parametrize(
    ("job_id", "problem"),
    [
        ("scheduler:stalled", "may hold only letters, digits"),
        ("", "may hold only letters, digits"),
        ("two words", "may hold only letters, digits"),
        ("caf\u00e9", "may hold only letters, digits"),
        ("a/b", "may hold only letters, digits"),
        (5, "must be text, not int"),
        (None, "must be text, not NoneType"),
        (["a", "b"], "must be text, not list"),
    ],
)
def test_a_malformed_id_is_an_error(settings, job_id, problem):
    errors = errors_for(settings, {**GOOD, "id": job_id})

    assert [error_id for error_id, _, _ in errors] == ["crm.E011"]
    assert f"Job {job_id!r}: id {problem}" in errors[0][1]
    assert '"_", "-" and "."' in errors[0][2]


def test_an_id_longer_than_the_job_store_keeps_is_an_error(settings):
    errors = errors_for(settings, {**GOOD, "id": "a" * 256})

    assert [error_id for error_id, _, _ in errors] == ["crm.E012"]
    assert "is 256 characters long; the job store keeps at most 255" in errors[0][1]


def test_unhashable_ids_declared_twice_are_reported_without_a_crash(settings):
    errors = errors_for(settings, {**GOOD, "id": ["x"]}, {**GOOD, "id": ["x"]})

    assert [error_id for error_id, _, _ in errors] == ["crm.E011", "crm.E011"]


@pytest.mark.parametrize("field", ["minute", "hour", "day-of-month", "month", "day-of-week"])
def test_a_cron_field_of_thousands_of_digits_is_a_malformed_cron_error(settings, field):
    fields = ["0", "2", "*", "*", "*"]
    position = ["minute", "hour", "day-of-month", "month", "day-of-week"].index(field)
    fields[position] = "1" * 5000
    errors = errors_for(settings, {**GOOD, "interval_seconds": None, "cron": " ".join(fields)})

    assert [error_id for error_id, _, _ in errors] == ["crm.E006"]
    assert f"{field} field '111" in errors[0][1]
    assert "has a number of 5000 digits; use at most 4" in errors[0][1]


def longest_quote(text: str) -> int:
    """The length of the longest '...'-quoted part of a message."""
    return max((len(part) for part in text.split("'")[1::2]), default=0)


@pytest.mark.parametrize(
    "job",
    [
        {**GOOD, "interval_seconds": None, "cron": "x" * 5000 + " * * * *"},
        {**GOOD, "interval_seconds": None, "cron": "1" * 5000 + " * * * *"},
        {**GOOD, "interval_seconds": None, "cron": "* " * 3000},
        {**GOOD, "id": "bad:" * 1000},
        {**GOOD, "func": "crm.nowhere." + "x" * 5000},
        {**GOOD, "func": "x" * 5000},
        {**GOOD, "timezone": "Europe/" + "x" * 5000},
        {**GOOD, "interval_seconds": "6" * 5000},
        {**GOOD, "misfire_grace_seconds": -(10**5000)},
    ],
)
def test_errors_quote_at_most_80_characters_of_what_was_written(settings, job):
    errors = errors_for(settings, job)

    assert errors
    for _, msg, hint in errors:
        assert longest_quote(msg) <= 80, msg
        assert len(msg) < 400 and len(hint) < 400


def test_a_func_that_is_not_text_is_an_error(settings):
    errors = errors_for(settings, {**GOOD, "func": 5})

    assert [(error_id, msg) for error_id, msg, _ in errors] == [
        ("crm.E003", "Job 'good': func is 5.")
    ]


def test_a_time_zone_that_is_not_text_is_an_error(settings):
    errors = errors_for(settings, {**GOOD, "timezone": 5})

    assert [error_id for error_id, _, _ in errors] == ["crm.E007"]


def test_manage_py_check_reports_a_cron_of_thousands_of_digits_without_a_traceback():
    env = project_env(SECRET_KEY="x", AUTO_CLOSE_CRON="1" * 5000 + " 2 * * *")
    result = run_manage("check", env=env)

    assert result.returncode == 1
    assert "crm.E006" in result.stderr and "a number of 5000 digits" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr) < 2000
