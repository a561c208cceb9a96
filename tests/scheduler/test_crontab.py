"""Tests for crm.scheduler.crontab, the crontab(5) trigger.

The reference is cronsim 2.8 (healthchecks.io's cron engine, written to follow
Debian's cron). In the zones compared here (UTC, Europe/Berlin, America/New_York,
Australia/Sydney, Asia/Kolkata) it applies Debian cron(8)'s daylight saving rules
as we do: a fixed-time job (neither minute nor hour starts with `*`) whose time
is skipped runs at the first minute after the change and runs once (first pass)
in a repeated hour; other jobs follow the wall clock. Where cronsim differs from
cron(8) we follow cron(8), and each case has its own test below:

* A start inside the second pass of a repeated hour: for fixed-time jobs cronsim
  reads the start as a wall-clock time (ignoring `fold`) and can answer times
  before the start. The comparison drops cronsim's answers that are not after it.
* "3-3/2": cronsim reads a one-value range with a step as "3/2" (3, 5, 7, ...);
  crontab(5) reads it as 3. The generator does not write those.
* Zones that change at midnight (America/Santiago, Asia/Beirut) or by half an
  hour (Australia/Lord_Howe), and a repeated hour straddling midnight
  (America/St_Johns until 2011): cronsim answers wall times that do not exist,
  skips times that do, or repeats one time forever.
"""

import contextlib
import pickle
import random
import re
import time
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
import time_machine
from apscheduler.job import Job
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from cronsim import CronSim

from crm.scheduler.crontab import CronSyntaxError, CrontabTrigger, parse, quoted

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata"]
# Instants (UTC) at which each zone changes its clocks in 2026; zones without
# daylight saving borrow other zones' dates.
CHANGES = {
    "UTC": ["2026-03-29T01:00", "2026-10-25T01:00"],
    "Europe/Berlin": ["2026-03-29T01:00", "2026-10-25T01:00"],
    "America/New_York": ["2026-03-08T07:00", "2026-11-01T06:00"],
    "Australia/Sydney": ["2026-04-04T16:00", "2026-10-03T16:00"],
    "Asia/Kolkata": ["2026-04-04T16:00", "2026-10-03T16:00"],
}
DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
MONTH_NAMES = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


