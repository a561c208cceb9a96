"""Settings for the scheduler processes of the growth benchmark: the real
settings and BENCH_JOBS jobs that do not fire during a run (cron on 1 January
at 03:00). Each process counts its queries and new connections, and writes the
counts to BENCH_COUNTS_DIR/<pid> when sent SIGUSR1."""

import os
import signal
from pathlib import Path

from django.db.backends.signals import connection_created

from config.settings import *  # noqa: F403

SCHEDULER_JOBS = [
    {
        "id": f"bench_job_{number:05d}",
        "func": "crm.jobs.delete_old_job_executions",
        "cron": "0 3 1 1 *",
    }
    for number in range(int(os.environ.get("BENCH_JOBS", "10")))
]

COUNTS = {"queries": 0, "connections": 0}


def _count_query(execute, sql, params, many, context):
    COUNTS["queries"] += 1
    return execute(sql, params, many, context)


def _count_connection(sender, connection, **kwargs):
    COUNTS["connections"] += 1
    if _count_query not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count_query)


def _write_counts(signum, frame):
    path = Path(os.environ["BENCH_COUNTS_DIR"], str(os.getpid()))
    path.write_text(f"{COUNTS['queries']} {COUNTS['connections']}\n")


connection_created.connect(_count_connection)
signal.signal(signal.SIGUSR1, _write_counts)
