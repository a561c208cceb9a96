"""The lease row: one holder at a time, judged by the database's clock."""

import time
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from crm.scheduler.lease import Holder, Lease, current_holder
from crm.scheduler.models import SchedulerLease

pytestmark = pytest.mark.django_db
LEASE = timedelta(seconds=30)


def lease(name="default", duration=LEASE, tag="a"):
    return Lease(name, duration, Holder(f"host-{tag}:{tag}:token-{tag}", f"host-{tag}", 100))


def expire(name="default"):
    SchedulerLease.objects.filter(name=name).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


def test_the_first_process_takes_the_lease_and_the_second_does_not():
    first, second = lease(tag="a"), lease(tag="b")

    assert first.acquire()
    assert not second.acquire()
    assert current_holder("default").holder == "host-a:a:token-a"


def test_the_holder_renews_its_lease_and_keeps_its_start_time():
    holder = lease()
    holder.acquire()
    row = SchedulerLease.objects.get()

    assert holder.acquire()
    renewed = SchedulerLease.objects.get()
    assert renewed.acquired_at == row.acquired_at
    assert renewed.heartbeat_at >= row.heartbeat_at
    assert renewed.expires_at >= row.expires_at


def test_another_process_takes_over_once_the_lease_expired():
    dead, standby = lease(tag="dead"), lease(tag="standby")
    dead.acquire()
    expire()

    assert standby.acquire()
    assert not dead.acquire()
    row = current_holder("default")
    assert (row.holder, row.host, row.pid) == (
        "host-standby:standby:token-standby",
        "host-standby",
        100,
    )


def test_release_frees_the_lease_at_once():
    first, second = lease(tag="a"), lease(tag="b")
    first.acquire()

    first.release()

    assert current_holder("default") is None
    assert second.acquire()


def test_release_by_a_process_that_lost_the_lease_does_not_free_it():
    old, new = lease(tag="old"), lease(tag="new")
    old.acquire()
    expire()
    new.acquire()

    old.release()

    assert current_holder("default").holder == "host-new:new:token-new"


def test_expiry_is_judged_by_the_database_clock_not_the_hosts():
    holder, skewed = lease(tag="a"), lease(tag="skewed")
    holder.acquire()

    with time_machine.travel(timezone.now() + timedelta(hours=2), tick=False):
        assert not skewed.acquire()


def test_leases_with_different_names_are_independent():
    assert lease("default", tag="a").acquire()
    assert lease("other", tag="b").acquire()


def test_the_holder_knows_locally_when_the_lease_may_have_passed_on():
    short = lease(duration=timedelta(seconds=0.3))
    assert not short.surely_held(timedelta(0))

    short.acquire()
    assert short.surely_held(timedelta(seconds=0.1))

    time.sleep(0.25)
    assert not short.surely_held(timedelta(seconds=0.1))


def test_a_holder_that_failed_to_renew_does_not_believe_it_still_holds():
    old, new = lease(tag="old"), lease(tag="new")
    old.acquire()
    expire()
    new.acquire()

    assert not old.acquire()
    assert not old.surely_held(timedelta(0))


def test_a_holder_of_this_process_names_host_and_pid():
    import os
    import socket

    holder = Holder.of_this_process()
    assert (holder.host, holder.pid) == (socket.gethostname(), os.getpid())
    assert holder.token != Holder.of_this_process().token


@pytest.mark.skipif(
    connection.vendor != "mysql",
    reason="only MySQL and MariaDB give CURRENT_TIMESTAMP in the session's time zone",
)
def test_lease_times_are_utc_when_the_mysql_server_runs_on_local_time():
    with connection.cursor() as cursor:
        cursor.execute("SET time_zone = '+05:00'")
    try:
        assert lease(tag="a").acquire()
        assert not lease(tag="b").acquire()
        row = SchedulerLease.objects.get()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET time_zone = @@global.time_zone")

    assert abs(row.heartbeat_at - timezone.now()) < timedelta(seconds=5)
    assert abs(row.expires_at - (timezone.now() + LEASE)) < timedelta(seconds=5)
