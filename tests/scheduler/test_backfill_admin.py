"""The admin's Backfill page of a job: for users with the run permission, a
plan first (nothing runs), then on confirm one command that the active
scheduler carries out, each fire of the range without a run once, oldest
first, with its own fire time, as triggered by the admin user."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution

from crm.scheduler import backfill, commands, control, history
from crm.scheduler.execution import RunContext
from crm.scheduler.lease import Lease
from crm.scheduler.models import SchedulerCommand
from crm.scheduler.runner import LEASE_NAME
from tests.factories import job_run

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SERVED = []
BROKEN = set()  # fire times whose report fails


def report(fire_time):
    SERVED.append(fire_time)
    if fire_time in BROKEN:
        raise RuntimeError("the report broke")
    return fire_time.date().isoformat()


def digest():
    SERVED.append("digest")


def tick(fire_time):
    pass


@pytest.fixture(autouse=True)
def declared(settings):
    SERVED.clear()
    BROKEN.clear()
    settings.TIME_ZONE = "UTC"
    settings.SCHEDULER_JOBS = [
        {"id": "report", "func": "tests.scheduler.test_backfill_admin.report", "cron": "0 2 * * *",
         "fire_time_kwarg": "fire_time"},
        {"id": "digest", "func": "tests.scheduler.test_backfill_admin.digest", "cron": "0 2 * * *"},
        {"id": "ticker", "func": "tests.scheduler.test_backfill_admin.tick",
         "interval_seconds": 1, "fire_time_kwarg": "fire_time"},
    ]  # fmt: skip
    control.sync("tests")


@pytest.fixture
def operator(django_user_model, client):
    """A staff user who may see the jobs and run them, logged in."""
    user = django_user_model.objects.create_user("olga", password="x", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_djangojob"),
        Permission.objects.get(codename="run_djangojob"),
    )
    client.force_login(user)
    return user


@pytest.fixture
def viewer(django_user_model, client):
    """A staff user who may see the jobs but not run them, logged in."""
    user = django_user_model.objects.create_user("vera", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_djangojob"))
    client.force_login(user)
    return user


def page_of(job_id: str) -> str:
    return reverse("admin:django_apscheduler_djangojob_backfill", args=[job_id])


def job_page(job_id: str) -> str:
    return reverse("admin:django_apscheduler_djangojob_change", args=[job_id])


def day(n: int) -> datetime:
    return datetime(2026, 11, n, 2, 0, tzinfo=UTC)


def submit(client, job_id, start, end, *, force=False, confirm=False, follow=False):
    data = {"start": start, "end": end}
    if force:
        data["force"] = "on"
    if confirm:
        data["confirm"] = "Backfill"
    with time_machine.travel(NOW, tick=False):
        return client.post(page_of(job_id), data, follow=follow)


def messages_of(response) -> list[str]:
    return [message.message for message in response.context["messages"]]


def rows(job_id="report") -> dict[datetime, str]:
    runs = DjangoJobExecution.objects.filter(job_id=job_id).order_by("run_time")
    return dict(runs.values_list("run_time", "status"))


# who may


def test_without_the_run_permission_the_page_is_refused_and_not_linked(client, viewer):
    assert "Backfill…" not in client.get(job_page("report")).content.decode()

    assert client.get(page_of("report")).status_code == 403
    response = submit(client, "report", "2026-11-25", "2026-11-27", confirm=True)

    assert response.status_code == 403
    assert not SchedulerCommand.objects.exists()


def test_with_the_run_permission_the_job_page_links_to_the_form(client, operator):
    job = client.get(job_page("report")).content.decode()
    assert f'href="{page_of("report")}"' in job and "Backfill…" in job

    page = client.get(page_of("report")).content.decode()

    assert "At 02:00 every day, UTC" in page and "Times are in UTC" in page
    assert 'name="start"' in page and 'name="end"' in page and 'name="force"' in page
    assert 'name="confirm"' not in page


# the plan


def test_the_first_submit_shows_the_fires_and_how_many_already_ran_and_writes_nothing(
    client, operator
):
    job_run("report", run_time=day(26), detail={})
    job_run("report", run_time=day(27), status=history.MISSED)

    response = submit(client, "report", "2026-11-25", "2026-11-27T23:00")

    page = response.content.decode()
    assert response.status_code == 200
    assert "2 fires without a run would run, oldest first; 1 fire of the range already ran" in page
    assert page.index("2026-11-25 02:00:00 UTC") < page.index("2026-11-27 02:00:00 UTC")
    assert "2026-11-26 02:00:00 UTC" not in page
    assert 'name="confirm"' in page and 'value="Backfill 2 fires"' in page
    assert SERVED == [] and not SchedulerCommand.objects.exists()
    assert rows() == {day(26): history.SUCCEEDED, day(27): history.MISSED}


def test_a_long_plan_lists_the_first_50_fires_and_says_how_many_more(client, operator):
    page = submit(client, "ticker", "2026-11-30T08:00", "2026-11-30T08:01:59").content.decode()

    assert "120 fires without a run would run" in page
    assert "2026-11-30 08:00:49 UTC" in page and "2026-11-30 08:00:50 UTC" not in page
    assert "and 70 more" in page


def test_a_range_whose_fires_all_ran_offers_nothing_to_confirm(client, operator):
    job_run("report", run_time=day(26), detail={})

    page = submit(client, "report", "2026-11-26", "2026-11-26T23:00").content.decode()

    assert "Nothing to run: every fire of the range has run already (1 fire)." in page
    assert 'name="confirm"' not in page


# refusals


@pytest.mark.parametrize(
    ("job_id", "start", "end", "message"),
    [
        ("report", "2026-11-03", "2026-11-02", "From 2026-11-03T00:00:00+00:00 is after To"),
        ("report", "2026-11-30", "2026-12-24", "is in the future; a backfill runs past fires"),
        ("ticker", "2026-11-30", "2026-11-30T12:00",
         "ticker fires more than 10,000 times from 2026-11-30T00:00:00+00:00 to "
         "2026-11-30T12:00:00+00:00; narrow the range, or tick Force."),
        ("digest", "2026-11-25", "2026-11-27",
         "digest does not take its fire time (no fire_time_kwarg in its declaration)"),
    ],
)  # fmt: skip
def test_a_refusal_is_a_form_error_naming_the_fix(client, operator, job_id, start, end, message):
    for confirm in (False, True):
        response = submit(client, job_id, start, end, confirm=confirm)

        page = response.content.decode()
        assert response.status_code == 200
        assert "Please correct the error below." in page
        assert message in page.replace("&#x27;", "'")
        assert 'name="confirm"' not in page and "Traceback" not in page
    assert SERVED == [] and not SchedulerCommand.objects.exists()


def test_a_time_that_is_not_one_is_a_field_error(client, operator):
    page = submit(client, "report", "yesterday", "2026-11-27").content.decode()

    assert "Enter a valid date/time." in page
    assert not SchedulerCommand.objects.exists()


def test_a_job_that_does_not_take_its_fire_time_is_refused_unless_forced(client, operator):
    refused = submit(client, "digest", "2026-11-25", "2026-11-27T23:00").content.decode()
    assert 'Run it once with the action "Run selected jobs now", or tick Force' in refused.replace(
        "&quot;", '"'
    )

    forced = submit(client, "digest", "2026-11-25", "2026-11-27T23:00", force=True)
    assert "3 fires without a run would run" in forced.content.decode()
    submit(client, "digest", "2026-11-25", "2026-11-27T23:00", force=True, confirm=True)

    command = SchedulerCommand.objects.get()
    assert (command.action, command.job_id, command.force) == ("backfill", "digest", True)
    assert SERVED == []


# confirm


def test_confirm_queues_one_command_and_with_no_scheduler_active_says_it_waits(client, operator):
    job_run("report", run_time=day(26), detail={})

    response = submit(client, "report", "2026-11-25", "2026-11-27T23:00", confirm=True, follow=True)

    assert response.redirect_chain == [(job_page("report"), 302)]
    assert messages_of(response) == [
        "Backfill of report requested: 2 fires from 2026-11-25 00:00:00 UTC to "
        "2026-11-27 23:00:00 UTC (1 of the range already run; no scheduler is active now; "
        "the first to start within 5 minutes runs them)."
    ]
    command = SchedulerCommand.objects.get()
    assert command.action == SchedulerCommand.Action.BACKFILL and command.job_id == "report"
    assert (command.range_start, command.range_end) == (
        datetime(2026, 11, 25, tzinfo=UTC),
        datetime(2026, 11, 27, 23, tzinfo=UTC),
    )
    assert command.force is False and command.requested_by == "admin: olga (backfill)"
    assert command.taken_at is None  # queued: no scheduler is active to take it
    assert SERVED == [] and list(rows()) == [day(26)]


def test_a_time_with_its_own_zone_is_taken_as_given(client, operator):
    submit(client, "report", "2026-11-25T03:00+01:00", "2026-11-26T03:00+01:00", confirm=True)

    command = SchedulerCommand.objects.get()
    assert command.range_start == datetime(2026, 11, 25, 2, tzinfo=UTC)
    assert command.range_end == datetime(2026, 11, 26, 2, tzinfo=UTC)


def test_with_a_scheduler_active_the_message_says_it_runs_them(client, operator):
    # Active elsewhere, and not taking commands now: the page must not wait for it.
    assert Lease(LEASE_NAME, timedelta(seconds=30)).acquire()

    response = submit(client, "report", "2026-11-25", "2026-11-26T23:00", confirm=True, follow=True)

    [message] = messages_of(response)
    assert message.startswith("Backfill of report requested: 2 fires from 2026-11-25")
    assert "the active scheduler runs them one at a time" in message
    assert SchedulerCommand.objects.get().finished_at is None


# carried out by the active scheduler


def past_days(count: int) -> list[datetime]:
    """The last `count` fires of a job at 02:00 UTC every day, before yesterday's end."""
    last = timezone.now().astimezone(UTC).replace(hour=2, minute=0, second=0, microsecond=0)
    last -= timedelta(days=1)
    return [last - timedelta(days=count - 1 - n) for n in range(count)]


