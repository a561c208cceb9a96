"""The benchmarks' own database: Django's test database machinery with a name
of its own, so a benchmark run never touches the app's data or a test run's."""

import os
from contextlib import contextmanager
from urllib.parse import quote

from django.db import connection

SCHEMES = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql"}


@contextmanager
def bench_database():
    from django.test.utils import setup_databases, teardown_databases

    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        yield
    finally:
        connection.close()
        teardown_databases(old_config, verbosity=0)


def database_url() -> str:
    """DATABASE_URL of the benchmark database, for the processes a benchmark starts."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"])
    return (
        f"{SCHEMES[connection.vendor]}://{credentials}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or ''}/{db['NAME']}"
    )


def child_env(**overrides: str) -> dict[str, str]:
    """Environment for a process started by a benchmark: the benchmark database,
    no .env file, the scheduler off unless `overrides` say otherwise."""
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"}
    env = {key: value for key, value in os.environ.items() if key in keep}
    env.update(
        {
            "DATABASE_URL": database_url(),
            "ENV_FILE": os.devnull,
            "SECRET_KEY": "benchmark-secret-key-not-for-production",
            "ENABLE_SCHEDULER": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env
