"""The scheduler's admin pages with a million executions in the history:
still a handful of queries each, no COUNT(*) over the whole table."""

import pytest
from django.db import connection
from django.urls import reverse
from django_apscheduler.models import DjangoJob

from crm.scheduler import history

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]
ROWS = 1_000_000
SECONDS_SINCE = {
    "sqlite": "datetime('2026-01-01', '+' || i || ' seconds')",
    "postgresql": "timestamp with time zone '2026-01-01 00:00:00+00' + i * interval '1 second'",
    "mysql": "DATE_ADD('2026-01-01 00:00:00', INTERVAL i SECOND)",
}


@pytest.fixture(scope="module")
def million_executions(django_db_setup, django_db_blocker):
    """Written once for the module, outside the tests' transactions."""
    with django_db_blocker.unblock():
        insert_executions()
        yield
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("TRUNCATE django_apscheduler_djangojob CASCADE")
            else:
                cursor.execute("DELETE FROM django_apscheduler_djangojobexecution")
                cursor.execute("DELETE FROM django_apscheduler_djangojob")


def insert_executions():
    for job_id in ("nightly", "heartbeat"):
        DjangoJob.objects.create(id=job_id, job_state=b"")
    run_time = SECONDS_SINCE[connection.vendor]
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute("SET SESSION max_recursive_iterations = %s", [ROWS + 1])
        cursor.execute(
            "INSERT INTO django_apscheduler_djangojobexecution "
            "(job_id, status, run_time, duration, finished) "
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s) "
            f"SELECT CASE WHEN i %% 2 = 0 THEN 'nightly' ELSE 'heartbeat' END, "
            f"CASE WHEN i %% 10 = 1 THEN %s ELSE %s END, {run_time}, 1.5, 0 FROM n",
            [ROWS, history.FAILED, history.SUCCEEDED],
        )


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"job__id__exact": "nightly"},
        {"status": history.FAILED},
        {"status": history.FAILED, "job__id__exact": "heartbeat", "p": "3"},
    ],
)
def test_the_executions_page_stays_cheap(
    admin_client, django_assert_max_num_queries, million_executions, query
):
    url = reverse("admin:django_apscheduler_djangojobexecution_changelist")

    with django_assert_max_num_queries(9) as captured:
        response = admin_client.get(url, query)

    assert response.status_code == 200 and len(response.context["cl"].result_list) == 100
    counts = [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]
    assert all("LIMIT" in sql.upper() for sql in counts), counts


def test_the_jobs_page_stays_cheap(admin_client, django_assert_max_num_queries, million_executions):
    url = reverse("admin:django_apscheduler_djangojob_changelist")

    with django_assert_max_num_queries(9):
        page = admin_client.get(url).content.decode()

    # heartbeat has every odd row, and every fifth of its runs failed
    assert "80% of 20" in page and "100% of 20" in page
