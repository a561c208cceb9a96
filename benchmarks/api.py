"""The API's run list over a large history: GET /api/v1/executions/ through
Django's full request path in this process (middleware, token, permissions,
throttle, the page), with 1,000 jobs and 1,000,000 runs, against the same
page fetched by one hand-written SQL query."""

import random
import statistics
import time
from datetime import timedelta
from urllib.parse import urlencode

from django.contrib.auth.models import Permission, User
from django.db import connection
from django.db.models import Max, Min
from django.test import Client
from django.test.utils import override_settings
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution
from knox.models import AuthToken

from benchmarks.data import analyze, delete_run_history, insert_executions
from benchmarks.dispatch import percentile_99
from benchmarks.report import Figure
from crm.api.pagination import Position
from crm.api.serializers import PAGE_SIZE
from crm.scheduler import history

JOBS = 1000
RUNS = 1_000_000
REQUESTS = 200  # per kind of page
TARGET_MS = {"postgresql": 100, "sqlite": 200}
EXECUTIONS = "django_apscheduler_djangojobexecution"
PAGE_SQL = (
    f"SELECT e.id, e.job_id, e.status, e.run_time, e.duration, e.finished, e.exception, "
    f"e.traceback, d.triggered_by, d.started_at, d.host, d.pid, d.result, d.attempt, "
    f"d.retry_at FROM {EXECUTIONS} e LEFT JOIN crm_rundetail d ON d.execution_id = e.id "
    "WHERE {where} ORDER BY e.run_time DESC, e.id DESC LIMIT %s"
)


def run(sizes: list[int]) -> list[Figure]:
    job_ids = [f"bench-{n:04}" for n in range(JOBS)]
    fill(job_ids)
    client = token_client()
    try:
        with override_settings(ALLOWED_HOSTS=["testserver"], API_USER_RATE="1000000/minute"):
            figures = [
                *page_figures("the first page", client, lambda: ({}, ("1 = 1", [])), p50=True),
                *page_figures("a page half-way down (cursor)", client, deeper_pages()),
                *page_figures("one job's runs", client, one_jobs_runs(job_ids)),
                *page_figures(f"failed runs only (status={history.FAILED})", client, failed()),
                *page_figures("one day's runs", client, one_days_runs()),
            ]
    finally:
        clear()
    return figures


def fill(job_ids: list[str]) -> None:
    """JOBS jobs, RUNS runs of them one second apart up to now, each with its
    run detail as the scheduler writes it."""
    clear()
    DjangoJob.objects.bulk_create(DjangoJob(id=job_id, job_state=b"") for job_id in job_ids)
    start = timezone.now().replace(microsecond=0) - timedelta(seconds=RUNS + 60)
    insert_executions(RUNS, job_ids, start)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO crm_rundetail (execution_id, triggered_by, started_at, host, pid, "
            "scheduler, attempt) "
            f"SELECT id, 'schedule', run_time, 'web1', 1, '', 1 FROM {EXECUTIONS}"
        )
    analyze(EXECUTIONS, "crm_rundetail")


def token_client() -> Client:
    user = User.objects.create_user("bench-dashboard")
    user.user_permissions.add(Permission.objects.get(codename="view_djangojobexecution"))
    _, token = AuthToken.objects.create(user, expiry=None)
    return Client(HTTP_AUTHORIZATION=f"Token {token}")


def deeper_pages():
    """Pages starting at random runs of the older half of the history."""
    low, high = runs_id_range()

    def query():
        run_id = random.randint(low, (low + high) // 2)
        run_time = DjangoJobExecution.objects.values_list("run_time", flat=True).get(id=run_id)
        at = connection.ops.adapt_datetimefield_value(run_time)
        where = "e.run_time <= %s AND (e.run_time < %s OR e.id < %s)"
        return {"cursor": Position(run_time, run_id).encode()}, (where, [at, at, run_id])

    return query


def one_jobs_runs(job_ids: list[str]):
    def query():
        job_id = random.choice(job_ids)
        return {"job": job_id}, ("e.job_id = %s", [job_id])

    return query


def failed():
    return lambda: ({"status": history.FAILED}, ("e.status = %s", [history.FAILED]))


def one_days_runs():
    """A day at random within the history."""
    newest = timezone.now() - timedelta(seconds=60)
    span_days = RUNS // 86400

    def query():
        before = newest - timedelta(days=random.randint(1, span_days))
        since = before - timedelta(days=1)
        params = {"scheduled_since": since.isoformat(), "scheduled_before": before.isoformat()}
        adapt = connection.ops.adapt_datetimefield_value
        return params, ("e.run_time >= %s AND e.run_time < %s", [adapt(since), adapt(before)])

    return query


def page_figures(kind: str, client: Client, query, p50: bool = False) -> list[Figure]:
    ours, reference = [], []
    for number in range(REQUESTS + 5):
        params, (where, sql_params) = query()
        url = "/api/v1/executions/" + (f"?{urlencode(params)}" if params else "")
        started = time.perf_counter()
        response = client.get(url)
        api_ms = (time.perf_counter() - started) * 1000
        assert response.status_code == 200 and response.json()["results"], response.content
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(PAGE_SQL.format(where=where), [*sql_params, PAGE_SIZE + 1])
            assert cursor.fetchall()
        sql_ms = (time.perf_counter() - started) * 1000
        if number >= 5:  # the first few warm the caches
            ours.append(api_ms)
            reference.append(sql_ms)
    target = TARGET_MS.get(connection.vendor)
    measure = f"run list, {kind}: {JOBS:,} jobs, {RUNS:,} runs, {PAGE_SIZE} a page"
    figures = []
    if p50:
        figures.append(
            Figure(
                "api",
                f"{measure}, p50 of {REQUESTS}",
                statistics.median(ours),
                "ms",
                statistics.median(reference),
                "the same page by one hand-written SQL query",
            )
        )
    p99 = percentile_99(ours)
    figures.append(
        Figure(
            "api",
            f"{measure}, p99 of {REQUESTS}",
            p99,
            "ms",
            percentile_99(reference),
            "the same page by one hand-written SQL query",
            f"< {target} ms" if target else "",
            p99 < target if target else None,
        )
    )
    return figures


def runs_id_range() -> tuple[int, int]:
    runs = DjangoJobExecution.objects.aggregate(low=Min("id"), high=Max("id"))
    return runs["low"], runs["high"]


def clear() -> None:
    delete_run_history()
    DjangoJob.objects.filter(id__startswith="bench-").delete()
    User.objects.filter(username="bench-dashboard").delete()
