"""Mail to ADMINS when a job becomes failing or late, and when it recovers:
once per transition, whichever process notices it first.

What ADMINS were last told about a job is one row (JobAlert). A process that
notices a change claims it with a conditional UPDATE of that row, so two
processes noticing the same change never both mail. Changes are keyed on facts
in the database (the failed run, the fire that is late), not on one process's
clock: a process whose clock lags cannot call a job recovered that another
found late; only a run (or a pause) moving the job's next fire can.

The scheduler itself has two such rows, under keys no job id can take: one
for a stalled active scheduler (keyed on when it stopped dispatching), one for
no scheduler at all for longer than the lease plus a minute while jobs are
declared (keyed on the last holder's last heartbeat).
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import mail_admins
from django.urls import reverse
from django.utils import timezone

from crm.scheduler.connections import CONNECTION_ERRORS, drop_connection
from crm.scheduler.lease import LEASE_NAME, lease_row
from crm.scheduler.models import JobAlert
from crm.scheduler.status import JobState, active_scheduler, job_states

logger = logging.getLogger("crm.scheduler")


def check(job_ids: list[str] | None = None, now: datetime | None = None) -> list[str]:
    """Mail ADMINS about each transition since the last check (of any process);
    returns the subjects of the mails sent."""
    if not settings.ADMINS:
        return []
    states = job_states(now, job_ids=job_ids)
    told = _alert_rows([state.id for state in states] + [STALLED, ABSENT])
    mails = [mail for state in states for mail in _transitions(state, told[state.id])]
    if job_ids is None:  # the periodic check, not the one after a run
        mails += _scheduler_transitions(states, told)
    for subject, message in mails:
        mail_admins(subject=subject, message=message)
        logger.info("scheduler alert mailed to ADMINS: %s", subject)
    return [subject for subject, _ in mails]


# Keys of the scheduler's own alert rows; a job id cannot contain ":".
STALLED = "scheduler:stalled"
ABSENT = "scheduler:absent"


def check_safely(job_ids: list[str] | None = None) -> None:
    """`check`, for the threads that run jobs and keep the lease: a broken mail
    server or database must not hide a job's own outcome, nor stop the scheduler."""
    try:
        check(job_ids)
    except CONNECTION_ERRORS as error:
        drop_connection()
        logger.warning("scheduler could not check alerts: %s", error)
    except Exception:
        logger.exception("scheduler could not check or mail alerts")


def _scheduler_transitions(states: list[JobState], told: dict[str, JobAlert]):
    active = active_scheduler()
    stalled = active.stalled_since(states) if active else None
    absent = None if active else _absent_since(states)
    for key, since in ((STALLED, stalled), (ABSENT, absent)):
        row = told[key]
        if since is not None and row.late_since is None and _claim(row, "late_since", since):
            yield _scheduler_mail(key, True, since, active)
        elif since is None and row.late_since is not None:
            was = row.late_since
            if _claim(row, "late_since", None):
                yield _scheduler_mail(key, False, was, active)


def _absent_since(states: list[JobState]):
    """The last holder's last heartbeat, if no scheduler has been active for
    longer than the lease plus a minute and some job is declared to run."""
    if not any(state.declaration and state.declaration.enabled for state in states):
        return None
    row = lease_row(LEASE_NAME)
    if row is None or row.heartbeat_at is None:
        return None
    quiet = timedelta(seconds=settings.SCHEDULER_LEASE_SECONDS + 60)
    return row.heartbeat_at if row.database_now - row.heartbeat_at > quiet else None


# The mails as a scheduler problem begins and as it ends: subject and body;
# {since}: when it began, {who}: the active scheduler.
SCHEDULER_MAILS = {
    STALLED: (
        (
            "The scheduler is stalled",
            "The active scheduler ({who}) holds the lease but has dispatched nothing "
            "since {since}: no scheduled job runs. Its log (grep scheduler "
            "logs/django.log) says why; restarting that process hands the lease to "
            "another. `python manage.py scheduler status` tells.\n\n"
            "You get one more mail when a scheduler dispatches again.",
        ),
        (
            "The scheduler dispatches again",
            "The scheduler, stalled since {since}, is no longer stalled ({who}).",
        ),
    ),
    ABSENT: (
        (
            "No scheduler is running",
            "No scheduler has held the lease since {since}: scheduled jobs are not "
            "running. Start one (a web process with ENABLE_SCHEDULER on, or "
            "`python manage.py runscheduler`); `python manage.py scheduler status` tells."
            "\n\nYou get one more mail when a scheduler is active again.",
        ),
        (
            "A scheduler is running again",
            "A scheduler is active again ({who}); none was since {since}.",
        ),
    ),
}


