"""The cron trigger reads expressions as crontab(5) and Debian's cron do.

The reference is cronsim (healthchecks.io's cron engine, which mimics Debian
cron). Starts are never inside the second pass of a repeated hour: there
cronsim ignores `fold` and may answer with a time before the start. And
cronsim reads a one-value range with a step ("3-3/3") as "3/3" (3, 6, 9, 12);
crontab(5) and we read it as 3, so the generator does not write those.
"""

import pickle
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from cronsim import CronSim

from crm.scheduler.crontab import CronSyntaxError, CrontabTrigger, parse

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata"]
# Days on which these zones change their clocks in 2026, plus ordinary ones.
STARTS = [
    datetime(2026, 3, 7, 23, 17),
    datetime(2026, 3, 28, 22, 0),
    datetime(2026, 4, 4, 12, 0),
    datetime(2026, 10, 3, 12, 0),
    datetime(2026, 10, 24, 20, 59),
    datetime(2026, 10, 31, 23, 0),
    datetime(2027, 2, 27, 6, 30),
]
DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
MONTH_NAMES = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


def random_field(rng, low, high, names=None):
    def value():
        number = rng.randint(low, high)
        if names and rng.random() < 0.3:
            return names[number - low] if number - low < len(names) else str(number)
        return str(number)

    def item():
        kind = rng.random()
        if kind < 0.35:
            return value()
        if kind < 0.6:
            start = rng.randint(low, high)
            end = rng.randint(start, high)
            # cronsim reads a one-value range with a step, "3-3/3", as "3/3"; cron does not.
            step = f"/{rng.randint(1, 4)}" if rng.random() < 0.3 and end > start else ""
            return f"{start}-{end}{step}"
        if kind < 0.8:
            return f"*/{rng.randint(1, max(1, (high - low) // 2))}"
        return f"{rng.randint(low, high)}/{rng.randint(1, 5)}"

    if rng.random() < 0.35:
        return "*"
    return ",".join(item() for _ in range(rng.choice([1, 1, 1, 2, 3])))


def random_expression(rng):
    minute = rng.choice(["0", "30", str(rng.randint(0, 59)), random_field(rng, 0, 59)])
    hour = rng.choice(["*", "2", str(rng.randint(0, 23)), random_field(rng, 0, 23)])
    day = rng.choice(["*", "*", random_field(rng, 1, 28), str(rng.randint(1, 31))])
    month = rng.choice(["*", "*", random_field(rng, 1, 12, MONTH_NAMES)])
    weekday = rng.choice(["*", "*", random_field(rng, 0, 7, [*DAY_NAMES, "sun"])])
    return f"{minute} {hour} {day} {month} {weekday}"


def in_second_pass_of_repeated_hour(moment):
    return moment.fold == 1 and moment.utcoffset() != moment.replace(fold=0).utcoffset()


def expected(expression, zone, start, count):
    return [
        fire.astimezone(UTC)
        for _, fire in zip(range(count), CronSim(expression, start), strict=False)
    ]


def ours(expression, zone, start, count):
    return CrontabTrigger(expression, zone).next_fire_times(count, start)


def test_it_agrees_with_cronsim_on_thousands_of_generated_expressions():
    rng = random.Random(20261122)
    compared = 0
    for _ in range(2000):
        expression = random_expression(rng)
        try:
            parse(expression)
        except CronSyntaxError:
            continue
        zone = ZoneInfo(rng.choice(ZONES))
        start = rng.choice(STARTS).replace(tzinfo=zone)
        if in_second_pass_of_repeated_hour(start):
            continue
        assert ours(expression, zone, start, 12) == expected(expression, zone, start, 12), (
            expression,
            zone,
            start,
        )
        compared += 1
    assert compared > 1500


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize(
    "expression",
    ["30 2 * * *", "0,30 2 * * *", "*/15 * * * *", "30 * * * *", "0 */2 * * *", "15 1-3 * * *"],
)
def test_it_agrees_with_cronsim_across_every_dst_change_of_the_year(zone, expression):
    zone = ZoneInfo(zone)
    start = datetime(2026, 1, 1, tzinfo=zone)
    count = 800 if expression.startswith(("30 2", "0,30", "15 1")) else 3000
    assert ours(expression, zone, start, count) == expected(expression, zone, start, count)


