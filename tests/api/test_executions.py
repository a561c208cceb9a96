"""The run history over the API: newest first, filtered by job, status and
fire time, a page at a time by cursor; one run with its traceback."""

from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from crm.scheduler import history
from crm.scheduler.models import RunAttempt
from tests import factories
from tests.api.conftest import NOW

pytestmark = pytest.mark.django_db
RUNS = "/api/v1/executions/"


def fires(job_id, statuses, start=NOW - timedelta(days=1), every=timedelta(hours=1)):
    return [
        factories.job_run(job_id, status=status, run_time=start + every * index, detail={})
        for index, status in enumerate(statuses)
    ]


def ids(response) -> list[int]:
    return [run["id"] for run in response.json()["results"]]


def test_runs_are_listed_newest_first_in_the_schedulers_shape(viewer):
    older, newer = fires("nightly", [history.SUCCEEDED, history.FAILED])

    page = viewer.get(RUNS).json()

    assert page["next"] is None
    assert [run["id"] for run in page["results"]] == [newer.pk, older.pk]
    assert page["results"][0] == {
        "id": newer.pk,
        "job": "nightly",
        "scheduled": "2026-11-22T13:00:00Z",
        "started": "2026-11-22T13:00:00Z",
        "status": history.FAILED,
        "duration_seconds": None,
        "triggered_by": "schedule",
        "error": None,
        "result": None,
        "attempt": 1,
        "next_attempt_at": None,
    }


def test_runs_are_filtered_by_job_status_and_fire_time(viewer):
    nightly = fires("nightly", [history.SUCCEEDED, history.FAILED, history.SUCCEEDED])
    heartbeat = fires("heartbeat", [history.FAILED, history.SUCCEEDED])

    by_job = viewer.get(RUNS, {"job": "heartbeat"})
    by_status = viewer.get(RUNS, {"status": history.FAILED})
    by_time = viewer.get(
        RUNS,
        {"scheduled_since": "2026-11-22T13:00:00Z", "scheduled_before": "2026-11-22T14:00:00Z"},
    )
    together = viewer.get(RUNS, {"job": "nightly", "status": history.FAILED})

    assert ids(by_job) == [heartbeat[1].pk, heartbeat[0].pk]
    assert ids(by_status) == [nightly[1].pk, heartbeat[0].pk]
    assert ids(by_time) == [heartbeat[1].pk, nightly[1].pk]  # the end is excluded
    assert ids(together) == [nightly[1].pk]


def test_a_time_without_a_zone_is_in_the_sites_time_zone(viewer, settings):
    settings.TIME_ZONE = "Europe/Warsaw"
    [run] = fires("nightly", [history.SUCCEEDED], start=NOW)  # 13:00 in Warsaw

    assert ids(viewer.get(RUNS, {"scheduled_since": "2026-11-23T13:00"})) == [run.pk]
    assert ids(viewer.get(RUNS, {"scheduled_since": "2026-11-23T13:01"})) == []


def test_following_next_shows_every_run_once_even_runs_of_one_fire_time(viewer):
    # Two jobs on one cron line fire at the same instant.
    at_once = NOW - timedelta(hours=1)
    runs = [
        *fires("nightly", [history.SUCCEEDED] * 3),
        factories.job_run("nightly", run_time=at_once),
        factories.job_run("heartbeat", run_time=at_once),
        factories.job_run("auto_close_resolved_tickets", run_time=at_once),
    ]
    newest_first = sorted(runs, key=lambda run: (run.run_time, run.pk), reverse=True)

    seen, pages, url = [], 0, f"{RUNS}?page_size=2"
    while url:
        page = viewer.get(url).json()
        seen += [run["id"] for run in page["results"]]
        url, pages = page["next"], pages + 1

    assert seen == [run.pk for run in newest_first]
    assert pages == 3