def random_field(rng, low, high, names=()):
    def value(number):
        if number - low < len(names) and rng.random() < 0.4:
            return rng.choice([str.lower, str.upper, str.title])(names[number - low])
        return str(number)

    def item():
        start = rng.randint(low, high)
        end = rng.randint(start, high)
        step = rng.randint(1, max(1, (high - low) // 3))
        shape = rng.choice(["value", "value", "range", "range/step", "*/step", "value/step"])
        if shape == "value":
            return value(start)
        if shape == "range" or end == start:  # cronsim misreads "3-3/2"
            return f"{value(start)}-{value(end)}"
        return {
            "range/step": f"{value(start)}-{value(end)}/{step}",
            "*/step": f"*/{step}",
            "value/step": f"{value(start)}/{step}",
        }[shape]

    return ",".join(item() for _ in range(rng.choice([1, 1, 1, 2, 3])))


def random_expression(rng):
    minute = rng.choice(["0", "30", "*", random_field(rng, 0, 59), random_field(rng, 0, 59)])
    hour = rng.choice(["*", "2", "1-3", random_field(rng, 0, 23), random_field(rng, 0, 23)])
    day = rng.choice(["*", "*", random_field(rng, 1, 31)])
    month = rng.choice(["*", "*", random_field(rng, 1, 12, MONTH_NAMES)])
    weekday = rng.choice(["*", "*", "0", "7", random_field(rng, 0, 7, DAY_NAMES)])
    return f"{minute} {hour} {day} {month} {weekday}"


def random_start(rng, zone):
    if rng.random() < 0.5:
        moment = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=rng.uniform(0, 730))
    else:
        change = datetime.fromisoformat(rng.choice(CHANGES[zone])).replace(tzinfo=UTC)
        moment = change + timedelta(hours=rng.uniform(-30, 30))
    if rng.random() < 0.25:
        moment = moment.replace(second=0, microsecond=0)
    return moment.astimezone(ZoneInfo(zone))


def cronsim_fires(expression, start, count):
    after = start.astimezone(UTC)
    later = (fire for fire in CronSim(expression, start) if fire.astimezone(UTC) > after)
    return [fire.astimezone(UTC) for fire in islice(later, count)]


def our_fires(expression, start, count):
    trigger = CrontabTrigger(expression, start.tzinfo)
    return [fire.astimezone(UTC) for fire in trigger.next_fire_times(count, start)]


@pytest.mark.parametrize("zone", ZONES)
def test_it_agrees_with_cronsim_on_generated_expressions(zone):
    rng = random.Random(f"crontab-{zone}")
    compared = 0
    for _ in range(400):
        expression = random_expression(rng)
        try:
            parse(expression)
        except CronSyntaxError:
            continue  # e.g. "0 0 31 feb *"; the syntax tests cover these
        for start in (random_start(rng, zone), random_start(rng, zone)):
            assert our_fires(expression, start, 20) == cronsim_fires(expression, start, 20), (
                expression,
                start,
            )
        compared += 1
    assert compared > 380


@pytest.mark.parametrize(
    "expression",
    ["30 2 * * *", "0,30 1-3 * * *", "*/15 * * * *", "30 * * * *", "*/20 2 * * *", "0 * * * *"],
)
@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Sydney"])
def test_it_agrees_with_cronsim_minute_by_minute_across_each_change(zone, expression):
    for change in CHANGES[zone]:
        for minutes_before in range(0, 6 * 60, 7):
            start = datetime.fromisoformat(change).replace(tzinfo=UTC)
            start = (start - timedelta(minutes=minutes_before)).astimezone(ZoneInfo(zone))
            assert our_fires(expression, start, 6) == cronsim_fires(expression, start, 6), start


def fires_between(expression, zone, start, end):
    """Fire times in [start, end), both local wall times of `zone`, as ISO text."""
    zone = ZoneInfo(zone)
    start, end = datetime.fromisoformat(start), datetime.fromisoformat(end)
    start, end = start.replace(tzinfo=zone), end.replace(tzinfo=zone).astimezone(UTC)
    trigger = CrontabTrigger(expression, zone)
    fires, fire = [], trigger.get_next_fire_time(None, start)
    while fire.astimezone(UTC) < end:
        fires.append(fire.isoformat(timespec="minutes"))
        fire = trigger.get_next_fire_time(fire, fire)
    return fires


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        ("Europe/Berlin", "2026-03-29", "2026-03-29T03:00+02:00"),  # 02:00 -> 03:00
        ("Europe/Berlin", "2026-10-25", "2026-10-25T02:30+02:00"),  # 03:00 -> 02:00
        ("America/New_York", "2026-03-08", "2026-03-08T03:00-04:00"),  # 02:00 -> 03:00
        ("America/New_York", "2026-11-01", "2026-11-01T02:30-05:00"),  # 02:00 -> 01:00
        ("Australia/Sydney", "2026-04-05", "2026-04-05T02:30+11:00"),  # 03:00 -> 02:00
        ("Australia/Sydney", "2026-10-04", "2026-10-04T03:00+11:00"),  # 02:00 -> 03:00
    ],
)
def test_it_runs_a_daily_0230_job_once_on_each_change_day(zone, day, expected):
    next_day = (datetime.fromisoformat(day) + timedelta(days=1)).date().isoformat()
    assert fires_between("30 2 * * *", zone, day, next_day) == [expected]


def test_it_runs_a_fixed_time_job_in_the_repeated_hour_in_its_first_pass_only():
    fires = fires_between("30 1 * * *", "America/New_York", "2026-11-01", "2026-11-02")
    assert fires == ["2026-11-01T01:30-04:00"]


def test_it_runs_fixed_times_skipped_by_the_change_once_right_after_it():
    day, next_day = "2026-03-29", "2026-03-30"
    assert fires_between("0,30 2 * * *", "Europe/Berlin", day, next_day) == [
        "2026-03-29T03:00+02:00"
    ]
    assert fires_between("0,30 2,3 * * *", "Europe/Berlin", day, next_day) == [
        "2026-03-29T03:00+02:00",
        "2026-03-29T03:30+02:00",
    ]