def berlin(*args, fold=0):
    return datetime(*args, tzinfo=ZoneInfo("Europe/Berlin"), fold=fold)


def local_fires(expression, zone, start, end):
    trigger = CrontabTrigger(expression, zone)
    fires, moment = [], start
    while (moment := trigger.next_after(moment)) < end:
        fires.append(moment.astimezone(ZoneInfo(zone)))
    return fires


def test_a_daily_job_runs_once_on_the_autumn_change_day_where_apscheduler_runs_it_twice():
    start, end = berlin(2026, 10, 24, 12), berlin(2026, 10, 26, 12)

    fires = local_fires("30 2 * * *", "Europe/Berlin", start, end)
    assert fires == [berlin(2026, 10, 25, 2, 30), berlin(2026, 10, 26, 2, 30)]

    apscheduler = CronTrigger.from_crontab("30 2 * * *", timezone=ZoneInfo("Europe/Berlin"))
    theirs, now = set(), start
    for _ in range(4):
        fire = apscheduler.get_next_fire_time(None, now).astimezone(UTC)
        theirs.add(fire)
        now = fire + timedelta(minutes=1)
    assert (
        len({fire for fire in theirs if fire.astimezone(ZoneInfo("Europe/Berlin")).day == 25}) == 2
    )


def test_a_fixed_time_job_in_the_skipped_hour_runs_right_after_the_change():
    start, end = berlin(2026, 3, 28, 12), berlin(2026, 3, 30, 12)

    assert local_fires("30 2 * * *", "Europe/Berlin", start, end) == [
        berlin(2026, 3, 29, 3, 0),
        berlin(2026, 3, 30, 2, 30),
    ]


def test_wildcard_jobs_follow_the_wall_clock_through_changes():
    spring = local_fires(
        "30 * * * *", "Europe/Berlin", berlin(2026, 3, 29, 0), berlin(2026, 3, 29, 5)
    )
    assert [fire.hour for fire in spring] == [0, 1, 3, 4]

    autumn = local_fires(
        "30 * * * *", "Europe/Berlin", berlin(2026, 10, 25, 0), berlin(2026, 10, 25, 5)
    )
    assert [(fire.hour, fire.utcoffset()) for fire in autumn] == [
        (0, timedelta(hours=2)),
        (1, timedelta(hours=2)),
        (2, timedelta(hours=2)),
        (2, timedelta(hours=1)),
        (3, timedelta(hours=1)),
        (4, timedelta(hours=1)),
    ]


@pytest.mark.parametrize(
    ("zone", "change_day"),
    [("America/New_York", datetime(2026, 11, 1)), ("Australia/Sydney", datetime(2026, 4, 5))],
)
def test_a_daily_job_runs_once_on_autumn_change_days_elsewhere(zone, change_day):
    start = change_day.replace(tzinfo=ZoneInfo(zone)) - timedelta(hours=12)
    fires = local_fires("30 1 * * *", zone, start, start + timedelta(hours=36))
    assert len(fires) == 1 and fires[0].hour == 1 and fires[0].minute == 30


def test_sunday_is_0_and_7():
    start = datetime(2026, 11, 22, 12, tzinfo=UTC)  # a Sunday
    assert ours("0 0 * * 0", "UTC", start, 5) == ours("0 0 * * 7", "UTC", start, 5)
    assert all(fire.weekday() == 6 for fire in ours("0 0 * * 7", "UTC", start, 5))


def test_1_to_5_is_monday_to_friday_unlike_apschedulers_cron_trigger():
    start = datetime(2026, 11, 22, 12, tzinfo=UTC)
    assert {fire.strftime("%a") for fire in ours("0 9 * * 1-5", "UTC", start, 10)} == {
        "Mon",
        "Tue",
        "Wed",
        "Thu",
        "Fri",
    }
    theirs = CronTrigger(day_of_week="1-5", hour=9, minute=0, timezone=UTC)
    assert theirs.get_next_fire_time(None, start).strftime("%a") == "Tue"


