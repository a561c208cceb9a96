import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent


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


def start_group(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start a server in its own process group, so that it and its children can be stopped."""
    return subprocess.Popen(
        command,
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
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


@pytest.fixture
def fresh_database_url(tmp_path):
    """A new, empty database for tests that run the app in other processes:
    a SQLite file, or a new PostgreSQL database when DATABASE_URL points at PostgreSQL."""
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{tmp_path}/e2e.sqlite3"
        return
    import psycopg

    name = f"crm_e2e_{uuid.uuid4().hex[:10]}"
    server = base.rsplit("/", 1)[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{server}/{name}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("agent", "agent@example.com", "secret")
