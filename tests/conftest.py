import contextlib
import os
import uuid

import pytest

from tests.support.dbservers import private_mariadb, private_postgres  # noqa: F401

# PROJECT_DIR, project_env, read_fires, run_manage, start_group and stop_group are
# re-exported only for the test modules being changed in another worktree at the
# moment (test_outages, test_execution, test_startup, test_process_rule), which
# still import them from here: once that work lands, point their imports at
# tests.support.processes and drop those names.
from tests.support.processes import (
    PROJECT_DIR,  # noqa: F401 (re-exported)
    _mysql_execute,
    e2e_env,
    free_port,
    project_env,  # noqa: F401 (re-exported)
    read_fires,  # noqa: F401 (re-exported)
    run_manage,  # noqa: F401 (re-exported)
    start_group,  # noqa: F401 (re-exported)
    stop_group,  # noqa: F401 (re-exported)
    wait_until,
)


@pytest.fixture
def fresh_database_url(tmp_path):
    """A new, empty database for tests that run the app in other processes: a
    SQLite file, or a new database on the PostgreSQL or MariaDB server that
    DATABASE_URL points at."""
    base = os.environ.get("DATABASE_URL", "")
    name = f"crm_e2e_{uuid.uuid4().hex[:10]}"
    server = base.rsplit("/", 1)[0]
    if base.startswith(("postgres://", "postgresql://")):
        import psycopg

        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{server}/{name}"
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    elif base.startswith(("mysql://", "mariadb://")):
        _mysql_execute(base, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield f"{server}/{name}"
        _mysql_execute(base, f"DROP DATABASE IF EXISTS `{name}`")
    else:
        yield f"sqlite:///{tmp_path}/e2e.sqlite3"


@pytest.fixture
def app_env(tmp_path, fresh_database_url):
    """Environment for app processes running the every-second job `e2e_heartbeat`."""
    return e2e_env(tmp_path, fresh_database_url)


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("agent", "agent@example.com", "secret")


@pytest.fixture
def active_scheduler(settings):
    """A real scheduler in this process (its own threads and database connections)
    holding the lease. Tests using it need `django_db(transaction=True)`."""
    from crm.scheduler.runner import SchedulerRunner

    settings.SCHEDULER_LEASE_SECONDS = 3
    settings.SCHEDULER_SHUTDOWN_WAIT_SECONDS = 5
    runner = SchedulerRunner()
    runner.start()
    wait_until(lambda: runner.active, timeout=15, message="the scheduler did not become active")
    yield runner
    runner.stop()


@contextlib.contextmanager
def database_unreachable():
    """Point this process's connection at a database that cannot be reached
    (a SQLite file in a missing directory, or a server port nobody listens
    on), for the block's duration. Tests using it need
    `django_db(transaction=True)`: no transaction may be open."""
    from django.db import connection

    connection.close()
    saved = dict(connection.settings_dict)
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent-directory/crm.sqlite3"
    else:
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(free_port()))
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
