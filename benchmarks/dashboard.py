"""The scheduler dashboard and the jobs page (admin changelist) with 10, 1,000
and 10,000 jobs, each with a run a day for the last 30 days (every tenth
failed), through Django's full request path as a logged-in superuser, against
django-apscheduler's own DjangoJob changelist on the same data."""

import statistics
import time
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from django_apscheduler.models import DjangoJob

from benchmarks.data import analyze, delete_run_history, insert_daily_runs
from benchmarks.measure import as_in_a_server
from benchmarks.report import Figure
from crm.scheduler import status

JOB_COUNTS = (10, 1000, 10_000)
DAYS = 30
REQUESTS = 50  # per page and size, or fewer when a page takes long
BUDGET_SECONDS = 30  # per page and size; at least MIN_REQUESTS are made
MIN_REQUESTS = 5
TARGET_MS = 200  # at 10,000 jobs
EXECUTIONS = "django_apscheduler_djangojobexecution"
PAGES = {
    "dashboard": reverse("admin:django_apscheduler_djangojob_dashboard"),
    "jobs page": reverse("admin:django_apscheduler_djangojob_changelist"),
    "reference": "/stock-admin/django_apscheduler/djangojob/",
}


def run(sizes: list[int]) -> list[Figure]:
    figures = []
    with override_settings(ALLOWED_HOSTS=["testserver"], ROOT_URLCONF="benchmarks.stock_admin"):
        client = superuser_client()
        for jobs in JOB_COUNTS:
            job_ids = [f"bench-{n:05}" for n in range(jobs)]
            with override_settings(SCHEDULER_JOBS=declarations(job_ids)):
                fill(job_ids)
                with as_in_a_server():
                    timings = {name: latencies(client, url) for name, url in PAGES.items()}
                    banner = banner_states_ms()
            figures += size_figures(jobs, timings)
            figures.append(
                Figure(
                    "dashboard",
                    f"of each page's time: the banner's look for problems among {jobs:,} jobs "
                    "(crm.scheduler.status.problem_states()), p50",
                    statistics.median(banner),
                    "ms",
                )
            )
        clear()
        User.objects.filter(username="bench-dashboard-admin").delete()
    return figures


def declarations(job_ids: list[str]) -> list[dict]:
    return [
        {"id": job_id, "func": "crm.jobs.count_open_tickets", "cron": "0 2 * * *"}
        for job_id in job_ids
    ]


def superuser_client() -> Client:
    user = User.objects.create_superuser("bench-dashboard-admin", "bench@example.com", "x")
    client = Client()
    client.force_login(user)
    return client


def clear() -> None:
    delete_run_history()
    DjangoJob.objects.filter(id__startswith="bench-").delete()


def fill(job_ids: list[str]) -> None:
    """The jobs, stored with their next fire, and DAYS runs each (one a day),
    with their run details, as a scheduler writes them."""
    clear()
    tomorrow = timezone.now().replace(hour=2, minute=0, second=0, microsecond=0) + timedelta(1)
    DjangoJob.objects.bulk_create(
        (DjangoJob(id=job_id, next_run_time=tomorrow, job_state=b"") for job_id in job_ids),
        batch_size=1000,
    )
    insert_daily_runs(len(job_ids), DAYS, tomorrow - timedelta(days=DAYS + 1))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO crm_rundetail (execution_id, triggered_by, started_at, host, pid, "
            f"scheduler, attempt) SELECT id, 'schedule', run_time, 'bench', 1, '', 1 "
            f"FROM {EXECUTIONS}"
        )
    analyze(EXECUTIONS, "crm_rundetail", "django_apscheduler_djangojob")


def latencies(client: Client, url: str) -> list[float]:
    assert client.get(url).status_code == 200, url  # the first of a process reads more
    times: list[float] = []
    deadline = time.monotonic() + BUDGET_SECONDS
    while len(times) < REQUESTS and (len(times) < MIN_REQUESTS or time.monotonic() < deadline):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, url
    return times


def banner_states_ms() -> list[float]:
    """What the admin's banner pays on every scheduler page: the states of the
    jobs that may be late, stalled or failing, found among all of them."""
    times = []
    for _ in range(MIN_REQUESTS * 2):
        started = time.perf_counter()
        status.problem_states()
        times.append((time.perf_counter() - started) * 1000)
    return times


def percentiles(ms: list[float]) -> tuple[float, float]:
    p99 = statistics.quantiles(ms, n=100, method="inclusive")[98]
    return statistics.median(ms), p99


def size_figures(jobs: int, timings: dict[str, list[float]]) -> list[Figure]:
    reference_p50, reference_p99 = percentiles(timings["reference"])
    reference = (
        f"django-apscheduler's own DjangoJob changelist, {len(timings['reference'])} requests"
    )
    figures = []
    for page in ("dashboard", "jobs page"):
        p50, p99 = percentiles(timings[page])
        about = f"{page}: {jobs:,} jobs, {DAYS} runs each, {len(timings[page])} requests"
        targeted = jobs == JOB_COUNTS[-1]
        figures += [
            Figure("dashboard", f"{about}, p50", p50, "ms", reference_p50, reference),
            Figure(
                "dashboard",
                f"{about}, p99",
                p99,
                "ms",
                reference_p99,
                reference,
                f"< {TARGET_MS} ms" if targeted else "",
                p99 < TARGET_MS if targeted else None,
            ),
        ]
    return figures
