"""Cron expressions read exactly as crontab(5) reads them, as an APScheduler 3 trigger.

APScheduler's own CronTrigger numbers weekdays from Monday (`1-5` is Tuesday to
Saturday), always ANDs day-of-month with day-of-week, and runs a daily 02:30 job
twice when the clocks go back. Here, as in crontab(5) and Debian's cron(8):

* weekdays count from Sunday (0 or 7); when both day fields are restricted
  (neither starts with `*`), a day matching either one fires;
* a job at a fixed time (neither the minute nor the hour field starts with `*`)
  whose wall-clock time is skipped by a daylight saving change runs at the first
  minute after the change, and runs once (the first pass) in a repeated hour;
* other jobs follow the wall clock: nothing in a skipped hour, and both passes
  of a repeated one.
"""

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")  # fmt: skip
WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
LONGEST_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# Only a safety net: parse() rejects expressions that can never fire, and the
# rarest that can (a leap day on a given weekday) recur within 40 years.
SEARCH_YEARS = 100
FORMAT_HELP = (
    "a crontab expression has 5 fields: minute hour day-of-month month day-of-week, "
    'e.g. "0 2 * * *" for 02:00 every day'
)
ONE_MINUTE = timedelta(minutes=1)
ONE_DAY = timedelta(days=1)
NUMBER = re.compile("[0-9]+")
# More than any field or step needs. int() of thousands of digits is slow, and
# refused past 4300 (a ValueError that is not a CronSyntaxError).
MAX_DIGITS = 4
QUOTE_LIMIT = 80  # characters of user input an error message quotes


def quoted(value) -> str:
    """repr() of user input for an error message, cut to QUOTE_LIMIT characters with "…"."""
    if isinstance(value, str):
        return repr(shortened(value))
    try:
        return shortened(repr(value))
    except ValueError:  # an int of more than 4300 digits
        return f"an {type(value).__name__} too long to show"