def _scheduler_mail(key: str, began: bool, since, active) -> tuple[str, str]:
    subject, body = SCHEDULER_MAILS[key][0 if began else 1]
    who = f"host {active.host}, pid {active.pid}" if active else "none is active now"
    return subject, body.format(since=since.isoformat(), who=who)


def _alert_rows(job_ids: list[str]) -> dict[str, JobAlert]:
    rows = {row.job_id: row for row in JobAlert.objects.filter(job_id__in=job_ids)}
    missing = [JobAlert(job_id=job_id) for job_id in job_ids if job_id not in rows]
    if missing:
        JobAlert.objects.bulk_create(missing, ignore_conflicts=True)
        rows = {row.job_id: row for row in JobAlert.objects.filter(job_id__in=job_ids)}
    return rows


def _transitions(state: JobState, told: JobAlert):
    for field, new_value, mail in _changes(state, told):
        if _claim(told, field, new_value):
            yield mail


def _changes(state: JobState, told: JobAlert):
    failed_run = state.last_finished if state.failing else None
    if failed_run is not None and told.failing_run_id is None:
        yield "failing_run_id", failed_run.pk, _failing(state, failed_run)
    elif failed_run is None and told.failing_run_id is not None:
        yield "failing_run_id", None, _recovered_from_failing(state)

    if state.late and told.late_since != state.late_since:
        yield "late_since", state.late_since, _late(state)
    elif told.late_since is not None and not state.late and state.next_run != told.late_since:
        yield "late_since", None, _no_longer_late(state, told.late_since)


def _claim(told: JobAlert, field: str, new) -> bool:
    claimed = JobAlert.objects.filter(job_id=told.job_id, **{field: getattr(told, field)}).update(
        **{field: new, "changed_at": timezone.now()}
    )
    setattr(told, field, new)
    return bool(claimed)


def _failing(state: JobState, run) -> tuple[str, str]:
    return (
        f"Scheduled job {state.id} is failing",
        f"The scheduled job {state.id} failed in its run for "
        f"{run.run_time.isoformat()}:\n\n{run.exception or '(no error recorded)'}\n\n"
        f"{run.traceback or ''}\n"
        f"Run: {_admin_link('django_apscheduler_djangojobexecution_change', run.pk)}\n"
        f"Job: {_admin_link('django_apscheduler_djangojob_change', state.id)}\n\n"
        "You get one more mail when it succeeds again, none for each failure meanwhile.",
    )


def _recovered_from_failing(state: JobState) -> tuple[str, str]:
    run = state.last_finished
    outcome = (
        f"Its run for {run.run_time.isoformat()} succeeded."
        if run is not None
        else "Its failed runs are no longer in the history."
    )
    return (
        f"Scheduled job {state.id} recovered",
        f"The scheduled job {state.id} is no longer failing. {outcome}\n\n"
        f"Job: {_admin_link('django_apscheduler_djangojob_change', state.id)}",
    )


def _late(state: JobState) -> tuple[str, str]:
    grace = int(state.declaration.misfire_grace.total_seconds())
    return (
        f"Scheduled job {state.id} is late",
        f"The scheduled job {state.id} was due at {state.late_since.isoformat()} and has "
        f"not run within its misfire grace of {grace} s. Is a scheduler running? "
        "`python manage.py scheduler status` tells.\n\n"
        f"Job: {_admin_link('django_apscheduler_djangojob_change', state.id)}\n\n"
        "You get one more mail when it is back on time.",
    )


def _no_longer_late(state: JobState, was_due: datetime) -> tuple[str, str]:
    now_what = (
        f"Its next run is at {state.next_run.isoformat()}."
        if state.next_run is not None
        else "It is paused."
    )
    return (
        f"Scheduled job {state.id} is on time again",
        f"The scheduled job {state.id}, late for its fire of {was_due.isoformat()}, is no "
        f"longer late. {now_what}\n\n"
        f"Job: {_admin_link('django_apscheduler_djangojob_change', state.id)}",
    )


def _admin_link(url_name: str, pk) -> str:
    path = reverse(f"admin:{url_name}", args=[pk])
    if settings.SITE_URL:
        return settings.SITE_URL.rstrip("/") + path
    return f"{path} (set SITE_URL for a full link)"
