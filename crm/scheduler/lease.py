"""A lease in a database row: at most one holder at a time across every process
and host sharing the database.

Time comes from the database's clock (`DatabaseNow()` inside the statements), so hosts
with skewed clocks agree on when a lease has expired. The row outlives any
connection: Django closing a connection after a request cannot drop it.
"""

import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DatabaseError, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Q, Value
from django.db.models.functions import Now

from crm.scheduler.models import SchedulerLease

# The one lease the schedulers of a deployment compete for.
LEASE_NAME = "default"
# Held by the standby that watches the lease closely (crm.scheduler.runner).
NEXT_IN_LINE = "next-in-line"


class DatabaseNow(Now):
    """The database server's clock. Django's `Now()` is CURRENT_TIMESTAMP, which
    MySQL and MariaDB give in the session's time zone (the server's, often local
    time), while Django reads their datetime columns as UTC: the lease times
    would be off by the zone's offset, and expiry would jump at its DST changes."""

    def as_mysql(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="UTC_TIMESTAMP(6)", **extra_context)


def database_now_plus(duration: timedelta):
    return ExpressionWrapper(DatabaseNow() + Value(duration), output_field=DateTimeField())


@dataclass(frozen=True)
class Holder:
    token: str
    host: str
    pid: int

    @classmethod
    def of_this_process(cls) -> "Holder":
        host, pid = socket.gethostname(), os.getpid()
        return cls(f"{host}:{pid}:{uuid.uuid4().hex[:12]}", host, pid)


class Lease:
    def __init__(self, name: str, duration: timedelta, holder: Holder | None = None):
        self.name = name
        self.duration = duration
        self.holder = holder or Holder.of_this_process()
        # Monotonic time at which the last successful renewal was sent. The row
        # expires no earlier than this plus `duration`, whatever the clocks say.
        self.renewed_at: float | None = None
        self._row_exists = False
        self.previous_holder = ""
        self.previous_heartbeat: datetime | None = None  # the last holder's last renewal
        # (monotonic time, database time) at the last renewal: how far this
        # host's wall clock is from the database's (see `clock_offset`).
        self._database_clock: tuple[float, float] | None = None
        # Renewals that failed and are not yet counted in the row's
        # `renewal_failures`: added by the next statement that reaches it.
        self.uncounted_failures = 0

    def acquire(self, dispatched_seconds_ago: float | None = None) -> bool:
        """Take the lease if it is free or expired, or renew it if we hold it.
        Returns whether we hold it now. `dispatched_seconds_ago`: when the
        holder's dispatch loop last read the job store (published as
        `dispatched_at`, so that a stalled loop shows; None: unknown)."""
        try:
            return self._acquire(dispatched_seconds_ago)
        except DatabaseError:
            if self.renewed_at:
                self.uncounted_failures += 1
            raise

    def _acquire(self, dispatched_seconds_ago: float | None) -> bool:
        sent_at = time.monotonic()
        if not self._row_exists:
            SchedulerLease.objects.bulk_create(
                [SchedulerLease(name=self.name)], ignore_conflicts=True
            )
            self._row_exists = True
        mine = Q(holder=self.holder.token)
        claimable = Q(holder="") | Q(expires_at__isnull=True) | Q(expires_at__lt=DatabaseNow())
        if (
            not self.renewed_at
            and not SchedulerLease.objects.filter(mine | claimable, name=self.name).exists()
        ):
            # Someone else holds it: a read, so that standbys polling often
            # never take a write lock (SQLite has one for the whole database).
            return False
        with transaction.atomic():
            if not self.renewed_at:
                before = SchedulerLease.objects.filter(name=self.name).first()
                self.previous_holder = (
                    f"host {before.host}, pid {before.pid}" if before and before.host else ""
                )
                self.previous_heartbeat = before.heartbeat_at if before else None
            dispatched_at = (
                None
                if dispatched_seconds_ago is None
                else database_now_plus(-timedelta(seconds=dispatched_seconds_ago))
            )
            failures = F("renewal_failures") + self.uncounted_failures
            renewed = SchedulerLease.objects.filter(mine, name=self.name).update(
                heartbeat_at=DatabaseNow(),
                expires_at=database_now_plus(self.duration),
                dispatched_at=dispatched_at,
                renewal_failures=failures,
            )
            taken = renewed or SchedulerLease.objects.filter(claimable, name=self.name).update(
                holder=self.holder.token,
                host=self.holder.host,
                pid=self.holder.pid,
                acquired_at=DatabaseNow(),
                heartbeat_at=DatabaseNow(),
                expires_at=database_now_plus(self.duration),
                dispatched_at=None,
                renewal_failures=failures,
            )
            lost = 1 if self.renewed_at and not taken else 0  # it passed on while ours
            if not taken and self.uncounted_failures + lost:
                SchedulerLease.objects.filter(name=self.name).update(
                    renewal_failures=F("renewal_failures") + self.uncounted_failures + lost
                )
            # The database's clock as it renewed, for `clock_offset`.
            row = SchedulerLease.objects.filter(name=self.name)
            heartbeat = row.values_list("heartbeat_at", flat=True).first() if taken else None
        self.renewed_at = sent_at if taken else None
        self.uncounted_failures = 0
        if heartbeat is not None:
            self._database_clock = (sent_at, heartbeat.timestamp())
        return bool(taken)

    def clock_offset(self) -> float | None:
        """Seconds this host's wall clock is ahead of the database's (negative:
        behind), estimated from the last renewal and the monotonic clock, so a
        jump of the wall clock shows at once; None before the first renewal."""
        if self._database_clock is None:
            return None
        measured_at, database_time = self._database_clock
        return time.time() - (database_time + time.monotonic() - measured_at)

    def release(self) -> None:
        """Give the lease up at once so that a standby need not wait for it to expire."""
        SchedulerLease.objects.filter(name=self.name, holder=self.holder.token).update(
            holder="", expires_at=F("heartbeat_at")
        )
        self.renewed_at = None

    def surely_held(self, safety_margin: timedelta) -> bool:
        """True while the lease cannot yet have passed to another holder,
        judged by this process's monotonic clock alone (no database access)."""
        if self.renewed_at is None:
            return False
        deadline = self.renewed_at + (self.duration - safety_margin).total_seconds()
        return time.monotonic() < deadline


def current_holder(name: str) -> SchedulerLease | None:
    """The lease row if someone holds it and it has not expired, else None.
    It carries `database_now`, the database's clock as it was read."""
    live = SchedulerLease.objects.filter(name=name, expires_at__gte=DatabaseNow())
    return live.exclude(holder="").annotate(database_now=DatabaseNow()).first()


def lease_row(name: str) -> SchedulerLease | None:
    """The lease row whoever holds it, or None if no scheduler ever ran;
    with `database_now` as in `current_holder`."""
    return SchedulerLease.objects.filter(name=name).annotate(database_now=DatabaseNow()).first()
