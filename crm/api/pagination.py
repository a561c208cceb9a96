"""Keyset pages of the run history, newest first: a cursor is the (run_time,
id) of the last row shown, so each page is one index range scan wherever it
starts, and rows sharing a fire time (many jobs on one cron line) are neither
skipped nor repeated, as offsets would be past a page of ties."""

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from rest_framework.utils.urls import replace_query_param

ORDERING = ("-run_time", "-id")


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class Position:
    run_time: datetime
    id: int

    def encode(self) -> str:
        text = f"{self.run_time.isoformat()}|{self.id}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> "Position":
        try:
            text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            run_time, _, row_id = text.partition("|")
            position = cls(datetime.fromisoformat(run_time), int(row_id))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise BadCursor(cursor) from None
        if position.run_time.tzinfo is None:
            raise BadCursor(cursor)
        return position


def page(runs: QuerySet, after: Position | None, size: int) -> tuple[list, Position | None]:
    """Up to `size` rows of `runs` after `after`, and the position to ask for
    the next page from (None: this is the last)."""
    runs = runs.order_by(*ORDERING)
    if after is not None:
        # The first condition is the index range; the second only drops the
        # rows of the same fire time shown already.
        runs = runs.filter(Q(run_time__lte=after.run_time)).filter(
            Q(run_time__lt=after.run_time) | Q(id__lt=after.id)
        )
    rows = list(runs[: size + 1])
    if len(rows) <= size:
        return rows, None
    last = rows[size - 1]
    return rows[:size], Position(last.run_time, last.pk)


def next_link(request, position: Position | None) -> str | None:
    if position is None:
        return None
    return replace_query_param(request.build_absolute_uri(), "cursor", position.encode())
