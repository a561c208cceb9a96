"""Settings come from the environment; a bad value stops start-up with one line
naming the variable and what it accepts. Run as real processes."""

import json
import secrets

import pytest

from tests.support.processes import PROJECT_DIR, project_env, run_manage

PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "crm.example.com",
}
PRINT_SETTINGS = (
    "import json; from django.conf import settings as s; "
    "db = s.DATABASES['default']; "
    "print(json.dumps({'engine': db['ENGINE'], 'name': str(db['NAME']), "
    "'options': db.get('OPTIONS', {}), 'debug': s.DEBUG, 'tz': s.TIME_ZONE, "
    "'scheduler': s.ENABLE_SCHEDULER, 'hosts': s.ALLOWED_HOSTS, 'admins': s.ADMINS, "
    "'secret': s.SECRET_KEY, 'origins': s.CSRF_TRUSTED_ORIGINS}))"
)


def settings_of(**variables):
    result = run_manage("shell", "-c", PRINT_SETTINGS, env=project_env(**variables))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_stops_with_one_line(result, *words):
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize(
    ("variables", "words"),
    [
        ({"DEBUG": "maybe"}, ["DEBUG", "'maybe'", "true/false"]),
        ({"ENABLE_SCHEDULER": "perhaps"}, ["ENABLE_SCHEDULER", "1/0"]),
        ({"DATABASE_URL": "foo://x"}, ["DATABASE_URL", "foo://", "postgres://", "sqlite://"]),
        ({"DATABASE_URL": "localhost/crm"}, ["DATABASE_URL", "(none)", "mysql://"]),
        ({"DATABASE_URL": "postgres://u@h:notaport/db"}, ["DATABASE_URL", "not a valid"]),
        ({"DATABASE_URL": "postgres://u@localhost:5432/"}, ["DATABASE_URL", "names no database"]),
        ({"TIME_ZONE": "Mars/Olympus"}, ["TIME_ZONE", "Mars/Olympus", "Europe/Warsaw"]),
        ({"CSRF_TRUSTED_ORIGINS": "crm.example.com"}, ["CSRF_TRUSTED_ORIGINS", "https://"]),
        ({"ADMINS": "bob"}, ["ADMINS", "name@example.com"]),
        ({"EMAIL_PORT": "smtp"}, ["EMAIL_PORT", "whole number"]),
        ({"EMAIL_USE_TLS": "1", "EMAIL_USE_SSL": "1"}, ["EMAIL_USE_TLS", "EMAIL_USE_SSL"]),
        ({"LOG_LEVEL": "LOUD"}, ["LOG_LEVEL", "WARNING"]),
        ({"LOG_FORMAT": "xml"}, ["LOG_FORMAT", "'xml'", "text or json"]),
        ({"LOG_MAX_BYTES": "5MB"}, ["LOG_MAX_BYTES", "whole number"]),
        ({"LOG_BACKUP_COUNT": "0"}, ["LOG_BACKUP_COUNT", "at least 1"]),
        ({"API_USER_RATE": "600 a minute"}, ["API_USER_RATE", "600/minute"]),
        ({"API_ANON_RATE": "30/min"}, ["API_ANON_RATE", "second, minute, hour or day"]),
        ({"METRICS_WINDOW_MINUTES": "hour"}, ["METRICS_WINDOW_MINUTES", "whole number"]),
        ({"ENV_FILE": "/nonexistent/.env"}, ["ENV_FILE", "/nonexistent/.env"]),
        ({"SENTRY_DSN": "o0.ingest.sentry.io/1"}, ["SENTRY_DSN", "not a Sentry DSN"]),
        ({"SENTRY_DSN": "https://o0.ingest.sentry.io/1"}, ["SENTRY_DSN", "<public key>"]),
        ({"SENTRY_DSN": "https://k3y@o0.ingest.sentry.io/x"}, ["SENTRY_DSN", "<project id>"]),
        ({"SENTRY_DSN": "https://k3y@host:port/1"}, ["SENTRY_DSN", "Client Keys"]),
        ({"SENTRY_CRONS": "sometimes"}, ["SENTRY_CRONS", "true/false"]),
    ],
)
def test_it_stops_on_a_bad_value_with_one_line_naming_the_variable(variables, words):
    result = run_manage("check", env=project_env(**{**PRODUCTION, **variables}))
    assert_stops_with_one_line(result, *words)