def confirm_now(client, job_id, start, end, **options):
    """Confirm a backfill at the real time (the active scheduler runs at it)."""
    data = {"start": start.isoformat(), "end": end.isoformat(), "confirm": "Backfill", **options}
    return client.post(page_of(job_id), data, follow=True)


@pytest.mark.django_db(transaction=True)
def test_the_active_scheduler_runs_each_missing_fire_once_oldest_first_as_the_admin_user(
    active_scheduler, client, operator
):
    fires = past_days(4)
    job_run("report", run_time=fires[1], detail={})
    job_run("report", run_time=fires[2], status=history.MISSED)
    BROKEN.add(fires[3])

    response = confirm_now(client, "report", fires[0], fires[3])

    assert "the active scheduler runs them one at a time" in messages_of(response)[0]
    command = commands.wait_for(SchedulerCommand.objects.get(), timeout=30)
    assert command.finished_at is not None, "the active scheduler did not finish the backfill"
    assert [fires[0], fires[2], fires[3]] == SERVED
    assert rows() == {
        fires[0]: history.SUCCEEDED,
        fires[1]: history.SUCCEEDED,
        fires[2]: history.SUCCEEDED,
        fires[3]: history.FAILED,
    }
    backfilled = DjangoJobExecution.objects.filter(run_time__in=[fires[0], fires[2], fires[3]])
    for execution in backfilled.select_related("detail"):
        assert execution.detail.triggered_by == "admin: olga (backfill)"
        assert execution.detail.scheduler == active_scheduler.lease.holder.token
    assert command.succeeded is False
    assert command.outcome == (
        f"ran 3 fires: 2 succeeded, 1 failed ({fires[3].isoformat()}: RuntimeError: the "
        "report broke); 1 of the range had run already"
    )


