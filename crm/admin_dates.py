"""The admin's date hierarchy answered by index seeks.

Django's date_hierarchy (django.contrib.admin.templatetags.admin_list) asks
the changelist's queryset for two things: aggregate(first=Min(field),
last=Max(field)) to pick the starting level, and datetimes(field, kind) for
the years, months or days to offer. The second is a SELECT DISTINCT over a
truncation of every row shown (a million rows at the top level, each through
a Python function on SQLite), the first a full scan on SQLite, which uses an
index for a lone MIN or MAX only. IndexedDates answers both with queries an
index on the field serves: the first and the last row, then the first row of
each candidate period between them, all in one statement. Django's function still
builds the links and titles, so they stay its own; tests/helpdesk/
test_admin_dates.py compares the two and fails if an upgrade changes what
Django asks."""

from datetime import datetime

from django.db import connections
from django.db.models import QuerySet
from django.utils import timezone

# Below this many rows shown, Django's own queries are the cheaper.
FEW_ROWS = 1_000


class IndexedDates:
    """Stands in for the changelist's queryset in Django's date_hierarchy."""

    def __init__(self, queryset: QuerySet, field: str):
        self.queryset = queryset
        self.field = field
        self._edges = None

    def aggregate(self, **aggregates) -> dict:
        # Django asks for first=Min(field), last=Max(field).
        first, last = self.edges()
        return {"first": first, "last": last}

    def datetimes(self, field: str, kind: str) -> list[datetime]:
        """The starts (in the current time zone) of the periods of `kind`
        ("year", "month", "day") holding at least one row."""
        first, last = self.edges()
        if first is None:
            return []
        candidates = list(periods(first, last, kind))
        held = exists_each(self.queryset, field, candidates)
        return [start for (start, _), has_rows in zip(candidates, held, strict=True) if has_rows]

    def edges(self) -> tuple[datetime | None, datetime | None]:
        if self._edges is None:
            values = self.queryset.values_list(self.field, flat=True)
            self._edges = (
                values.order_by(self.field).first(),
                values.order_by(f"-{self.field}").first(),
            )
        return self._edges


class ChangeListWithIndexedDates:
    """The changelist `cl`, its queryset answering the date queries as IndexedDates."""

    def __init__(self, cl):
        self._cl = cl
        self.queryset = IndexedDates(cl.queryset, cl.date_hierarchy)

    def __getattr__(self, name):
        return getattr(self._cl, name)


def periods(first: datetime, last: datetime, kind: str):
    """(start, end) of each period of `kind` from the one holding `first` to
    the one holding `last`, aware, in the current time zone."""
    start = truncate(timezone.localtime(first).replace(tzinfo=None), kind)
    stop = timezone.localtime(last).replace(tzinfo=None)
    while start <= stop:
        following = after(start, kind)
        yield timezone.make_aware(start), timezone.make_aware(following)
        start = following


def truncate(moment: datetime, kind: str) -> datetime:
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "day":
        return midnight
    if kind == "month":
        return midnight.replace(day=1)
    return midnight.replace(month=1, day=1)


def after(start: datetime, kind: str) -> datetime:
    """The start of the period of `kind` after the one starting at `start`."""
    if kind == "year":
        return start.replace(year=start.year + 1)
    if kind == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return datetime.fromordinal(start.toordinal() + 1)


def exists_each(queryset: QuerySet, field: str, ranges: list[tuple]) -> list[bool]:
    """Whether `queryset` has a row with `field` in [start, end), for each range."""
    connection = connections[queryset.db]
    parts, params = [], []
    every_row = queryset.model._default_manager.all()
    for start, end in ranges:
        # The period's bounds first: SQLite searches the index by the first
        # range it meets, and the queryset's own may be the whole month.
        period = every_row.filter(**{f"{field}__gte": start, f"{field}__lt": end})
        # The period's first row rather than EXISTS: PostgreSQL plans an
        # EXISTS as a sequential scan from the table's start, which holds the
        # oldest rows; ORDER BY leads it to the index.
        first = (period & queryset).order_by(field).values(field)[:1]
        sql, first_params = first.query.get_compiler(queryset.db).as_sql()
        parts.append(f"({sql})")
        params += first_params
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        return [value is not None for value in cursor.fetchone()]