def test_it_requires_secret_key_when_debug_is_off():
    result = run_manage("check", env=project_env(DEBUG="0"))
    assert_stops_with_one_line(result, "SECRET_KEY", "DEBUG is off", "token_urlsafe")


def test_it_requires_secret_key_when_debug_is_not_set():
    result = run_manage("check", env=project_env())
    assert_stops_with_one_line(result, "SECRET_KEY")


def test_it_uses_a_stable_development_key_in_debug():
    first = settings_of(DEBUG="1")["secret"]
    second = settings_of(DEBUG="1")["secret"]
    assert first == second
    assert len(first) >= 50


def test_it_reads_a_dotenv_file(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"SECRET_KEY={PRODUCTION['SECRET_KEY']}\nTIME_ZONE=Europe/Warsaw\n")
    values = settings_of(ENV_FILE=str(dotenv))
    assert values["tz"] == "Europe/Warsaw"
    assert values["debug"] is False


def test_the_environment_wins_over_the_dotenv_file(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("SECRET_KEY=from-file\nTIME_ZONE=Europe/Warsaw\n")
    assert settings_of(ENV_FILE=str(dotenv), TIME_ZONE="Asia/Tehran")["tz"] == "Asia/Tehran"


def test_it_reports_a_bad_value_from_the_dotenv_file(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("DEBUG=sometimes\n")
    result = run_manage("check", env=project_env(ENV_FILE=str(dotenv)))
    assert_stops_with_one_line(result, "DEBUG", "'sometimes'")


def test_defaults_are_safe_for_production():
    values = settings_of(SECRET_KEY="x", DATABASE_URL="", ENABLE_SCHEDULER="")
    assert values["debug"] is False
    assert values["tz"] == "UTC"
    assert values["scheduler"] is True
    assert values["hosts"] == []
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["name"] == str(PROJECT_DIR / "db.sqlite3")


def test_sqlite_is_set_up_for_several_processes():
    options = settings_of(SECRET_KEY="x", DATABASE_URL="sqlite:///tmp/other.sqlite3")["options"]
    assert "journal_mode=WAL" in options["init_command"]
    assert options["transaction_mode"] == "IMMEDIATE"
    assert options["timeout"] >= 5


def test_relative_sqlite_paths_are_relative_to_the_project_not_the_working_directory():
    values = settings_of(SECRET_KEY="x", DATABASE_URL="sqlite:///data/crm.sqlite3")
    assert values["name"] == str(PROJECT_DIR / "data" / "crm.sqlite3")


@pytest.mark.parametrize(
    ("url", "engine", "name"),
    [
        ("postgres://crm:pw@db.internal:5432/crm", "django.db.backends.postgresql", "crm"),
        ("postgresql://crm@localhost/helpdesk", "django.db.backends.postgresql", "helpdesk"),
        ("mysql://root@127.0.0.1:3306/crm", "django.db.backends.mysql", "crm"),
        ("mariadb://root@127.0.0.1:3306/crm", "django.db.backends.mysql", "crm"),
    ],
)
def test_it_accepts_postgresql_and_mysql_urls(url, engine, name):
    values = settings_of(SECRET_KEY="x", DATABASE_URL=url)
    assert (values["engine"], values["name"]) == (engine, name)


def test_it_parses_lists():
    values = settings_of(
        SECRET_KEY="x",
        ALLOWED_HOSTS="crm.example.com, .example.org",
        CSRF_TRUSTED_ORIGINS="https://crm.example.com",
        ADMINS="Ops Team <ops@example.com>, dev@example.com",
    )
    assert values["hosts"] == ["crm.example.com", ".example.org"]
    assert values["origins"] == ["https://crm.example.com"]
    assert values["admins"] == [
        ["Ops Team", "ops@example.com"],
        ["dev@example.com", "dev@example.com"],
    ]


def test_the_documented_production_settings_pass_check_deploy():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env=project_env(**PRODUCTION, SECURE_HSTS_PRELOAD="1"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_it_writes_the_log_file_into_log_dir_creating_it(tmp_path):
    log_dir = tmp_path / "nested" / "logs"
    result = run_manage(
        "shell",
        "-c",
        "import logging; logging.getLogger('crm.scheduler').info('hello from test')",
        env=project_env(SECRET_KEY="x", LOG_DIR=str(log_dir)),
    )
    assert result.returncode == 0, result.stderr
    line = next(
        line for line in (log_dir / "django.log").read_text().splitlines() if "scheduler" in line
    )
    assert "INFO crm.scheduler" in line
    assert "hello from test" in line


def test_it_stops_when_log_dir_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_manage("check", env=project_env(**PRODUCTION, LOG_DIR=str(blocker / "logs")))
    assert_stops_with_one_line(result, "LOG_DIR", "cannot be created")


def test_with_log_format_json_each_line_of_the_log_is_one_json_object(tmp_path):
    log_dir = tmp_path / "logs"
    result = run_manage(
        "shell",
        "-c",
        "import logging; log = logging.getLogger('crm.scheduler'); log.info('hello'); "
        "log.error('broken', exc_info=ValueError('bad'))",
        env=project_env(SECRET_KEY="x", LOG_DIR=str(log_dir), LOG_FORMAT="json"),
    )
    assert result.returncode == 0, result.stderr

    lines = [json.loads(line) for line in (log_dir / "django.log").read_text().splitlines()]
    hello, broken = (line for line in lines if line["logger"] == "crm.scheduler")
    assert hello.keys() == {"time", "level", "logger", "pid", "message"}
    assert hello["level"] == "INFO" and hello["message"] == "hello"
    assert hello["time"].endswith("+00:00")
    assert broken["exception"].endswith("ValueError: bad")


SENTRY_STATE = (
    "import sentry_sdk; from crm.scheduler.sentry_crons import active_sdk; "
    "client = sentry_sdk.get_client(); "
    "print(client.parsed_dsn is not None, 'django' in client.integrations, "
    "active_sdk() is not None)"
)


def test_a_sentry_dsn_sets_sentry_up_with_the_django_integration():
    dsn = "http://public@127.0.0.1:9/1"  # nothing is sent: the shell captures no error
    env = project_env(SECRET_KEY="x", SENTRY_DSN=dsn)
    result = run_manage("shell", "-c", SENTRY_STATE, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-3:] == ["True", "True", "True"]


def test_a_malformed_sentry_dsn_is_not_quoted():
    env = project_env(SECRET_KEY="x", SENTRY_DSN="https://k3y-secret@o0.ingest.sentry.io/x")
    result = run_manage("check", env=env)

    assert_stops_with_one_line(result, "SENTRY_DSN")
    assert "k3y-secret" not in result.stderr


def test_without_a_dsn_sentry_is_not_set_up():
    result = run_manage("shell", "-c", SENTRY_STATE, env=project_env(SECRET_KEY="x"))

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-3:] == ["False", "False", "False"]


def test_a_sentry_dsn_without_sentry_sdk_installed_is_a_check_warning(tmp_path):
    # A directory ahead on the path whose sentry_sdk cannot be imported stands
    # in for a deployment without the package.
    (tmp_path / "sentry_sdk.py").write_text("raise ImportError('not installed')\n")
    env = project_env(
        SECRET_KEY="x",
        SENTRY_DSN="https://public@o0.ingest.sentry.io/1",
        PYTHONPATH=str(tmp_path),
    )

    result = run_manage("check", env=env)

    assert result.returncode == 0, result.stderr
    assert "crm.W003" in result.stderr
    assert "SENTRY_DSN is set, but sentry-sdk is not installed" in result.stderr