def test_next_keeps_the_filters(viewer):
    fires("nightly", [history.FAILED] * 3)
    fires("heartbeat", [history.FAILED] * 3)

    first = viewer.get(RUNS, {"job": "nightly", "page_size": 2}).json()
    query = parse_qs(urlsplit(first["next"]).query)
    second = viewer.get(first["next"]).json()

    assert (query["job"], query["page_size"]) == (["nightly"], ["2"])
    assert {run["job"] for run in first["results"] + second["results"]} == {"nightly"}
    assert len(second["results"]) == 1 and second["next"] is None


def test_a_page_takes_the_same_few_queries_however_many_runs_it_shows(
    viewer, django_assert_max_num_queries
):
    fires("nightly", [history.SUCCEEDED] * 120, every=timedelta(minutes=1))

    with django_assert_max_num_queries(5):  # the token (2), permissions (2), the page
        assert len(viewer.get(RUNS, {"page_size": 100}).json()["results"]) == 100


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"status": "Broken"}, "status", '"Broken" is not a status. Use one of: Executed, '),
        ({"job": "nope"}, "job", "No job 'nope' is stored; GET /api/v1/jobs/ lists the jobs."),
        ({"scheduled_since": "yesterday"}, "scheduled_since", "Datetime has wrong format."),
        ({"scheduled_since": "2026-11-23T10:00Z", "scheduled_before": "2026-11-23T09:00Z"},
         "scheduled_before", "Must be later than scheduled_since."),
        ({"page_size": "0"}, "page_size", "Ensure this value is greater than or equal to 1."),
        ({"page_size": "501"}, "page_size", "Ensure this value is less than or equal to 500."),
        ({"cursor": "not-a-cursor"}, "cursor", "Not a cursor of this list."),
        ({"stauts": "Error!"}, "stauts", "Not a field of this request; it takes job, status, "),
    ],
)  # fmt: skip
def test_a_bad_filter_is_400_naming_the_field(viewer, query, field, message):
    response = viewer.get(RUNS, query)

    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{field}: {message}")
    assert response.json()["errors"][field][0].startswith(message)


def test_one_run_is_read_with_its_traceback_process_and_attempts(viewer):
    run = factories.job_run(
        "nightly",
        status=history.FAILED,
        run_time=NOW,
        duration=Decimal("2.50"),
        exception="ValueError: no printer",
        traceback="Traceback (most recent call last):\n  ...\nValueError: no printer\n",
        detail={"attempt": 2, "host": "web2", "pid": 4242},
    )
    RunAttempt.objects.create(
        execution=run, number=1, status=history.FAILED, started_at=NOW,
        duration=Decimal("1.00"), host="web2", pid=4242, error="ValueError: no printer",
        traceback="Traceback ...",
    )  # fmt: skip

    shown = viewer.get(f"{RUNS}{run.pk}/").json()

    assert shown["traceback"].endswith("ValueError: no printer\n")
    assert (shown["status"], shown["error"], shown["duration_seconds"]) == (
        history.FAILED, "ValueError: no printer", 2.5
    )  # fmt: skip
    assert (shown["host"], shown["pid"], shown["attempt"]) == ("web2", 4242, 2)
    assert shown["attempts"] == [
        {"number": 1, "status": history.FAILED, "started": "2026-11-23T12:00:00Z",
         "duration_seconds": 1.0, "host": "web2", "pid": 4242,
         "error": "ValueError: no printer", "traceback": "Traceback ..."},
    ]  # fmt: skip


def test_a_run_without_details_shows_nulls(viewer):
    run = factories.job_run("nightly", run_time=timezone.now())

    shown = viewer.get(f"{RUNS}{run.pk}/").json()

    assert (shown["triggered_by"], shown["host"], shown["attempts"]) == (None, None, [])


def test_a_run_that_does_not_exist_is_404_saying_runs_are_pruned(viewer):
    response = viewer.get(f"{RUNS}999999/")

    assert response.status_code == 404
    assert "EXECUTION_RETENTION_DAYS" in response.json()["detail"]
