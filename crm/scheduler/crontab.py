"""Cron expressions exactly as crontab(5) reads them, as an APScheduler trigger.

APScheduler 3's own CronTrigger numbers weekdays from Monday (so `1-5` means
Tuesday to Saturday) and ANDs day-of-month with day-of-week; crontab(5) numbers
them from Sunday (0 or 7) and fires on a day matching either when both fields
are restricted. Daylight saving changes follow Debian's cron: a job at a fixed
time (no `*` at the start of the minute or hour field) that falls in a skipped
hour runs right after the change, and runs once in a repeated hour; other jobs
follow the wall clock (nothing in the skipped hour, both passes of a repeated one).
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger

MONTH_NAMES = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
FIELDS = [
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, {name: number for number, name in enumerate(MONTH_NAMES, start=1)}),
    ("day-of-week", 0, 7, {name: number for number, name in enumerate(DAY_NAMES)}),
]
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
LONGEST_MONTH = {
    1: 31,
    2: 29,
    3: 31,
    4: 30,
    5: 31,
    6: 30,
    7: 31,
    8: 31,
    9: 30,
    10: 31,
    11: 30,
    12: 31,
}
SEARCH_YEARS = 30  # enough for Feb 29 on a given weekday


class CronSyntaxError(ValueError):
    """A malformed cron expression; the message names the field and the problem."""


@dataclass(frozen=True)
class CronExpression:
    text: str
    fields: tuple[str, ...]  # the five fields, macros expanded
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    either_day: bool  # both day fields restricted: a day matching either fires
    fixed_time: bool  # neither minute nor hour starts with "*"

    def matches_day(self, day: date) -> bool:
        dom = day.day in self.days
        dow = (day.weekday() + 1) % 7 in self.weekdays
        return (dom or dow) if self.either_day else (dom and dow)

    def wall_times_on(self, day: date):
        for hour in self.hours:
            for minute in self.minutes:
                yield datetime.combine(day, time(hour, minute))


def parse(expression: str) -> CronExpression:
    text = " ".join(str(expression).split())
    fields = MACROS.get(text.lower(), text).split()
    if len(fields) != 5:
        raise CronSyntaxError(
            f"has {len(fields)} field(s); a crontab expression has 5 fields: "
            'minute hour day-of-month month day-of-week, e.g. "0 2 * * *" for 02:00 every day'
        )
    values = [_parse_field(value, *spec) for value, spec in zip(fields, FIELDS, strict=True)]
    minutes, hours, days, months, weekdays = values
    weekdays = {day % 7 for day in weekdays}
    either_day = not fields[2].startswith("*") and not fields[4].startswith("*")
    only_dom = not either_day and not fields[2].startswith("*")
    if only_dom and min(days) > max(LONGEST_MONTH[month] for month in months):
        raise CronSyntaxError(
            f"day-of-month field {fields[2]!r} never occurs in month field {fields[3]!r}, "
            "so the job would never run"
        )
    return CronExpression(
        text=text,
        fields=tuple(fields),
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=frozenset(days),
        months=frozenset(months),
        weekdays=frozenset(weekdays),
        either_day=either_day,
        fixed_time=not fields[0].startswith("*") and not fields[1].startswith("*"),
    )


def _parse_field(value: str, name: str, low: int, high: int, names: dict) -> set[int]:
    result = set()
    for item in value.split(","):
        result |= _parse_item(item, value, name, low, high, names)
    return result


def _parse_item(item: str, value: str, name: str, low: int, high: int, names: dict) -> set[int]:
    def fail(problem):
        return CronSyntaxError(f"{name} field {value!r}: {problem}")

    if item == "":
        raise fail("has an empty list item")
    span, _, step_text = item.partition("/")
    step = 1
    if "/" in item:
        if not step_text.isdigit() or int(step_text) == 0:
            raise fail(f"step {step_text!r} must be a whole number greater than 0")
        step = int(step_text)
    if span == "*":
        start, end = low, high if name != "day-of-week" else 6
    elif "-" in span:
        first, _, last = span.partition("-")
        start, end = _number(first, fail, low, high, names), _number(last, fail, low, high, names)
        if end < start:
            raise fail(f"range {span!r} runs backwards; write the smaller value first")
    else:
        start = _number(span, fail, low, high, names)
        end = high if "/" in item else start
    return set(range(start, end + 1, step))


def _number(text: str, fail, low: int, high: int, names: dict) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        known = f" or a name ({', '.join(names)})" if names else ""
        raise fail(f"{text!r} is not a number{known}")
    if not low <= int(text) <= high:
        raise fail(f"{text} is out of range {low}-{high}")
    return int(text)


class CrontabTrigger(BaseTrigger):
    """An APScheduler trigger that fires when a crontab(5) expression matches,
    in a given time zone. Fire times are returned in UTC, so that comparing two
    of them never depends on the zone's repeated hour."""

    def __init__(self, expression: str, timezone):
        self.expression = parse(expression)
        self.timezone = timezone if isinstance(timezone, ZoneInfo) else ZoneInfo(str(timezone))

    def get_next_fire_time(self, previous_fire_time, now):
        if previous_fire_time is not None:
            return self.next_after(previous_fire_time)
        return self.next_after(now - timedelta(microseconds=1))

    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after `moment` (an aware datetime)."""
        moment = moment.astimezone(UTC)
        day = moment.astimezone(self.timezone).date() - timedelta(days=1)
        last_day = day + timedelta(days=366 * SEARCH_YEARS)
        while day <= last_day:
            if day.month not in self.expression.months:
                day = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
                continue
            if self.expression.matches_day(day):
                found = self._first_on(day, moment)
                if found is not None:
                    return found
            day += timedelta(days=1)
        return None

    def _first_on(self, day: date, moment: datetime) -> datetime | None:
        start = datetime.combine(day, time()).replace(tzinfo=self.timezone)
        end = datetime.combine(day + timedelta(days=1), time()).replace(tzinfo=self.timezone)
        if start.utcoffset() != end.utcoffset():  # a daylight saving change on this day
            later = [instant for instant in self._instants_on(day) if instant > moment]
            return min(later, default=None)
        for wall in self.expression.wall_times_on(day):
            instant = wall.replace(tzinfo=self.timezone).astimezone(UTC)
            if instant > moment:
                return instant
        return None

    def next_fire_times(self, count: int, after: datetime) -> list[datetime]:
        times = []
        while len(times) < count and (after := self.next_after(after)) is not None:
            times.append(after)
        return times

    def _instants_on(self, day: date) -> list[datetime]:
        instants = []
        for wall in self.expression.wall_times_on(day):
            instants += _real_instants(wall, self.timezone, self.expression.fixed_time)
        return instants

    def describe(self) -> str:
        return describe(self.expression)

    def __getstate__(self):
        return {"version": 1, "expression": self.expression.text, "timezone": self.timezone.key}

    def __setstate__(self, state):
        if state.get("version", 1) > 1:
            raise ValueError(f"Cannot read a CrontabTrigger saved by a newer version: {state}")
        self.expression = parse(state["expression"])
        self.timezone = ZoneInfo(state["timezone"])

    def __eq__(self, other):
        if not isinstance(other, CrontabTrigger):
            return NotImplemented
        return (self.expression.text, self.timezone.key) == (
            other.expression.text,
            other.timezone.key,
        )

    def __hash__(self):
        return hash((self.expression.text, self.timezone.key))

    def __str__(self):
        return f"cron[{self.expression.text}, {self.timezone.key}]"

    def __repr__(self):
        return f"<CrontabTrigger ({self.expression.text!r}, timezone={self.timezone.key!r})>"


def _real_instants(wall: datetime, zone: ZoneInfo, fixed_time: bool) -> list[datetime]:
    first = wall.replace(tzinfo=zone, fold=0)
    if _does_not_exist(first):
        if not fixed_time:
            return []
        # Debian cron runs a fixed-time job that falls in the skipped hour right after the change.
        while _does_not_exist(first):
            wall += timedelta(minutes=1)
            first = wall.replace(tzinfo=zone, fold=0)
        return [first.astimezone(UTC)]
    second = wall.replace(tzinfo=zone, fold=1)
    if not fixed_time and second.utcoffset() != first.utcoffset():
        return [first.astimezone(UTC), second.astimezone(UTC)]
    return [first.astimezone(UTC)]


def _does_not_exist(moment: datetime) -> bool:
    return moment.astimezone(UTC).astimezone(moment.tzinfo).replace(tzinfo=None) != moment.replace(
        tzinfo=None
    )


WEEKDAY_NAMES = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


def describe(expression: CronExpression) -> str:
    """Common shapes in words; anything else as the expression itself."""
    minute, hour, dom, month, dow = expression.fields
    when = _time_words(minute, hour, expression)
    if when is None or month != "*":
        return f"Cron: {expression.text}"
    days = []
    if dom != "*":
        if not dom.isdigit():
            return f"Cron: {expression.text}"
        days.append(f"on day {dom} of the month")
    if dow != "*":
        names = [WEEKDAY_NAMES[day] for day in sorted(expression.weekdays)]
        listed = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
        days.append(f"on {listed}")
    if days:
        return f"{when} {' or '.join(days)}"
    return f"{when} every day" if hour != "*" else when


def _time_words(minute: str, hour: str, expression: CronExpression) -> str | None:
    if minute.isdigit() and hour.isdigit():
        return f"At {int(hour):02d}:{int(minute):02d}"
    if minute.startswith("*/") and hour == "*":
        return f"Every {minute[2:]} minutes"
    if minute == "*" and hour == "*":
        return "Every minute"
    if minute.isdigit() and hour == "*":
        return f"At minute {minute} past every hour"
    return None
