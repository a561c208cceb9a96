"""Rows the tests need, built one way: plain functions with defaults that any
keyword overrides. Tickets go through crm.services, so that each has the history
rows real use writes; scheduler rows are written as the scheduler writes them."""

import contextlib
from datetime import datetime, timedelta

import time_machine
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from crm import services
from crm.models import Ticket
from crm.scheduler.models import RunDetail

# The legal way from "new" to each status (crm.services.ALLOWED_TRANSITIONS).
PATH_TO = {
    "new": [],
    "open": ["open"],
    "pending": ["open", "pending"],
    "resolved": ["open", "resolved"],
    "closed": ["open", "resolved", "closed"],
}


def ticket(
    status: str = "new",
    *,
    at: datetime | None = None,
    step: timedelta = timedelta(0),
    title: str = "Printer offline",
    requester_name: str = "Anna Nowak",
    requester_email: str = "anna@example.com",
    **fields,
) -> Ticket:
    """A ticket created by services.ticket_create (`fields`: its other arguments,
    such as priority, assignee, actor) and brought to `status` by the workflow's
    legal steps, as the system. With `at`, the clock stands still at `at` for the
    creation and moves on by `step` before each step; without, it is not touched."""
    if step and at is None:
        raise ValueError("step needs at")

    def clock(offset: timedelta):
        if at is None:
            return contextlib.nullcontext()
        return time_machine.travel(at + offset, tick=False)

    with clock(timedelta(0)):
        created = services.ticket_create(
            title=title, requester_name=requester_name, requester_email=requester_email, **fields
        )
    for number, to_status in enumerate(PATH_TO[status], start=1):
        with clock(step * number):
            services.ticket_transition(ticket=created, to_status=to_status)
    return created


def resolved_ticket(hours_ago: float, *, now: datetime, **fields) -> Ticket:
    """A ticket created, opened and resolved `hours_ago` hours before `now`;
    `fields` as for `ticket`."""
    return ticket("resolved", at=now - timedelta(hours=hours_ago), **fields)


def stored_job(job_id: str = "nightly", *, job_state: bytes = b"", **fields) -> DjangoJob:
    """A job-store row (django-apscheduler's DjangoJob). Its default state is
    no pickled job at all: enough for a run history to point at, not for a
    scheduler to load (control.sync stores loadable ones)."""
    return DjangoJob.objects.create(id=job_id, job_state=job_state, **fields)


def job_run(
    job_id: str = "nightly",
    *,
    status: str = DjangoJobExecution.SUCCESS,
    run_time: datetime | None = None,
    detail: dict | None = None,
    **fields,
) -> DjangoJobExecution:
    """A run in the history (DjangoJobExecution) of job `job_id` for the fire at
    `run_time` (default: now), with `fields` as its other columns (duration,
    exception, ...). The job's store row is made (as `stored_job`) if there is none.

    With `detail` (a dict, which may be empty), also the run's RunDetail: started
    at the fire time on host web1, pid 1, triggered by the schedule, unless
    `detail` says otherwise."""
    run_time = timezone.now() if run_time is None else run_time
    DjangoJob.objects.get_or_create(id=job_id, defaults={"job_state": b""})
    execution = DjangoJobExecution.objects.create(
        job_id=job_id, status=status, run_time=run_time, **fields
    )
    if detail is not None:
        RunDetail.objects.create(
            execution=execution,
            **{
                "triggered_by": "schedule",
                "started_at": run_time,
                "host": "web1",
                "pid": 1,
                **detail,
            },
        )
    return execution


def run_going_on_elsewhere(job_id: str, *, seconds_ago: float = 30):
    """A run of `job_id` that the scheduler of another process (web2) started,
    as crm.scheduler.history records it: going on, and said so just now."""
    from crm.scheduler import history

    return history.start_run(
        job_id,
        timezone.now() - timedelta(seconds=seconds_ago),
        history.BY_SCHEDULE,
        host="web2",
        pid=4242,
        scheduler="the other scheduler",
    )
