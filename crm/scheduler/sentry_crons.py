"""Sentry Crons check-ins around each run, when sentry-sdk is installed and
set up with a DSN (SENTRY_DSN, config/settings.py), unless SENTRY_CRONS is off.

A run checks in `in_progress` as it starts and `ok` or `error`, with its
duration, as it ends, under the job's id as the monitor slug; each check-in
carries the job's schedule (monitor_config), so Sentry creates the monitor
itself. A fire waiting for another attempt has not ended: its next attempt in
this process goes on with the same check-in, and the fire's last attempt closes
it, as with pings (crm.scheduler.pings).

sentry-sdk is optional: it is imported only here, inside the functions. It
queues what it sends for its own background thread, so a check-in never holds
a run up, and nothing it raises reaches the run: a check-in that cannot be
made is logged once, and once more when one can be made again.
"""

import logging
import math
import threading
import time
from dataclasses import dataclass

from django.conf import settings

from crm.scheduler.crontab import MACROS
from crm.scheduler.declarations import JobDeclaration, declared_job

logger = logging.getLogger("crm.scheduler")
IN_PROGRESS, OK, ERROR = "in_progress", "ok", "error"
# The check-ins of retried fires kept for their next attempt, at most: a fire
# whose next attempt runs in another process (or never) is not kept forever.
MAX_OPEN = 1000
# Sentry's own margin (minutes), and its max runtime for a job without a timeout.
MARGIN_MINUTES = 1
DEFAULT_RUNTIME_MINUTES = 30


@dataclass
class OpenCheckIn:
    check_in_id: str
    started: float  # time.monotonic() as the fire's first attempt started
    retried: bool = False


class SentryCheckIns:
    """The check-ins open in this process, by run (history row); one per
    process, made in CrmConfig.ready() and used by crm.scheduler.receivers."""

    def __init__(self):
        self._open: dict[int, OpenCheckIn] = {}
        self._lock = threading.Lock()
        self._failing = False

    def started(self, job_id: str, execution_id: int) -> None:
        self._safely(job_id, self._started, job_id, execution_id)

    def finished(self, job_id: str, execution_id: int, status: str, duration: float) -> None:
        self._safely(job_id, self._finished, job_id, execution_id, status, duration)

    def _safely(self, job_id, step, *args) -> None:
        """Nothing raised here reaches the run (the signals are sent unguarded)."""
        try:
            step(*args)
        except Exception as error:
            self._note(job_id, f"{type(error).__name__}: {error}")

    def _started(self, job_id: str, execution_id: int) -> None:
        sdk = active_sdk()
        if sdk is None:
            return
        with self._lock:
            going_on = self._open.get(execution_id)
        if going_on is not None:
            return  # a retry: the fire's check-in is in progress already
        check_in_id = self._capture(sdk, job_id, IN_PROGRESS)
        if check_in_id is None:
            return
        with self._lock:
            self._open[execution_id] = OpenCheckIn(check_in_id, time.monotonic())
            while len(self._open) > MAX_OPEN:
                del self._open[next(iter(self._open))]

    def _finished(self, job_id: str, execution_id: int, status: str, duration: float) -> None:
        with self._lock:
            check_in = self._open.get(execution_id)
            if check_in is not None and status == "retrying":
                check_in.retried = True
            elif check_in is not None:
                del self._open[execution_id]
        sdk = active_sdk()
        if check_in is None or status == "retrying" or sdk is None:
            return
        if check_in.retried:  # the fire's whole span, waits between attempts included
            duration = time.monotonic() - check_in.started
        outcome = OK if status == "succeeded" else ERROR
        self._capture(sdk, job_id, outcome, check_in.check_in_id, duration)

    def open_count(self) -> int:
        with self._lock:
            return len(self._open)

    def _capture(self, sdk, job_id, status, check_in_id=None, duration=None) -> str | None:
        """The check-in's id, or None if it could not be made (logged once)."""
        try:
            declaration = declared_job(job_id)
            config = monitor_config(declaration) if declaration is not None else None
            made = sdk.crons.capture_checkin(
                monitor_slug=job_id,
                status=status,
                check_in_id=check_in_id,
                duration=duration,
                monitor_config=config,
            )
        except Exception as error:
            made, problem = None, f"{type(error).__name__}: {error}"
        else:
            problem = None if made else "sentry-sdk dropped it"
        self._note(job_id, problem)
        return made

    def _note(self, job_id: str, problem: str | None) -> None:
        with self._lock:
            was_failing, self._failing = self._failing, problem is not None
        if problem is not None and not was_failing:
            logger.warning(
                "job %s's Sentry check-in could not be made: %s; not logged again until one is",
                job_id,
                problem,
            )
        elif problem is None and was_failing:
            logger.info("Sentry check-ins are made again (job %s)", job_id)


def active_sdk():
    """The sentry_sdk module when check-ins are to be made: installed,
    initialised with a DSN, and SENTRY_CRONS on; else None."""
    if not getattr(settings, "SENTRY_CRONS", True):
        return None
    try:
        import sentry_sdk
        import sentry_sdk.crons
    except ImportError:
        return None
    client = sentry_sdk.get_client()
    if not client.is_active() or client.parsed_dsn is None:  # no DSN, or closed
        return None
    return sentry_sdk


def monitor_config(declaration: JobDeclaration) -> dict | None:
    """The monitor Sentry creates for the job: its schedule, how late a
    check-in may be, and how long a fire may take. None for a one-shot job,
    which has no schedule for Sentry to expect."""
    if declaration.run_at is not None:
        return None
    if declaration.interval_seconds is not None:
        schedule = interval_schedule(declaration.interval_seconds)
    else:
        cron = " ".join(str(declaration.cron).split())
        schedule = {"type": "crontab", "value": MACROS.get(cron.lower(), cron)}
    config = {
        "schedule": schedule,
        "timezone": declaration.zone,
        # Jitter starts a fire up to jitter_seconds late, on purpose.
        "checkin_margin": MARGIN_MINUTES + math.ceil(declaration.jitter_seconds / 60),
    }
    runtime = max_runtime_minutes(declaration)
    if runtime is not None:
        config["max_runtime"] = runtime
    return config


def interval_schedule(seconds: float) -> dict:
    """In the largest unit that divides it; under Sentry's smallest unit, the
    minute, or not a whole number of minutes: rounded up to minutes, so that
    the job checks in at least as often as Sentry expects."""
    for unit, size in (("day", 86400), ("hour", 3600)):
        if seconds >= size and seconds % size == 0:
            return {"type": "interval", "value": int(seconds // size), "unit": unit}
    return {"type": "interval", "value": max(1, math.ceil(seconds / 60)), "unit": "minute"}


def max_runtime_minutes(declaration: JobDeclaration) -> int | None:
    """How long a fire's check-in may stay in progress: its attempts, each up
    to its timeout (30 minutes without one), and the longest waits between
    them, and a minute for an isolated run's start-up and the check-in's trip.
    None (Sentry's default) for a job with neither timeout nor retries."""
    if declaration.timeout_seconds is None and not declaration.retries:
        return None
    attempt = declaration.timeout_seconds or DEFAULT_RUNTIME_MINUTES * 60
    waits = sum(
        min(
            (declaration.retry_backoff_seconds or 0) * 2**number,
            declaration.retry_backoff_max_seconds,
        )
        for number in range(declaration.retries)
    )
    return math.ceil((attempt * (declaration.retries + 1) + waits) / 60) + 1
