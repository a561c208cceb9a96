import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent


def project_env(**overrides: str) -> dict[str, str]:
    """Environment for a child process: no .env file, no inherited settings
    except the database, then `overrides`."""
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "DATABASE_URL", "TMPDIR"}
    env = {key: value for key, value in os.environ.items() if key in keep}
    env.update({"ENV_FILE": os.devnull, "PYTHONUNBUFFERED": "1"})
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


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("agent", "agent@example.com", "secret")
