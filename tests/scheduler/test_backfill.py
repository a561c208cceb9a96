"""`scheduler backfill JOB --from T1 --to T2`: the past fires of a range that
never ran are run once each, oldest first, with their own fire time."""

from datetime import UTC, datetime
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django_apscheduler.models import DjangoJobExecution

from crm.scheduler import control, history
from tests.factories import job_run

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SERVED = []


def report(fire_time):
    SERVED.append(fire_time)
    if fire_time == datetime(2026, 11, 28, 2, 0, tzinfo=UTC):
        raise RuntimeError("the report for the 28th broke")
    return fire_time.date().isoformat()


def digest():
    SERVED.append("digest")


@pytest.fixture(autouse=True)
def declared(settings):
    SERVED.clear()
    settings.TIME_ZONE = "UTC"
    settings.SCHEDULER_JOBS = [
        {"id": "report", "func": "tests.scheduler.test_backfill.report", "cron": "0 2 * * *",
         "fire_time_kwarg": "fire_time"},
        {"id": "digest", "func": "tests.scheduler.test_backfill.digest", "cron": "0 2 * * *"},
        {"id": "ticker", "func": "tests.scheduler.test_backfill.report", "interval_seconds": 1,
         "fire_time_kwarg": "fire_time"},
    ]  # fmt: skip
    with time_machine.travel(NOW, tick=False):
        control.sync("tests")


def day(n: int) -> datetime:
    return datetime(2026, 11, n, 2, 0, tzinfo=UTC)


def backfill(*args) -> str:
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("scheduler", "backfill", *args, stdout=out)
    return out.getvalue()


def rows(job_id="report") -> dict[datetime, str]:
    runs = DjangoJobExecution.objects.filter(job_id=job_id).order_by("run_time")
    return dict(runs.values_list("run_time", "status"))


def test_a_dry_run_lists_the_fires_without_a_run_and_runs_nothing():
    job_run("report", run_time=day(26), detail={})
    job_run("report", run_time=day(27), status=history.MISSED)

    said = backfill("report", "--from", "2026-11-25", "--to", "2026-11-27T23:00", "--dry-run")

    assert said.splitlines() == [
        "Would run 2 fires of report from 2026-11-25T00:00:00+00:00 to "
        "2026-11-27T23:00:00+00:00 (1 already run; dry run: nothing run).",
        "  2026-11-25T02:00:00+00:00",
        "  2026-11-27T02:00:00+00:00",
    ]
    assert SERVED == [] and len(rows()) == 2


def test_it_runs_each_fire_once_oldest_first_with_its_own_fire_time():
    job_run("report", run_time=day(26), detail={})
    job_run("report", run_time=day(27), status=history.MISSED)

    said = backfill("report", "--from", "2026-11-25T02:00", "--to", "2026-11-27T02:00")

    assert [day(25), day(27)] == SERVED
    assert rows() == {
        day(25): history.SUCCEEDED,
        day(26): history.SUCCEEDED,
        day(27): history.SUCCEEDED,
    }
    backfilled = DjangoJobExecution.objects.get(job_id="report", run_time=day(25))
    assert backfilled.detail.triggered_by.endswith("(backfill)")
    assert backfilled.detail.result == "2026-11-25"
    assert "Backfilled report from 2026-11-25T02:00:00+00:00 to 2026-11-27T02:00:00+00:00: " \
        "ran 2 fires (1 already run)." in said  # fmt: skip

    SERVED.clear()
    again = backfill("report", "--from", "2026-11-25T02:00", "--to", "2026-11-27T02:00")
    assert SERVED == [] and "ran 0 fires (3 already run)" in again


def test_a_failing_fire_is_recorded_the_rest_still_run_and_the_command_fails():
    with pytest.raises(CommandError) as error:
        backfill("report", "--from", "2026-11-27", "--to", "2026-11-29T02:00")

    assert [day(27), day(28), day(29)] == SERVED
    assert rows() == {
        day(27): history.SUCCEEDED,
        day(28): history.FAILED,
        day(29): history.SUCCEEDED,
    }
    assert "ran 3 fires (0 already run); 1 failed (see the run history)." in str(error.value)


def test_a_job_that_does_not_take_its_fire_time_is_refused_unless_forced():
    with pytest.raises(CommandError, match="digest does not take its fire time"):
        backfill("digest", "--from", "2026-11-27", "--to", "2026-11-29T02:00")
    assert SERVED == []

    backfill("digest", "--from", "2026-11-27", "--to", "2026-11-29T02:00", "--force")

    assert SERVED == ["digest"] * 3


def test_more_than_10000_fires_are_refused_unless_forced():
    with pytest.raises(CommandError, match=r"ticker fires more than 10,000 times .* --force"):
        backfill("ticker", "--from", "2026-11-30", "--to", "2026-11-30T12:00")
    assert SERVED == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--from", "2026-11-01", "--to", "2026-11-02"], "Unknown job 'nope'. Choose"),
        (["report", "--from", "2026-11-03", "--to", "2026-11-02"], "is after --to"),
        (["report", "--from", "2026-11-03", "--to", "2027-01-01"], "is in the future"),
        (["report", "--from", "yesterday", "--to", "2026-11-02"], "'yesterday' is not an ISO"),
        (["report", "--to", "2026-11-02"], "--from"),
    ],
)
def test_bad_input_is_one_line_naming_what_to_fix(args, message):
    with pytest.raises(CommandError) as error:
        backfill(*args)

    assert message in str(error.value)
    assert SERVED == [] and not DjangoJobExecution.objects.exists()
