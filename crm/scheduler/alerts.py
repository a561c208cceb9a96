"""Alerts when a job becomes failing or late, and when it recovers: mailed to
ADMINS and posted to the alert webhook (crm.scheduler.alert_routes), once per
transition, whichever process notices it first.

What was last told about a job is one row (JobAlert). A process that
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
from django.urls import reverse
from django.utils import timezone

from crm.scheduler import alert_routes
from crm.scheduler.alert_routes import Alert
from crm.scheduler.connections import CONNECTION_ERRORS, drop_connection
from crm.scheduler.lease import LEASE_NAME, lease_row
from crm.scheduler.models import JobAlert
from crm.scheduler.status import JobState, active_scheduler, job_states

logger = logging.getLogger("crm.scheduler")


def check(job_ids: list[str] | None = None, now: datetime | None = None) -> list[str]:
    """Tell ADMINS and the webhooks about each transition since the last check
    (of any process); returns the subjects of the alerts sent."""
    if not alert_routes.any_route():
        return []
    states = job_states(now, job_ids=job_ids)
    # A job nobody would be told about keeps its row as it is, for when someone is.
    routed = [state for state in states if alert_routes.has_route(state.declaration)]
    told = _alert_rows([state.id for state in routed] + [STALLED, ABSENT])
    alerts = [
        (alert, alert_routes.webhook_url(state.declaration))
        for state in routed
        for alert in _transitions(state, told[state.id])
    ]
    if job_ids is None and alert_routes.has_route():  # the periodic check, not the one after a run
        alerts += [
            (alert, alert_routes.webhook_url()) for alert in _scheduler_transitions(states, told)
        ]
    for alert, webhook in alerts:
        alert_routes.deliver(alert, webhook)
    return [alert.subject for alert, _ in alerts]


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
            yield _scheduler_alert(key, True, since, active)
        elif since is None and row.late_since is not None:
            was = row.late_since
            if _claim(row, "late_since", None):
                yield _scheduler_alert(key, False, was, active)


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


# The alerts as a scheduler problem begins and as it ends: state, subject and
# mail body; {since}: when it began, {who}: the active scheduler.
SCHEDULER_MAILS = {
    STALLED: (
        (
            "stalled",
            "The scheduler is stalled",
            "The active scheduler ({who}) holds the lease but has dispatched nothing "
            "since {since}: no scheduled job runs. Its log (grep scheduler "
            "logs/django.log) says why; restarting that process hands the lease to "
            "another. `python manage.py scheduler status` tells.\n\n"
            "You get one more mail when a scheduler dispatches again.",
        ),
        (
            "dispatching",
            "The scheduler dispatches again",
            "The scheduler, stalled since {since}, is no longer stalled ({who}).",
        ),
    ),
    ABSENT: (
        (
            "no_scheduler",
            "No scheduler is running",
            "No scheduler has held the lease since {since}: scheduled jobs are not "
            "running. Start one (a web process with ENABLE_SCHEDULER on, or "
            "`python manage.py runscheduler`); `python manage.py scheduler status` tells."
            "\n\nYou get one more mail when a scheduler is active again.",
        ),
        (
            "scheduler_active",
            "A scheduler is running again",
            "A scheduler is active again ({who}); none was since {since}.",
        ),
    ),
}


def _scheduler_alert(key: str, began: bool, since, active) -> Alert:
    state, subject, body = SCHEDULER_MAILS[key][0 if began else 1]
    who = f"host {active.host}, pid {active.pid}" if active else "none is active now"
    return Alert(
        job=None,
        state=state,
        subject=subject,
        message=body.format(since=since.isoformat(), who=who),
        summary=f"{'since' if began else 'it began at'} {since.isoformat()} ({who})",
        admin_url=_admin_url("django_apscheduler_djangojob_changelist"),
        details={"since": since.isoformat(), "active_scheduler": who if active else None},
    )


def _alert_rows(job_ids: list[str]) -> dict[str, JobAlert]:
    rows = {row.job_id: row for row in JobAlert.objects.filter(job_id__in=job_ids)}
    missing = [JobAlert(job_id=job_id) for job_id in job_ids if job_id not in rows]
    if missing:
        JobAlert.objects.bulk_create(missing, ignore_conflicts=True)
        rows = {row.job_id: row for row in JobAlert.objects.filter(job_id__in=job_ids)}
    return rows


def _transitions(state: JobState, told: JobAlert):
    for field, new_value, alert in _changes(state, told):
        if _claim(told, field, new_value):
            yield alert


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


def _failing(state: JobState, run) -> Alert:
    error = run.exception or "(no error recorded)"
    run_url = _admin_url("django_apscheduler_djangojobexecution_change", run.pk)
    return _job_alert(
        state,
        "failing",
        f"Scheduled job {state.id} is failing",
        f"The scheduled job {state.id} failed in its run for "
        f"{run.run_time.isoformat()}:\n\n{error}\n\n{run.traceback or ''}\n"
        f"Run: {_admin_link('django_apscheduler_djangojobexecution_change', run.pk)}\n"
        f"Job: {_job_link(state)}\n\n"
        "You get one more mail when it succeeds again, none for each failure meanwhile.",
        summary=error.strip().splitlines()[0] if error.strip() else error,
        details={"error": run.exception, "run_time": run.run_time.isoformat(), "run_url": run_url},
    )


def _recovered_from_failing(state: JobState) -> Alert:
    run = state.last_finished
    outcome = (
        f"Its run for {run.run_time.isoformat()} succeeded."
        if run is not None
        else "Its failed runs are no longer in the history."
    )
    return _job_alert(
        state,
        "recovered",
        f"Scheduled job {state.id} recovered",
        f"The scheduled job {state.id} is no longer failing. {outcome}\n\nJob: {_job_link(state)}",
        summary=outcome,
    )


def _late(state: JobState) -> Alert:
    grace = int(state.declaration.misfire_grace.total_seconds())
    due = state.late_since.isoformat()
    return _job_alert(
        state,
        "late",
        f"Scheduled job {state.id} is late",
        f"The scheduled job {state.id} was due at {due} and has "
        f"not run within its misfire grace of {grace} s. Is a scheduler running? "
        "`python manage.py scheduler status` tells.\n\n"
        f"Job: {_job_link(state)}\n\n"
        "You get one more mail when it is back on time.",
        summary=f"due at {due}, not run within its misfire grace of {grace} s",
        details={"late_since": due, "misfire_grace_seconds": grace},
    )


def _no_longer_late(state: JobState, was_due: datetime) -> Alert:
    now_what = (
        f"Its next run is at {state.next_run.isoformat()}."
        if state.next_run is not None
        else "It is paused."
    )
    return _job_alert(
        state,
        "on_time",
        f"Scheduled job {state.id} is on time again",
        f"The scheduled job {state.id}, late for its fire of {was_due.isoformat()}, is no "
        f"longer late. {now_what}\n\n"
        f"Job: {_job_link(state)}",
        summary=now_what,
        details={
            "late_since": was_due.isoformat(),
            "next_run": state.next_run.isoformat() if state.next_run else None,
        },
    )


def _job_alert(state, what, subject, message, summary, details=None) -> Alert:
    return Alert(
        job=state.id,
        state=what,
        subject=subject,
        message=message,
        summary=summary,
        admin_url=_admin_url("django_apscheduler_djangojob_change", state.id),
        details=details or {},
    )


def _job_link(state: JobState) -> str:
    return _admin_link("django_apscheduler_djangojob_change", state.id)


def _admin_link(url_name: str, pk) -> str:
    """For mail: the admin page's address, or its path with a hint."""
    if settings.SITE_URL:
        return _admin_url(url_name, pk)
    return f"{_admin_url(url_name, pk)} (set SITE_URL for a full link)"


def _admin_url(url_name: str, *args) -> str:
    path = reverse(f"admin:{url_name}", args=args)
    return settings.SITE_URL.rstrip("/") + path if settings.SITE_URL else path