def test_it_runs_wildcard_jobs_on_the_wall_clock_through_a_skipped_hour():
    start, end = "2026-03-29T01:00", "2026-03-29T03:31"
    assert fires_between("*/15 * * * *", "Europe/Berlin", start, end) == [
        "2026-03-29T01:00+01:00",
        "2026-03-29T01:15+01:00",
        "2026-03-29T01:30+01:00",
        "2026-03-29T01:45+01:00",
        "2026-03-29T03:00+02:00",
        "2026-03-29T03:15+02:00",
        "2026-03-29T03:30+02:00",
    ]
    assert fires_between("30 * * * *", "Europe/Berlin", start, "2026-03-29T05:00") == [
        "2026-03-29T01:30+01:00",
        "2026-03-29T03:30+02:00",
        "2026-03-29T04:30+02:00",
    ]


def test_it_runs_wildcard_jobs_in_both_passes_of_a_repeated_hour():
    start, end = "2026-10-25T01:30", "2026-10-25T03:01"
    assert fires_between("*/15 * * * *", "Europe/Berlin", start, end) == [
        "2026-10-25T01:30+02:00",
        "2026-10-25T01:45+02:00",
        "2026-10-25T02:00+02:00",
        "2026-10-25T02:15+02:00",
        "2026-10-25T02:30+02:00",
        "2026-10-25T02:45+02:00",
        "2026-10-25T02:00+01:00",
        "2026-10-25T02:15+01:00",
        "2026-10-25T02:30+01:00",
        "2026-10-25T02:45+01:00",
        "2026-10-25T03:00+01:00",
    ]
    assert fires_between(
        "30 * * * *", "Australia/Sydney", "2026-04-05T01:00", "2026-04-05T04:00"
    ) == [
        "2026-04-05T01:30+11:00",
        "2026-04-05T02:30+11:00",
        "2026-04-05T02:30+10:00",
        "2026-04-05T03:30+10:00",
    ]


def test_it_runs_0230_once_where_apschedulers_cron_trigger_runs_it_twice():
    berlin = ZoneInfo("Europe/Berlin")
    theirs = CronTrigger.from_crontab("30 2 * * *", timezone=berlin)
    ours = CrontabTrigger("30 2 * * *", berlin)
    start = datetime(2026, 10, 24, 12, tzinfo=berlin)
    for trigger, times_on_the_25th in [(theirs, 2), (ours, 1)]:
        fires, fire = [], trigger.get_next_fire_time(None, start)
        for _ in range(4):
            fires.append(fire.astimezone(UTC))
            fire = trigger.get_next_fire_time(fire, fire)
        days = [fire.astimezone(berlin).day for fire in fires]
        assert days.count(25) == times_on_the_25th, (trigger, fires)


def test_it_returns_fire_times_in_its_zone_with_the_fold_set():
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 10, 25, 2, 45, tzinfo=berlin)  # first pass
    fire = CrontabTrigger("30 * * * *", berlin).next_after(start)
    assert fire.tzinfo is berlin
    assert (fire.hour, fire.minute, fire.fold, fire.utcoffset()) == (2, 30, 1, timedelta(hours=1))


def test_it_never_answers_before_a_start_in_the_second_pass_of_a_repeated_hour():
    # cronsim answers 02:50+02:00 here for the fixed-time job: 55 minutes before the start.
    start = datetime(2026, 10, 25, 2, 45, tzinfo=ZoneInfo("Europe/Berlin"), fold=1)
    fixed = CrontabTrigger("50 2 * * *", "Europe/Berlin").next_after(start)
    wildcard = CrontabTrigger("50 * * * *", "Europe/Berlin").next_after(start)
    assert fixed.isoformat() == "2026-10-26T02:50:00+01:00"
    assert wildcard.isoformat() == "2026-10-25T02:50:00+01:00"


def test_it_reads_a_one_value_range_with_a_step_as_that_value():
    assert parse("3-3/2 * * * *").minutes == (3,)  # cronsim: 3, 5, 7, ...