@pytest.mark.django_db(transaction=True)
def test_the_active_scheduler_runs_a_forced_backfill_of_a_job_without_its_fire_time(
    active_scheduler, client, operator
):
    fires = past_days(2)

    confirm_now(client, "digest", fires[0], fires[1], force="on")

    command = commands.wait_for(SchedulerCommand.objects.get(), timeout=30)
    assert (command.succeeded, command.outcome) == (True, "ran 2 fires: 2 succeeded")
    assert SERVED == ["digest", "digest"]
    assert list(rows("digest")) == fires


def test_a_backfill_in_a_scheduler_that_may_have_lost_its_lease_stops_and_says_so():
    with time_machine.travel(NOW, tick=False):
        plan = backfill.plan("report", day(25), day(27))
        lost = RunContext(scheduler="token", may_run=lambda: False)
        outcomes = lost.call(backfill.run, plan, "admin: olga (backfill)")

    assert outcomes == [(day(25), backfill.STOPPED)]
    assert SERVED == [] and rows() == {}
    assert backfill.summary(plan, outcomes) == (
        "ran 0 fires; stopped before the fire of 2026-11-25T02:00:00+00:00: the scheduler "
        "stopped or may have lost its lease (backfill the range again for the rest)"
    )
    assert not backfill.all_succeeded(outcomes)
