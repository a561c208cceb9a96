"""Several processes writing to one SQLite file at once wait for each other
instead of failing with "database is locked"."""

import subprocess
import sys

import pytest

from tests.support.processes import PROJECT_DIR, project_env, run_manage

WRITERS = 4
ITERATIONS = 60


@pytest.fixture
def sqlite_env(tmp_path):
    env = project_env(
        SECRET_KEY="x",
        DATABASE_URL=f"sqlite:///{tmp_path}/crm.sqlite3",
        LOG_DIR=str(tmp_path / "logs"),
        LOG_LEVEL="WARNING",
    )
    migrated = run_manage("migrate", "--noinput", env=env, timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    return env


def run_writers(env, *flags):
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.sqlite_writer", str(ITERATIONS), *flags],
            cwd=PROJECT_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(WRITERS)
    ]
    return [(writer.wait(timeout=240), writer.stdout.read()) for writer in writers]


def query(env, sql):
    code = (
        "from django.db import connection; cursor = connection.cursor(); "
        f"cursor.execute({sql!r}); print(cursor.fetchone()[0])"
    )
    result = run_manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_concurrent_writer_processes_all_succeed(sqlite_env):
    outcomes = run_writers(sqlite_env)

    assert [code for code, _ in outcomes] == [0] * WRITERS, outcomes
    assert not any("locked" in output for _, output in outcomes)
    tickets = WRITERS * ITERATIONS
    resolved = query(sqlite_env, "SELECT COUNT(*) FROM crm_ticket WHERE status = 'resolved'")
    assert int(resolved) == tickets
    # created + open + resolved per ticket; the priority edit is not a status event
    assert int(query(sqlite_env, "SELECT COUNT(*) FROM crm_ticketevent")) == 3 * tickets
    assert query(sqlite_env, "PRAGMA journal_mode") == "wal"


def test_without_these_settings_concurrent_writers_fail(sqlite_env):
    outcomes = run_writers(sqlite_env, "--naive")

    assert any("database is locked" in output for _, output in outcomes), outcomes