@pytest.mark.parametrize(
    ("expression", "zone", "start", "expected"),
    [
        # 2026-09-06 has no 00:00-00:59; cronsim skips this Sunday entirely.
        ("* 1 * * 7", "America/Santiago", "2026-09-05T22:00", "2026-09-06T01:00-03:00"),
        # 2026-03-29 has no 00:00-00:59: a wildcard job runs at none of them (cronsim: 00:00).
        ("0 */6 * * *", "Asia/Beirut", "2026-03-28T22:00", "2026-03-29T06:00+03:00"),
        ("30 0 * * *", "Asia/Beirut", "2026-03-28T22:00", "2026-03-29T01:00+03:00"),
        # Clocks go forward half an hour at 02:00; cronsim answers 00:30.
        ("* 0 * * *", "Australia/Lord_Howe", "2026-10-04T02:58", "2026-10-05T00:00+11:00"),
    ],
)
def test_it_handles_changes_at_midnight_and_by_half_an_hour(expression, zone, start, expected):
    start = datetime.fromisoformat(start).replace(tzinfo=ZoneInfo(zone))
    fire = CrontabTrigger(expression, zone).next_after(start)
    assert fire.isoformat(timespec="minutes") == expected


def test_it_handles_a_repeated_hour_that_straddles_midnight():
    # 2010-11-07 00:01 NDT (-02:30) became 2010-11-06 23:01 NST (-03:30); cronsim loops.
    start, end = "2010-11-06T22:01", "2010-11-07T00:31"
    assert fires_between("*/30 * * * *", "America/St_Johns", start, end) == [
        "2010-11-06T22:30-02:30",
        "2010-11-06T23:00-02:30",
        "2010-11-06T23:30-02:30",
        "2010-11-07T00:00-02:30",
        "2010-11-06T23:30-03:30",
        "2010-11-07T00:00-03:30",
        "2010-11-07T00:30-03:30",
    ]
    assert fires_between("30 23,0 * * *", "America/St_Johns", start, end) == [
        "2010-11-06T23:30-02:30",
        "2010-11-07T00:30-03:30",
    ]


def fire_dates(expression, start="2026-12-01", count=10):
    start = datetime.fromisoformat(start).replace(tzinfo=ZoneInfo("UTC"))
    return [fire.date().isoformat() for fire in our_fires(expression, start, count)]


def test_it_reads_sunday_as_0_and_as_7():
    assert fire_dates("0 0 * * 0", count=3) == ["2026-12-06", "2026-12-13", "2026-12-20"]
    assert fire_dates("0 0 * * 7", count=3) == fire_dates("0 0 * * sun", count=3)
    assert fire_dates("0 0 * * 7", count=3) == fire_dates("0 0 * * 0", count=3)


def test_it_reads_1_to_5_as_monday_to_friday_unlike_apschedulers_cron_trigger():
    start = datetime(2026, 11, 29, tzinfo=UTC)  # a Sunday
    ours = CrontabTrigger("0 0 * * 1-5", "UTC").next_fire_times(7, start)
    assert sorted({fire.strftime("%a") for fire in ours}) == ["Fri", "Mon", "Thu", "Tue", "Wed"]
    theirs = CronTrigger(day_of_week="1-5", hour=0, minute=0, timezone=UTC)
    fire, days = start, set()
    for _ in range(7):
        fire = theirs.get_next_fire_time(fire, fire)
        days.add(fire.strftime("%a"))
    assert sorted(days) == ["Fri", "Sat", "Thu", "Tue", "Wed"]


def test_it_fires_on_the_13th_and_on_every_friday_when_both_day_fields_are_restricted():
    assert fire_dates("0 0 13 * 5", count=8) == [
        "2026-12-04",
        "2026-12-11",
        "2026-12-13",  # a Sunday
        "2026-12-18",
        "2026-12-25",
        "2027-01-01",
        "2027-01-08",
        "2027-01-13",  # a Wednesday
    ]


def test_it_needs_both_day_fields_when_one_starts_with_a_star():
    # "*/2" restricts the weekdays, but a field starting with "*" means AND (Vixie cron).
    assert fire_dates("0 0 13 * */2", count=3) == ["2026-12-13", "2027-02-13", "2027-03-13"]
    assert fire_dates("0 0 */10 * 5", count=3) == ["2026-12-11", "2027-01-01", "2027-05-21"]


