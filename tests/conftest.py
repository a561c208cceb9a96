import os
import signal
import uuid
from pathlib import Path

import pytest

from tests.support.dbservers import private_mariadb, private_postgres  # noqa: F401
from tests.support.processes import (
    e2e_env,
    mysql_execute,
    start_group,
    stop_group,
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
        mysql_execute(base, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield f"{server}/{name}"
        mysql_execute(base, f"DROP DATABASE IF EXISTS `{name}`")
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


@pytest.fixture
def start():
    """Starts processes in their own process groups; kills them with -9 after the test."""
    started = []

    def start(command: list[str], env: dict[str, str], output: Path):
        started.append(start_group(command, env, output=output))
        return started[-1]

    yield start
    for process in started:
        stop_group(process, signal.SIGKILL)


@pytest.fixture
def receiver():
    """A small HTTP server on 127.0.0.1 that records the pings and webhooks it gets."""
    from tests.support.receiver import Receiver

    with Receiver() as server:
        yield server