def test_day_of_month_and_day_of_week_both_restricted_means_either():
    fires = ours("0 0 13 * 5", "UTC", datetime(2026, 11, 1, tzinfo=UTC), 8)
    assert all(fire.day == 13 or fire.weekday() == 4 for fire in fires)
    assert any(fire.day == 13 and fire.weekday() != 4 for fire in fires)
    assert any(fire.weekday() == 4 and fire.day != 13 for fire in fires)


def test_a_leap_day_job_is_found_quickly():
    trigger = CrontabTrigger("0 0 29 2 *", "UTC")
    assert trigger.next_after(datetime(2026, 3, 1, tzinfo=UTC)) == datetime(2028, 2, 29, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 2 * *", ["4 field(s)", "5 fields", "0 2 * * *"]),
        ("0 0 2 * * *", ["6 field(s)"]),
        ("60 2 * * *", ["minute field '60'", "out of range 0-59"]),
        ("0 24 * * *", ["hour field", "0-23"]),
        ("0 0 0 * *", ["day-of-month field", "1-31"]),
        ("0 0 * 13 *", ["month field", "1-12"]),
        ("0 0 * * 8", ["day-of-week field '8'", "0-7"]),
        ("0 0 * * fun", ["day-of-week field", "'fun' is not a number", "mon"]),
        ("5-1 * * * *", ["minute field", "backwards"]),
        ("*/0 * * * *", ["minute field", "step"]),
        ("1,,2 * * * *", ["empty list item"]),
        ("0 0 30 2 *", ["never"]),
        ("0 0 31 4,6 *", ["never"]),
        ("@reboot", ["1 field(s)"]),
    ],
)
def test_malformed_expressions_are_explained(expression, words):
    with pytest.raises(CronSyntaxError) as error:
        parse(expression)
    for word in words:
        assert word in str(error.value)


def test_names_macros_and_spacing():
    assert parse("0 9 * JAN-mar Mon-FRI").months == frozenset({1, 2, 3})
    assert parse("@daily").fields == ("0", "0", "*", "*", "*")
    assert CrontabTrigger(" 0  2 * * * ", "UTC") == CrontabTrigger("0 2 * * *", "UTC")
    assert CrontabTrigger("0 2 * * *", "UTC") != CrontabTrigger("0 2 * * *", "Europe/Warsaw")


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 2 * * *", "At 02:00 every day"),
        ("0 3 * * 0", "At 03:00 on Sunday"),
        ("*/15 * * * *", "Every 15 minutes"),
        ("5 * * * *", "At minute 5 past every hour"),
        ("0 9 * * mon,wed,fri", "At 09:00 on Monday, Wednesday and Friday"),
        ("0 8 1 * *", "At 08:00 on day 1 of the month"),
        ("0 0 13 * 5", "At 00:00 on day 13 of the month or on Friday"),
        ("0 0 1 1 *", "Cron: 0 0 1 1 *"),
    ],
)
def test_it_describes_common_shapes_in_words(expression, words):
    assert CrontabTrigger(expression, "UTC").describe() == words


def test_it_survives_pickling_as_the_job_store_does():
    trigger = CrontabTrigger("30 2 * * 1-5", "Europe/Warsaw")
    copy = pickle.loads(pickle.dumps(trigger))
    assert copy == trigger and str(copy) == "cron[30 2 * * 1-5, Europe/Warsaw]"


def test_apscheduler_drives_it():
    scheduler = BackgroundScheduler(jobstores={"default": MemoryJobStore()}, timezone=UTC)
    scheduler.start(paused=True)
    try:
        job = scheduler.add_job(print, trigger=CrontabTrigger("0 2 * * *", "Europe/Warsaw"))
        local = job.next_run_time.astimezone(ZoneInfo("Europe/Warsaw"))
        assert (local.hour, local.minute) == (2, 0)
        assert job.next_run_time > datetime.now(UTC)
    finally:
        scheduler.shutdown(wait=False)