def test_it_reads_names_in_any_case_steps_and_macros():
    assert parse("0 9 * JAN-mar/2 Mon-FRI").months == frozenset({1, 3})
    assert parse("5/20 * * * *").minutes == (5, 25, 45)  # "a/n" is "a-59/n"
    assert parse("0 0 * * 1/2").weekdays == frozenset({1, 3, 5, 0})  # ... and 7 is Sunday
    for macro, expansion in [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@HOURLY", "0 * * * *"),
    ]:
        assert fire_dates(macro, count=3) == fire_dates(expansion, count=3)


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 2 * *", ["has 4 field(s)", "5 fields: minute hour day-of-month month day-of-week"]),
        ("0 0 2 * * *", ["has 6 field(s)", "no seconds field", '"0 2 * * *"']),
        ("", ["has 0 field(s)", "5 fields"]),
        ("60 * * * *", ["minute field '60': 60 is out of range 0-59"]),
        ("0 24 * * *", ["hour field '24': 24 is out of range 0-23"]),
        ("0 0 0 * *", ["day-of-month field '0': 0 is out of range 1-31"]),
        ("0 0 32 * *", ["day-of-month field '32'", "1-31"]),
        ("0 0 * 13 *", ["month field '13': 13 is out of range 1-12"]),
        ("0 0 * * 8", ["day-of-week field '8': 8 is out of range 0-7"]),
        ("5-1 * * * *", ["minute field '5-1'", "backwards"]),
        ("0 0 * * fri-mon", ["day-of-week field 'fri-mon'", "backwards"]),
        ("*/0 * * * *", ["minute field '*/0'", "step '0'", "greater than 0"]),
        ("0 */-2 * * *", ["hour field '*/-2'", "step '-2'"]),
        ("0 -1 * * *", ["hour field '-1': a number is missing"]),
        ("0 0 1-/2 * *", ["day-of-month field '1-/2'"]),
        ("1,,2 * * * *", ["minute field '1,,2'", "empty list item"]),
        ("0 0 1, * *", ["day-of-month field '1,'", "empty list item"]),
        ("0 0 * jab *", ["month field 'jab'", "'jab' is not a number or a name (jan,"]),
        ("0 0 * mon *", ["month field 'mon'", "not a number"]),
        ("0 0 * * fun", ["day-of-week field 'fun'", "(sun, mon,"]),
        ("0 0 * * monday", ["day-of-week field 'monday'"]),
        ("0 0 L * *", ["day-of-month field 'L'"]),
        ("0 0 * * 5L", ["day-of-week field '5L'"]),
        ("0 0 * * 5#2", ["day-of-week field '5#2'"]),
        ("0 0 \u00b2 * *", ["day-of-month field '\u00b2'", "not a number"]),
        ("x 0 * * *", ["minute field 'x'"]),
        ("@reboot", ["not a supported macro", "@daily"]),
        ("0 0 30 2 *", ["day-of-month field '30' never occurs in month field '2'", "never run"]),
        ("0 0 31 4,6 *", ["day-of-month field '31' never occurs in month field '4,6'"]),
        ("0 0 30,31 feb */2", ["never occurs"]),
    ],
)
def test_it_explains_what_is_wrong_with_a_malformed_expression(expression, words):
    with pytest.raises(CronSyntaxError) as error:
        parse(expression)
    assert isinstance(error.value, ValueError)
    for word in words:
        assert word in str(error.value)


def test_it_accepts_an_impossible_date_when_the_weekday_can_still_match():
    assert fire_dates("0 0 30 2 mon", count=3) == ["2027-02-01", "2027-02-08", "2027-02-15"]


def test_it_raises_only_cron_syntax_errors_on_garbage():
    rng = random.Random(5)
    alphabet = "0123456789*/-,@ LW#?abcjanMONsun\u00b2\u0663\t"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        with contextlib.suppress(CronSyntaxError):
            parse(text)