def shortened(text: str, limit: int = QUOTE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class CronSyntaxError(ValueError):
    """A malformed cron expression.

    The message names the field and the problem, and reads on from the
    expression: f"Cron expression {quoted(text)} {error}".
    """


@dataclass(frozen=True)
class Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[0] stands for `low`

    def parse(self, text: str) -> frozenset[int]:
        values = set()
        for item in text.split(","):
            values.update(self._item(item, text))
        return frozenset(values)

    def _item(self, item: str, text: str) -> range:
        if not item:
            raise self._error(text, "has an empty list item")
        span, slash, step = item.partition("/")
        every = self._step(step, text) if slash else 1
        if span == "*":
            start, end = self.low, self.high
        elif "-" in span:
            first, _, last = span.partition("-")
            start, end = self._value(first, text), self._value(last, text)
            if start > end:
                raise self._error(
                    text, f"range {quoted(span)} runs backwards; put the smaller first"
                )
        else:
            start = self._value(span, text)
            end = self.high if slash else start  # "a/n" means "a-max/n", as Vixie cron reads it
        return range(start, end + 1, every)

    def _step(self, word: str, text: str) -> int:
        step = self._number(word, text) if NUMBER.fullmatch(word) else 0
        if step < 1:
            raise self._error(text, f"step {quoted(word)} must be a whole number greater than 0")
        return step

    def _value(self, word: str, text: str) -> int:
        if word.lower() in self.names:
            return self.low + self.names.index(word.lower())
        if not NUMBER.fullmatch(word):
            names = f" or a name ({', '.join(self.names)})" if self.names else ""
            raise self._error(
                text, f"{quoted(word)} is not a number{names}" if word else "a number is missing"
            )
        number = self._number(word, text)
        if not self.low <= number <= self.high:
            raise self._error(text, f"{number} is out of range {self.low}-{self.high}")
        return number

    def _number(self, digits: str, text: str) -> int:
        if len(digits) > MAX_DIGITS:
            raise self._error(
                text, f"has a number of {len(digits)} digits; use at most {MAX_DIGITS}"
            )
        return int(digits)

    def _error(self, text: str, problem: str) -> CronSyntaxError:
        return CronSyntaxError(f"{self.name} field {quoted(text)}: {problem}")


FIELDS = (
    Field("minute", 0, 59),
    Field("hour", 0, 23),
    Field("day-of-month", 1, 31),
    Field("month", 1, 12, MONTH_NAMES),
    Field("day-of-week", 0, 7, DAY_NAMES),
)


@dataclass(frozen=True)
class CronExpression:
    """A parsed expression: the values each field allows."""

    text: str  # as written, whitespace normalised
    fields: tuple[str, ...]  # the five fields, a macro expanded
    minutes: tuple[int, ...]  # sorted
    hours: tuple[int, ...]  # sorted
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 is Sunday; 7 is folded into 0
    either_day: bool  # both day fields restricted: a day matching either fires
    fixed_time: bool  # cron(8)'s daylight saving rules for fixed-time jobs apply

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_month, in_week = day.day in self.days, day.isoweekday() % 7 in self.weekdays
        return (in_month or in_week) if self.either_day else (in_month and in_week)

    def days_from(self, day: date):
        """The matching days from `day` on, skipping whole months that do not match."""
        last_year = day.year + SEARCH_YEARS
        while day.year < last_year:
            if day.month not in self.months:
                day = (day.replace(day=1) + timedelta(days=31)).replace(day=1)
                continue
            if self.matches_day(day):
                yield day
            day += ONE_DAY

    def first_time_from(self, hour: int, minute: int) -> tuple[int, int] | None:
        """The first (hour, minute) at or after the given one (minute may be 60) in a day."""
        for candidate in self.hours[bisect_left(self.hours, hour) :]:
            index = bisect_left(self.minutes, minute if candidate == hour else 0)
            if index < len(self.minutes):
                return candidate, self.minutes[index]
        return None

    def describe(self) -> str:
        """English for common shapes, e.g. "At 02:00 every day"; else "Cron: <text>"."""
        return _describe(self) or f"Cron: {self.text}"


def parse(expression: str) -> CronExpression:
    """Read a 5-field crontab(5) expression or macro; raise CronSyntaxError if malformed."""
    if not isinstance(expression, str):
        raise CronSyntaxError(f"is a {type(expression).__name__}, not text; {FORMAT_HELP}")
    text = " ".join(expression.split())
    fields = _expand_macro(text).split()
    if len(fields) != 5:
        seconds = " (there is no seconds field)" if len(fields) == 6 else ""
        raise CronSyntaxError(f"has {len(fields)} field(s){seconds}; {FORMAT_HELP}")
    minutes, hours, days, months, weekdays = map(Field.parse, FIELDS, fields)
    either_day = not fields[2].startswith("*") and not fields[4].startswith("*")
    if not either_day and min(days) > max(LONGEST_MONTH[month] for month in months):
        raise CronSyntaxError(
            f"day-of-month field {quoted(fields[2])} never occurs in month field "
            f"{quoted(fields[3])}, so the job would never run"
        )
    return CronExpression(
        text=text,
        fields=tuple(fields),
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=days,
        months=months,
        weekdays=frozenset(day % 7 for day in weekdays),
        either_day=either_day,
        fixed_time=not fields[0].startswith("*") and not fields[1].startswith("*"),
    )


def _expand_macro(text: str) -> str:
    if not text.startswith("@"):
        return text
    if text.lower() not in MACROS:
        raise CronSyntaxError(f"is not a supported macro; use one of {', '.join(MACROS)}")
    return MACROS[text.lower()]


class CrontabTrigger(BaseTrigger):
    """Fires when a crontab(5) expression matches the wall clock of `timezone`.

    Fire times are aware datetimes in that zone. Python compares two datetimes
    that share one tzinfo by wall clock, ignoring `fold`, so compare fire times
    with datetimes in another zone (or in UTC) around a repeated hour.
    """

    def __init__(self, expression: str, timezone: str | ZoneInfo):
        self.expression = parse(expression)
        self.timezone = timezone if isinstance(timezone, ZoneInfo) else ZoneInfo(timezone)
        if self.timezone.key is None:  # it is pickled by name
            raise ValueError("CrontabTrigger needs a named time zone, such as Europe/Warsaw")

    def get_next_fire_time(self, previous_fire_time, now):
        if previous_fire_time is not None:
            return self.next_after(previous_fire_time)
        # The first fire time at or after `now`: `now` itself if it is one.
        return self.next_after(now - timedelta(microseconds=1))

    def next_fire_times(self, count: int, after: datetime) -> list[datetime]:
        """The next `count` fire times strictly after the aware datetime `after`."""
        times = []
        while len(times) < count and (after := self.next_after(after)) is not None:
            times.append(after)
        return times

    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after the aware datetime `moment`, or None."""
        if moment.tzinfo is None:
            raise ValueError(f"{moment!r} has no time zone; pass an aware datetime")
        after = moment.astimezone(UTC)
        # A day early: a repeated hour straddling midnight puts the second pass of
        # the previous evening after the first minutes of this day.
        start = after.astimezone(self.timezone).date() - ONE_DAY
        try:
            for day in self.expression.days_from(start):
                if (found := self._first_on(day, after)) is not None:
                    return found.astimezone(self.timezone)
        except OverflowError:  # past the year 9999
            pass
        return None

    def _first_on(self, day: date, after: datetime) -> datetime | None:
        """The first fire time of a matching `day` strictly after `after` (in UTC)."""
        if not _steady(self.timezone, day):
            fires = _fires_on_changing_day(self.expression, self.timezone, day)
            index = bisect_right(fires, after)
            return fires[index] if index < len(fires) else None
        local = after.astimezone(self.timezone).replace(tzinfo=None)
        if local.date() > day:
            return None
        hour, minute = (local.hour, local.minute + 1) if local.date() == day else (0, 0)
        if (found := self.expression.first_time_from(hour, minute)) is None:
            return None
        return datetime.combine(day, time(*found), tzinfo=self.timezone)

    def describe(self) -> str:
        return self.expression.describe()

    def __getstate__(self):
        return {"version": 1, "expression": self.expression.text, "timezone": self.timezone.key}

    def __setstate__(self, state):
        if state.get("version") != 1:
            raise ValueError(
                f"Cannot restore a CrontabTrigger from state version {state.get('version')!r}; "
                "this code reads version 1"
            )
        self.__init__(state["expression"], state["timezone"])

    def _key(self) -> tuple[str, str]:
        return self.expression.text, self.timezone.key

    def __eq__(self, other):
        if not isinstance(other, CrontabTrigger):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __str__(self):
        return f"cron[{self.expression.text}, {self.timezone.key}]"

    def __repr__(self):
        text, zone = self._key()
        return f"<CrontabTrigger (expression={text!r}, timezone={zone!r})>"


def _steady(zone: ZoneInfo, day: date) -> bool:
    """Whether the zone keeps one UTC offset all day: nothing skipped or repeated."""
    midnights = (datetime.combine(day + timedelta(days=n), time()) for n in (0, 1))
    return len({m.replace(tzinfo=zone, fold=f).utcoffset() for m in midnights for f in (0, 1)}) == 1


@lru_cache(maxsize=16)
def _fires_on_changing_day(
    expression: CronExpression, zone: ZoneInfo, day: date
) -> tuple[datetime, ...]:
    """Sorted UTC fire times of the wall-clock times of `day`, a day the clocks change.

    A repeated hour can straddle midnight (as in America/St_Johns until 2011), so
    that some times of the next day come before some of ours: then add that day's.
    """
    days = [day] if _steady(zone, day + ONE_DAY) else [day, day + ONE_DAY]
    fires = set()
    for each in days:
        if expression.matches_day(each):
            for hour in expression.hours:
                for minute in expression.minutes:
                    wall = datetime.combine(each, time(hour, minute))
                    fires.update(_instants(wall, zone, expression.fixed_time))
    return tuple(sorted(fires))


def _instants(wall: datetime, zone: ZoneInfo, fixed_time: bool) -> list[datetime]:
    """The UTC instants at which the wall-clock time `wall` fires, by cron(8)'s rules."""
    first, second = wall.replace(tzinfo=zone), wall.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return [first.astimezone(UTC)]
    if _exists(first):  # in a repeated hour
        return [moment.astimezone(UTC) for moment in ([first] if fixed_time else [first, second])]
    if not fixed_time:
        return []
    while not _exists(first):  # skipped: run at the first minute after the change
        first += ONE_MINUTE
    return [first.astimezone(UTC)]


def _exists(moment: datetime) -> bool:
    back = moment.astimezone(UTC).astimezone(moment.tzinfo)
    return back.replace(tzinfo=None) == moment.replace(tzinfo=None)


def _describe(expression: CronExpression) -> str | None:
    minute, hour, _, month, _ = expression.fields
    when = _describe_time(minute, hour)
    days = _describe_days(expression)
    if when is None or days is None:
        return None
    words = [when, *days]
    if not days and hour != "*":
        words.append("every day")
    if month != "*":
        words.append("in " + _join([MONTHS[number - 1] for number in sorted(expression.months)]))
    return " ".join(words)


def _describe_time(minute: str, hour: str) -> str | None:
    hours = hour.split(",")
    if minute.isdigit() and all(part.isdigit() for part in hours):
        return "At " + _join([f"{int(part):02d}:{int(minute):02d}" for part in hours])
    if hour != "*":
        return None
    if minute == "*":
        return "Every minute"
    if minute.isdigit():
        return f"At minute {int(minute)} past every hour"
    step = minute.removeprefix("*/")
    if minute.startswith("*/") and step.isdigit() and 60 % int(step) == 0:
        return "Every minute" if int(step) == 1 else f"Every {int(step)} minutes"
    return None


def _describe_days(expression: CronExpression) -> list[str] | None:
    """Phrases to join with "or", [] for every day, None if too unusual to put in words."""
    _, _, dom, _, dow = expression.fields
    if dom != "*" and dow != "*" and not expression.either_day:
        return None  # "*/2"-style day fields AND together; rare enough to show as is
    phrases = []
    if dom != "*":
        if not all(part.isdigit() for part in dom.split(",")):
            return None
        numbers = [str(number) for number in sorted(expression.days)]
        phrases.append(f"on day{'s' if len(numbers) > 1 else ''} {_join(numbers)} of the month")
    if dow != "*":
        phrases.append("on " + _join(_weekday_spans(expression.weekdays)))
    return [" or ".join(phrases)] if phrases else []


def _weekday_spans(weekdays: frozenset[int]) -> list[str]:
    """["Monday to Friday"] for 1-5; three or more days in a row make a span."""
    spans: list[list[int]] = []
    for day in sorted(weekdays, key=lambda day: (day + 6) % 7):  # Monday first
        if spans and (spans[-1][-1] + 1) % 7 == day:
            spans[-1].append(day)
        else:
            spans.append([day])
    words = []
    for span in spans:
        if len(span) >= 3:
            words.append(f"{WEEKDAYS[span[0]]} to {WEEKDAYS[span[-1]]}")
        else:
            words.extend(WEEKDAYS[day] for day in span)
    return words


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
