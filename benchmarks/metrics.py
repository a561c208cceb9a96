"""GET /metrics with 1,000 declared jobs and 1,000,000 runs in the history
(one a second for the last 11.6 days; the last hour's with their start time),
through the real URL, view and token check, against GET /health/scheduler/
with the details on the same data. Also the one count of the whole history
that follows an upgrade, against a hand-written COUNT ... GROUP BY."""

import statistics
from datetime import timedelta

from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_apscheduler.models import DjangoJob

from benchmarks.data import analyze, delete_run_history, insert_executions
from benchmarks.measure import as_in_a_server, stopwatch
from benchmarks.report import Figure
from crm.scheduler import control, tally
from crm.scheduler.models import RunTally, RunTallyMark

JOBS = 1000
RUNS = 1_000_000
REQUESTS = 200
TOKEN = "benchmark-metrics-token-" + "x" * 32
TARGETS_MS = {"postgresql": 100, "sqlite": 200}
JOB_DECLARATIONS = [
    {"id": f"bench-{n:04}", "func": "crm.jobs.delete_old_job_executions", "interval_seconds": 600}
    for n in range(JOBS)
]


def run(sizes: list[int]) -> list[Figure]:
    with override_settings(
        SCHEDULER_JOBS=JOB_DECLARATIONS,
        METRICS_TOKEN=TOKEN,
        HEALTH_TOKEN=TOKEN,
        ALLOWED_HOSTS=["testserver"],  # django.test.Client's host
    ):
        clear()
        control.sync("benchmark")
        fill()
        first_count, reference_count = count_after_upgrade()
        client = Client(headers={"Authorization": f"Bearer {TOKEN}"})
        queries = queries_per_scrape(client)
        with as_in_a_server():
            metrics_ms = latencies(client, "/metrics")
            health_ms = latencies(client, "/health/scheduler/")
        clear()
    return figures(metrics_ms, health_ms, queries, first_count, reference_count)


def figures(metrics_ms, health_ms, queries, first_count, reference_count) -> list[Figure]:
    target = TARGETS_MS.get(connection.vendor)
    (p50, p99), (health_p50, health_p99) = (percentiles(ms) for ms in (metrics_ms, health_ms))
    about = f"{JOBS:,} jobs, {RUNS:,} runs ({REQUESTS} requests)"
    reference = "GET /health/scheduler/ with details"
    return [
        Figure("metrics", f"GET /metrics p50: {about}", p50, "ms", health_p50, reference),
        Figure(
            "metrics",
            f"GET /metrics p99: {about}",
            p99,
            "ms",
            health_p99,
            reference,
            f"< {target} ms" if target else "",
            p99 < target if target else None,
        ),
        Figure("metrics", "queries per scrape", queries, "queries"),
        Figure(
            "metrics",
            f"the first scrape after an upgrade counts the whole history once ({RUNS:,} runs)",
            first_count,
            "s",
            reference_count,
            "COUNT(*) GROUP BY job, status",
        ),
    ]


def percentiles(ms: list[float]) -> tuple[float, float]:
    return statistics.median(ms), statistics.quantiles(ms, n=100)[98]


def fill() -> None:
    now = timezone.now().replace(microsecond=0)
    job_ids = [job["id"] for job in JOB_DECLARATIONS]
    insert_executions(RUNS, job_ids, now - timedelta(seconds=RUNS))
    recent = connection.ops.adapt_datetimefield_value(now - timedelta(hours=1))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO crm_rundetail (execution_id, triggered_by, started_at, host, pid, "
            "scheduler, attempt) SELECT id, 'schedule', run_time, 'bench', 1, '', 1 "
            "FROM django_apscheduler_djangojobexecution WHERE run_time >= %s",
            [recent],
        )
    analyze("django_apscheduler_djangojobexecution", "crm_rundetail")


def count_after_upgrade() -> tuple[float, float]:
    tally.outcomes()  # marks where counting starts
    with stopwatch() as ours:
        assert tally.count_runs()
    with stopwatch() as reference, connection.cursor() as cursor:
        cursor.execute(
            "SELECT job_id, status, COUNT(*) FROM django_apscheduler_djangojobexecution "
            "GROUP BY job_id, status"
        )
        cursor.fetchall()
    return ours(), reference()


def queries_per_scrape(client: Client) -> int:
    client.get("/metrics")  # the first of a process reads a little more
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/metrics")
    assert response.status_code == 200, response.content[:200]
    return len(queries)


def latencies(client: Client, url: str) -> list[float]:
    for _ in range(5):  # warm-up
        client.get(url)
    elapsed = []
    for _ in range(REQUESTS):
        with stopwatch() as took:
            response = client.get(url)
        assert response.status_code in (200, 503), response.content[:200]
        elapsed.append(took() * 1000)
    return elapsed


def clear() -> None:
    delete_run_history()
    RunTally.objects.all().delete()
    RunTallyMark.objects.all().delete()
    DjangoJob.objects.filter(id__startswith="bench-").delete()