@pytest.mark.parametrize(
    ("expression", "field"),
    [
        ("1" * 5000 + " * * * *", "minute"),
        ("0 " + "2" * 5000 + " * * *", "hour"),
        ("0 0 1-" + "3" * 5000 + " * *", "day-of-month"),
        ("0 0 * " + "1" * 4400 + ",2 *", "month"),
        ("*/" + "9" * 5000 + " * * * *", "minute"),
        ("0 0 * * 1-5/" + "1" * 5000, "day-of-week"),
        ("00001 * * * *", "minute"),
    ],
    ids=["minute", "hour", "range-end", "list-item", "step", "range-step", "leading-zeros"],
)
def test_it_refuses_numbers_of_more_than_4_digits_as_malformed(expression, field):
    # int() refuses more than 4300 digits with a plain ValueError.
    with pytest.raises(CronSyntaxError) as error:
        parse(expression)

    assert str(error.value).startswith(f"{field} field '")
    assert re.search(r"': has a number of [0-9]+ digits; use at most 4$", str(error.value))


def test_it_reads_numbers_of_up_to_4_digits_with_leading_zeros():
    expression = parse("0059 0023 0031 0012 0007")

    assert (expression.minutes, expression.hours) == ((59,), (23,))
    assert (expression.days, expression.months, expression.weekdays) == ({31}, {12}, {0})


def test_its_errors_quote_at_most_80_characters_of_the_expression():
    field = "1,2," * 1000 + "x"
    with pytest.raises(CronSyntaxError) as error:
        parse(f"{field} * * * *")

    message = str(error.value)
    quotes = message.split("'")[1::2]
    assert quotes == [field[:79] + "\u2026", "x"]
    assert message == f"minute field '{field[:79]}\u2026': 'x' is not a number"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("0 2 * * *", "'0 2 * * *'"),
        ("x" * 80, repr("x" * 80)),
        ("x" * 81, "'" + "x" * 79 + "\u2026'"),
        (["a"] * 100, "[" + "'a', " * 15 + "'a'\u2026"),
        pytest.param(10**5000, "an int too long to show", id="an-int-of-5000-digits"),
    ],
)
def test_quoted_cuts_what_it_quotes_to_80_characters(value, shown):
    assert quoted(value) == shown


def test_it_finds_rare_days_quickly():
    started = time.perf_counter()
    assert fire_dates("0 0 29 2 1", count=6) == [
        "2027-02-01",  # Mondays in February, or the 29th
        "2027-02-08",
        "2027-02-15",
        "2027-02-22",
        "2028-02-07",
        "2028-02-14",
    ]
    assert fire_dates("0 0 29 2 *", count=3) == ["2028-02-29", "2032-02-29", "2036-02-29"]
    # A leap day that is a Sunday: 40 years apart across 2100, which is not a leap year.
    assert fire_dates("0 0 29 2 */7", count=4) == [
        "2032-02-29",
        "2060-02-29",
        "2088-02-29",
        "2128-02-29",
    ]
    assert len(fire_dates("* * * * *", count=3000)) == 3000
    assert time.perf_counter() - started < 1


def test_it_fires_at_now_when_now_is_on_a_whole_minute_else_at_the_next_one():
    ours = CrontabTrigger("*/5 * * * *", "UTC")
    theirs = CronTrigger.from_crontab("*/5 * * * *", timezone=UTC)
    on_time = datetime(2026, 5, 1, 12, 5, tzinfo=UTC)
    cases = [
        (None, on_time, on_time),
        (None, on_time + timedelta(microseconds=1), on_time + timedelta(minutes=5)),
        (None, on_time - timedelta(seconds=30), on_time),
        (on_time, on_time, on_time + timedelta(minutes=5)),
        (on_time, on_time + timedelta(minutes=12), on_time + timedelta(minutes=5)),
    ]
    for previous, now, expected in cases:
        assert ours.get_next_fire_time(previous, now) == expected
        assert theirs.get_next_fire_time(previous, now) == expected


def test_it_wants_aware_datetimes():
    with pytest.raises(ValueError, match="no time zone"):
        CrontabTrigger("* * * * *", "UTC").next_after(datetime(2026, 1, 1))


