"""The scheduler's admin pages with a million executions in the history:
still a handful of queries each, no COUNT(*) over the whole table."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.urls import reverse

from benchmarks import data
from crm.scheduler import history
from tests import factories

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]
ROWS = 1_000_000


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
        factories.stored_job(job_id)
    data.insert_executions(ROWS, ["nightly", "heartbeat"], datetime(2026, 1, 1, tzinfo=UTC))


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
