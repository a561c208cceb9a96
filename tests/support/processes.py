"""Plumbing for tests that run the app in other processes: their environment,
starting and stopping them, reading what they wrote to the database and logs.
Plain helpers; the fixtures built on them are in tests/conftest.py."""

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

PROJECT_DIR = Path(__file__).resolve().parents[2]


def project_env(**overrides: str) -> dict[str, str]:
    """Environment for a child process: no .env file, no inherited settings
    except the database, then `overrides`."""
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "DATABASE_URL", "TMPDIR"}
    env = {key: value for key, value in os.environ.items() if key in keep}
    env.update({"ENV_FILE": os.devnull, "PYTHONUNBUFFERED": "1", "ENABLE_SCHEDULER": "0"})
    env.update(overrides)
    return env


def run_manage(*args: str, env: dict[str, str], timeout: float = 60):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_group(
    command: list[str], env: dict[str, str], output: Path | None = None
) -> subprocess.Popen:
    """Start a server in its own process group, so that it and its children can be
    stopped. Its output goes to `output` if given (to read while it runs)."""
    with open(output, "w") if output else contextlib.nullcontext(subprocess.PIPE) as stdout:
        return subprocess.Popen(
            command,
            cwd=PROJECT_DIR,
            env=env,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def stop_group(process: subprocess.Popen, sig=signal.SIGTERM) -> str:
    """Stop a process started by `start_group` and its children; return their output."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        return process.communicate(timeout=30)[0] or ""
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.communicate()[0] or ""


def wait_until(condition, timeout: float, interval: float = 0.2, message: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(message or f"condition not met within {timeout} s")


def mysql_connect(url: str, database: str | None = None):
    import pymysql

    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "localhost",
        port=parts.port or 3306,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=database,
        autocommit=True,
    )


def mysql_execute(url: str, sql: str) -> None:
    with contextlib.closing(mysql_connect(url)) as admin, admin.cursor() as cursor:
        cursor.execute(sql)


def query(database_url: str, sql: str) -> list[tuple]:
    """Rows of `sql` read straight from the database of processes under test
    (not through Django, whose connection in the test process is the test database)."""
    if database_url.startswith("sqlite:///"):
        path = database_url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path, timeout=20)) as database:
            return database.execute(sql).fetchall()
    if database_url.startswith(("postgres://", "postgresql://")):
        import psycopg

        with psycopg.connect(database_url) as database:
            return database.execute(sql).fetchall()
    name = urlsplit(database_url).path.lstrip("/")
    with (
        contextlib.closing(mysql_connect(database_url, name)) as database,
        database.cursor() as cursor,
    ):
        cursor.execute(sql)
        return list(cursor.fetchall())


def as_utc(value) -> datetime | None:
    """A datetime column as an aware UTC datetime: SQLite returns text,
    MariaDB naive UTC, PostgreSQL aware."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class LeaseRow:
    holder: str
    host: str
    pid: int | None
    acquired_at: datetime | None
    expires_at: datetime | None


def read_lease(database_url: str) -> LeaseRow | None:
    rows = query(
        database_url,
        "SELECT holder, host, pid, acquired_at, expires_at FROM crm_schedulerlease "
        "WHERE name = 'default'",
    )
    if not rows:
        return None
    holder, host, pid, acquired_at, expires_at = rows[0]
    return LeaseRow(holder, host, pid, as_utc(acquired_at), as_utc(expires_at))


class Execution(NamedTuple):
    status: str
    exception: str | None


def read_executions(database_url: str, job_id: str) -> dict[datetime, Execution]:
    """A job's run history (django-apscheduler's DjangoJobExecution) by fire time."""
    rows = query(
        database_url,
        "SELECT run_time, status, exception FROM django_apscheduler_djangojobexecution "
        f"WHERE job_id = '{job_id}'",
    )
    return {as_utc(run_time): Execution(status, exception) for run_time, status, exception in rows}


E2E_LEASE_SECONDS = 3


def e2e_env(
    tmp_path, database_url, settings="tests.support.e2e_settings", **overrides
) -> dict[str, str]:
    """Environment for app processes on a migrated, empty database."""
    env = project_env(
        DJANGO_SETTINGS_MODULE=settings,
        SECRET_KEY="e2e",
        DEBUG="1",
        DATABASE_URL=database_url,
        LOG_DIR=str(tmp_path / "logs"),
        ENABLE_SCHEDULER="1",
        SCHEDULER_LEASE_SECONDS=str(E2E_LEASE_SECONDS),
        SCHEDULER_SHUTDOWN_WAIT_SECONDS="2",
        E2E_FIRE_LOG=str(tmp_path / "fires.log"),
    )
    env.update(overrides)
    migrated = run_manage("migrate", "--noinput", env={**env, "ENABLE_SCHEDULER": "0"})
    assert migrated.returncode == 0, migrated.stderr
    return env


def read_fires(log: Path) -> list[tuple[datetime, int]]:
    """(fire time, pid) of each run logged by tests.support.e2e_jobs.record_fire."""
    return [(fire.time, fire.pid) for fire in read_fire_lines(log)]


class Fire(NamedTuple):
    time: datetime
    pid: int
    host: str


def read_fire_lines(log: Path) -> list[Fire]:
    if not log.exists():
        return []
    return [
        Fire(datetime.fromisoformat(fire), int(pid), host)
        for fire, pid, host in (line.split() for line in log.read_text().splitlines())
    ]


def activated_at(log: Path, pid: int) -> datetime:
    """When process `pid` logged that its scheduler became active (log times are UTC)."""
    marker = f"[pid {pid}] scheduler active in this process"
    lines = [line for line in log.read_text().splitlines() if marker in line]
    assert len(lines) == 1, lines
    stamp = " ".join(lines[0].split()[:2])
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)


def assert_each_fire_ran_once(fires):
    counts = Counter(fire[0] for fire in fires)
    doubled = {fire: count for fire, count in counts.items() if count > 1}
    assert not doubled, f"fires that ran more than once: {doubled}"


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