def test_it_survives_pickling_with_only_its_text_and_zone():
    trigger = CrontabTrigger("30 2 * * 1-5", ZoneInfo("Europe/Warsaw"))
    assert trigger.__getstate__() == {
        "version": 1,
        "expression": "30 2 * * 1-5",
        "timezone": "Europe/Warsaw",
    }
    copy = pickle.loads(pickle.dumps(trigger))
    start = datetime(2026, 3, 28, tzinfo=UTC)
    assert copy == trigger
    assert copy.next_fire_times(5, start) == trigger.next_fire_times(5, start)


def test_it_refuses_state_from_a_newer_version():
    trigger = CrontabTrigger.__new__(CrontabTrigger)
    with pytest.raises(ValueError, match="version 2"):
        trigger.__setstate__({"version": 2, "expression": "* * * * *", "timezone": "UTC"})


def test_it_is_equal_by_text_and_zone():
    warsaw = CrontabTrigger("0 2 * * *", "Europe/Warsaw")
    assert CrontabTrigger(" 0  2 *\t* * ", ZoneInfo("Europe/Warsaw")) == warsaw
    assert hash(CrontabTrigger("0 2 * * *", "Europe/Warsaw")) == hash(warsaw)
    assert CrontabTrigger("0 2 * * *", "Europe/Berlin") != warsaw
    assert CrontabTrigger("0 2 * * 0-6", "Europe/Warsaw") != warsaw  # same meaning, other text
    assert warsaw != "cron[0 2 * * *, Europe/Warsaw]"


def test_it_shows_its_text_and_zone():
    trigger = CrontabTrigger("0  2 * * *", "Europe/Warsaw")
    assert str(trigger) == "cron[0 2 * * *, Europe/Warsaw]"
    assert repr(trigger) == "<CrontabTrigger (expression='0 2 * * *', timezone='Europe/Warsaw')>"


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 2 * * *", "At 02:00 every day"),
        ("0 3 * * 0", "At 03:00 on Sunday"),
        ("*/15 * * * *", "Every 15 minutes"),
        ("* * * * *", "Every minute"),
        ("5 * * * *", "At minute 5 past every hour"),
        ("@hourly", "At minute 0 past every hour"),
        ("0 9 * * mon,wed,fri", "At 09:00 on Monday, Wednesday and Friday"),
        (
            "30 9,17 * * 1-5",
            "At 09:30 and 17:30 on Monday to Friday",
        ),
        ("0 8 1 * *", "At 08:00 on day 1 of the month"),
        ("0 8 1,15 * *", "At 08:00 on days 1 and 15 of the month"),
        ("0 0 13 * 5", "At 00:00 on day 13 of the month or on Friday"),
        ("@yearly", "At 00:00 on day 1 of the month in January"),
        ("0 6 * jul,aug *", "At 06:00 every day in July and August"),
        ("*/7 * * * *", "Cron: */7 * * * *"),
        ("0 0 13 * */2", "Cron: 0 0 13 * */2"),
        ("0 9-17 * * *", "Cron: 0 9-17 * * *"),
    ],
)
def test_it_describes_common_shapes_in_words(expression, words):
    assert CrontabTrigger(expression, "UTC").describe() == words


def nightly_job():
    pass


def test_apscheduler_schedules_and_stores_a_job_with_it():
    scheduler = BackgroundScheduler(jobstores={"default": MemoryJobStore()}, timezone=UTC)
    trigger = CrontabTrigger("30 2 * * *", "Europe/Berlin")
    with time_machine.travel(datetime(2026, 10, 25, 0, 15, tzinfo=UTC), tick=False):
        scheduler.start(paused=True)
        try:
            job = scheduler.add_job(nightly_job, trigger=trigger, id="nightly")
            assert job.next_run_time.isoformat() == "2026-10-25T02:30:00+02:00"
            assert scheduler.get_job("nightly").trigger == trigger
        finally:
            scheduler.shutdown(wait=False)

    # What a database job store does: pickle the job's state, rebuild it later.
    stored = Job.__new__(Job)
    stored.__setstate__(pickle.loads(pickle.dumps(job.__getstate__())))
    assert stored.trigger == trigger
    after_run = stored.trigger.get_next_fire_time(stored.next_run_time, stored.next_run_time)
    assert after_run.isoformat() == "2026-10-26T02:30:00+01:00"
