"""GET /metrics: the scheduler's state in the Prometheus text format, read from
the database, for token holders and staff."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import OperationalError, connection
from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from crm.scheduler import control, history, metrics, tally, text_format
from crm.scheduler.commands import submit
from crm.scheduler.lease import Lease
from crm.scheduler.pruning import prune_executions
from crm.scheduler.runner import LEASE_NAME
from tests import factories

pytestmark = pytest.mark.django_db
URL = "/metrics"
TOKEN = "metrics-token-" + "x" * 32
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def heartbeat(settings):
    settings.SCHEDULER_JOBS = [
        {
            "id": "heartbeat",
            "func": "tests.support.e2e_jobs.record_fire",
            "interval_seconds": 60,
            "misfire_grace_seconds": 30,
        }
    ]
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_DURATION_BUCKETS = ["1", "10"]
    settings.METRICS_LATENESS_BUCKETS = ["0.1", "1"]
    settings.METRICS_WINDOW_MINUTES = 60
    with time_machine.travel(NOW, tick=False):
        control.sync("tests")


def scrape(client, at=NOW + timedelta(seconds=10), **headers):
    headers.setdefault("Authorization", f"Bearer {TOKEN}")
    with time_machine.travel(at, tick=False):
        response = client.get(URL, headers=headers)
    assert response.status_code == 200, response.content
    return samples(response.content.decode())


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of every sample of a scrape."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped, name, **labels):
    return scraped.get((name, tuple(sorted(labels.items()))))


def run(status=history.SUCCEEDED, *, fired, late=0.0, duration=2.0, **detail):
    return factories.job_run(
        "heartbeat",
        status=status,
        run_time=fired,
        duration=duration,
        finished=None
        if duration is None
        else (fired + timedelta(seconds=late + duration)).timestamp(),
        detail={"started_at": fired + timedelta(seconds=late), **detail},
    )


def test_runs_are_counted_by_outcome(client):
    run(fired=NOW - timedelta(minutes=3))
    run(fired=NOW - timedelta(minutes=2))
    run(history.FAILED, fired=NOW - timedelta(minutes=1))
    run(history.RUNNING, fired=NOW, duration=None)

    scraped = scrape(client)

    assert value(scraped, "crm_job_runs_total", job="heartbeat", outcome="succeeded") == 2
    assert value(scraped, "crm_job_runs_total", job="heartbeat", outcome="failed") == 1
    assert value(scraped, "crm_job_runs_total", job="heartbeat", outcome="missed") is None
    assert (
        value(scraped, "crm_job_runs_total", job="auto_close_resolved_tickets", outcome="failed")
        == 0
    )
    assert value(scraped, "crm_job_failing", job="heartbeat") == 1
    assert value(scraped, "crm_job_paused", job="heartbeat") == 0
    assert value(scraped, "crm_job_late", job="heartbeat") == 0


def test_last_success_and_next_fire_are_unix_times(client):
    run(fired=NOW - timedelta(minutes=2), late=0.5, duration=3)

    scraped = scrape(client)

    ended = NOW - timedelta(minutes=2) + timedelta(seconds=3.5)
    assert value(
        scraped, "crm_job_last_success_timestamp_seconds", job="heartbeat"
    ) == pytest.approx(ended.timestamp())
    assert value(scraped, "crm_job_next_fire_timestamp_seconds", job="heartbeat") == (
        NOW.timestamp()
    )


def test_duration_and_lateness_histograms_cover_the_window(client):
    run(fired=NOW - timedelta(minutes=90), duration=0.5)  # before the window
    run(fired=NOW - timedelta(minutes=3), late=0.05, duration=0.5)
    run(fired=NOW - timedelta(minutes=2), late=0.5, duration=5)
    run(history.FAILED, fired=NOW - timedelta(minutes=1), late=2, duration=30)
    run(fired=NOW, late=120, duration=0.5, triggered_by="ops (backfill)")  # not scheduled

    scraped = scrape(client)

    def buckets(name):
        return [value(scraped, f"{name}_bucket", job="heartbeat", le=le) for le in BOUNDS]

    BOUNDS = ("1.0", "10.0", "+Inf")
    assert buckets("crm_job_run_duration_seconds") == [2, 3, 4]
    assert value(scraped, "crm_job_run_duration_seconds_gsum", job="heartbeat") == 36
    BOUNDS = ("0.1", "1.0", "+Inf")
    assert buckets("crm_job_fire_lateness_seconds") == [1, 2, 3]
    assert value(scraped, "crm_job_fire_lateness_seconds_gcount", job="heartbeat") == 3


def test_a_paused_job_shows_paused_and_no_next_fire(client):
    control.pause_job("heartbeat", "ops", wait=0)

    scraped = scrape(client)

    assert value(scraped, "crm_job_paused", job="heartbeat") == 1
    assert value(scraped, "crm_job_next_fire_timestamp_seconds", job="heartbeat") is None


def test_a_late_job_shows_late(client):
    assert value(scrape(client, at=NOW + timedelta(seconds=91)), "crm_job_late", job="heartbeat")


def test_the_lease_holder_is_a_label_and_waiting_commands_are_counted(client):
    assert value(scrape(client), "crm_scheduler_lease_held") == 0

    lease = Lease(LEASE_NAME, timedelta(seconds=30))
    assert lease.acquire()
    submit("run", "heartbeat", "ops")
    scraped = scrape(client)

    assert value(scraped, "crm_scheduler_lease_held") == 1
    assert (
        value(
            scraped,
            "crm_scheduler_lease_holder_info",
            host=lease.holder.host,
            pid=str(lease.holder.pid),
        )
        == 1
    )
    assert value(scraped, "crm_scheduler_stalled") == 0
    assert value(scraped, "crm_scheduler_commands_waiting") == 1


def test_a_renewal_that_finds_the_lease_taken_is_a_renewal_failure(client):
    first = Lease(LEASE_NAME, timedelta(seconds=-1))  # expired as soon as taken
    assert first.acquire()
    assert Lease(LEASE_NAME, timedelta(seconds=30)).acquire()

    assert not first.acquire()

    assert value(scrape(client), "crm_scheduler_lease_renewal_failures_total") == 1


def test_a_renewal_the_database_refuses_is_counted_once_it_answers_again(client):
    lease = Lease(LEASE_NAME, timedelta(seconds=30))
    assert lease.acquire()

    def refuse(execute, sql, params, many, context):
        raise OperationalError("server closed the connection unexpectedly")

    with connection.execute_wrapper(refuse), pytest.raises(OperationalError):
        lease.acquire()
    assert lease.acquire()

    assert value(scrape(client), "crm_scheduler_lease_renewal_failures_total") == 1


def test_counts_stay_when_old_history_is_pruned(client):
    for minutes in range(10, 0, -1):
        run(fired=NOW - timedelta(days=10, minutes=minutes))
    run(history.FAILED, fired=NOW - timedelta(minutes=1))
    scrape(client)  # the first scrape marks where counting starts
    counted_at = NOW + timedelta(minutes=6)
    scrape(client, at=counted_at)  # ... and one COUNT_EVERY later they are counted

    with time_machine.travel(counted_at, tick=False):
        assert prune_executions(older_than=NOW - timedelta(days=7)).deleted == 10
    scraped = scrape(client, at=counted_at + timedelta(seconds=1))

    assert value(scraped, "crm_job_runs_total", job="heartbeat", outcome="succeeded") == 10
    assert value(scraped, "crm_job_runs_total", job="heartbeat", outcome="failed") == 1


def test_a_run_still_going_when_counted_is_counted_once_it_ends(client):
    going = run(history.RUNNING, fired=NOW - timedelta(minutes=1), duration=None)
    scrape(client)
    scrape(client, at=NOW + timedelta(minutes=6))  # counts, with the run still going
    going.status = history.SUCCEEDED
    going.save()

    for minutes in (7, 13, 19):  # before and after the next counts
        scraped = scrape(client, at=NOW + timedelta(minutes=minutes))
        assert value(scraped, "crm_job_runs_total", job="heartbeat", outcome="succeeded") == 1


def test_two_counts_at_once_count_each_run_once():
    run(fired=NOW - timedelta(minutes=1))
    with time_machine.travel(NOW, tick=False):
        tally.outcomes()
    mark = tally.RunTallyMark.objects.get()
    with time_machine.travel(NOW + timedelta(minutes=6), tick=False):
        tally.outcomes()  # what a first process counts
        assert not tally.count_runs(mark)  # a second one, which read the mark before

    assert tally.outcomes()[("heartbeat", history.SUCCEEDED)].runs == 1


def test_staff_users_may_read_it(client, django_user_model):
    staff = django_user_model.objects.create_user("ops", is_staff=True)
    client.force_login(staff)

    assert client.get(URL).status_code == 200


@pytest.mark.parametrize(
    "authorization", ["", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"]
)
def test_it_is_403_without_the_token(client, authorization):
    response = client.get(URL, headers={"Authorization": authorization})

    assert response.status_code == 403
    assert response.content == b"wrong or missing bearer token (METRICS_TOKEN)\n"


def test_it_is_403_for_users_who_are_not_staff(client, user):
    client.force_login(user)

    assert client.get(URL).status_code == 403


def test_malformed_buckets_turn_it_off_with_the_settings_name(client, settings):
    settings.METRICS_DURATION_BUCKETS = ["10", "1"]

    response = client.get(URL, headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 503
    assert b"METRICS_DURATION_BUCKETS='10,1'" in response.content
    assert b"manage.py check" in response.content


def test_it_costs_a_few_queries_whatever_the_number_of_runs(client, django_assert_max_num_queries):
    for minutes in range(30):
        run(fired=NOW - timedelta(minutes=minutes))

    scrape(client)
    with django_assert_max_num_queries(10):
        scrape(client)


def test_the_text_is_what_prometheus_client_writes(client):
    """crm.scheduler.text_format against the library's own writer, on a scrape
    with every kind of family: counters, gauges, the holder's info, histograms."""
    run(fired=NOW - timedelta(minutes=3), late=0.05, duration=0.5)
    run(history.FAILED, fired=NOW - timedelta(minutes=1), late=2, duration=30)
    lease = Lease(LEASE_NAME, timedelta(seconds=30))
    assert lease.acquire()
    with time_machine.travel(NOW + timedelta(seconds=10), tick=False):
        families = metrics.SnapshotCollector(metrics.read()).collect()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(AsPrometheusFamilies(families))

    assert text_format.render(families) == generate_latest(registry)
    assert {family.type for family in families} == {"counter", "gauge", "info", "gaugehistogram"}
    assert b'crm_scheduler_lease_holder_info{host="' in text_format.render(families)


class AsPrometheusFamilies:
    """Our families as prometheus_client's own, sample for sample."""

    def __init__(self, families):
        self.families = families

    def collect(self):
        for family in self.families:
            metric = Metric(family.name, family.documentation, family.type)
            for suffix, labels, value in family.samples:
                metric.add_sample(family.name + suffix, dict(labels), value)
            yield metric
