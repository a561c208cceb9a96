"""System checks for the job declarations (`python manage.py check`).

With any of these errors the scheduler does not start; the web app still serves.
Warnings (crm.W0xx) say what runs differently from what was probably meant.
"""

import re
import zoneinfo
from dataclasses import fields
from datetime import datetime

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.utils import timezone
from django.utils.module_loading import import_string

from crm.scheduler.crontab import QUOTE_LIMIT, CronSyntaxError, parse, quoted, shortened
from crm.scheduler.declarations import (
    BUILTIN_SETTINGS,
    JobDeclaration,
    builtin_jobs,
    declared_jobs,
    exception_class,
)
from crm.scheduler.overlap import ALLOW, POLICIES
from crm.scheduler.pings import url_problem

DECLARATION_FIELDS = {f.name for f in fields(JobDeclaration)}
# Letters, digits and _ - . only: the product keeps keys with ':' (such as
# "scheduler:stalled") for itself, next to the job ids.
JOB_ID = re.compile(r"[A-Za-z0-9_.-]+")
JOB_ID_MAX_LENGTH = 255  # django_apscheduler's DjangoJob.id column
MIN_INTERVAL_SECONDS = 1


@register("crm")
def check_job_declarations(app_configs=None, **kwargs) -> list[Error]:
    errors = declaration_errors()
    return errors or declaration_warnings()


def declaration_warnings() -> list[Warning]:
    """For declarations without errors."""
    warnings = []
    for declaration in declared_jobs().values():
        run_at = declaration.run_at_time
        if run_at is not None and run_at < timezone.now():
            warnings.append(
                Warning(
                    f"Job {quoted(declaration.id)}: run_at {quoted(declaration.run_at)} has "
                    "passed.",
                    hint="It runs only if no run of it is recorded yet and a scheduler is "
                    f"active within its misfire grace ({declaration.misfire_grace_seconds} s) "
                    "of that time; remove the declaration once it has run.",
                    id="crm.W002",
                )
            )
    return warnings


def declaration_errors() -> list[Error]:
    errors, seen = [], set()
    entries = [*builtin_jobs(), *getattr(settings, "SCHEDULER_JOBS", [])]
    for position, entry in enumerate(entries):
        declaration, entry_errors = _as_declaration(entry, position)
        errors += entry_errors
        if declaration is None:
            continue
        errors += _id_errors(declaration.id, seen)
        errors += _function_errors(declaration) + _trigger_errors(declaration)
        errors += _url_errors(declaration)
    return errors


def _error(code, job_id, field_name, problem, fix) -> Error:
    return Error(f"Job {quoted(job_id)}: {field_name} {problem}.", hint=fix, id=f"crm.{code}")


def _id_errors(job_id, seen: set[str]) -> list[Error]:
    if not isinstance(job_id, str):
        return [_bad_id(job_id, f"must be text, not {type(job_id).__name__}")]
    errors = []
    if not JOB_ID.fullmatch(job_id):
        errors.append(_bad_id(job_id, "may hold only letters, digits, '_', '-' and '.'"))
    if len(job_id) > JOB_ID_MAX_LENGTH:
        errors.append(
            _error(
                "E012",
                job_id,
                "id",
                f"is {len(job_id)} characters long; the job store keeps at most "
                f"{JOB_ID_MAX_LENGTH}",
                f"Use an id of {JOB_ID_MAX_LENGTH} characters or fewer.",
            )
        )
    if job_id in seen:
        errors.append(
            _error("E002", job_id, "id", "is declared twice", "Give each job its own id.")
        )
    seen.add(job_id)
    return errors


def _bad_id(job_id, problem) -> Error:
    fix = 'Name the job with letters, digits, "_", "-" and ".", e.g. "billing.nightly_sync".'
    return _error("E011", job_id, "id", problem, fix)


def _as_declaration(entry, position):
    if isinstance(entry, JobDeclaration):
        return entry, []
    label = (
        entry.get("id", f"#{position + 1} in SCHEDULER_JOBS")
        if isinstance(entry, dict)
        else f"#{position + 1}"
    )
    if not isinstance(entry, dict):
        return None, [
            _error(
                "E001",
                label,
                "declaration",
                "is not a dict",
                "Write each job in SCHEDULER_JOBS as a dict.",
            )
        ]
    unknown = sorted(set(entry) - DECLARATION_FIELDS)
    missing = sorted({"id", "func"} - set(entry))
    if unknown or missing:
        problem = f"has unknown keys {unknown}" if unknown else f"lacks {missing}"
        keys = ", ".join(sorted(DECLARATION_FIELDS))
        fix = f"Use only these keys: {keys}; id and func are required."
        return None, [_error("E001", label, "declaration", problem, fix)]
    return JobDeclaration(**entry), []


def _function_errors(declaration) -> list[Error]:
    fix = "Give the dotted path of a function, e.g. crm.jobs.auto_close_resolved_tickets."
    if not isinstance(declaration.func, str):
        return [_error("E003", declaration.id, "func", f"is {quoted(declaration.func)}", fix)]
    try:
        func = import_string(declaration.func)
    except ImportError as error:
        # The error repeats the path, or names a module the function's module imports.
        because = shortened(str(error), limit=2 * QUOTE_LIMIT)
        return [
            _error(
                "E003",
                declaration.id,
                "func",
                f"{quoted(declaration.func)} cannot be imported ({because})",
                fix,
            )
        ]
    if not callable(func):
        return [
            _error(
                "E004",
                declaration.id,
                "func",
                f"{quoted(declaration.func)} is not callable",
                "Point func at a function.",
            )
        ]
    return []


def _trigger_errors(declaration) -> list[Error]:
    errors = []
    has_cron, has_interval = declaration.cron is not None, declaration.interval_seconds is not None
    has_run_at = declaration.run_at is not None
    if has_cron + has_interval + has_run_at != 1:
        errors.append(
            _error(
                "E005",
                declaration.id,
                "trigger",
                "needs exactly one of cron, interval_seconds and run_at",
                'Set cron="0 2 * * *", interval_seconds=60 or run_at="2026-12-24T08:00+01:00".',
            )
        )
    if has_run_at:
        errors += _run_at_errors(declaration)
    if has_interval:
        errors += _interval_errors(declaration)
    if has_cron:
        try:
            parse(declaration.cron)
        except CronSyntaxError as error:
            variable = BUILTIN_SETTINGS.get(declaration.id, (None,))[0]
            where = f"Set {variable} to" if variable else "Use"
            errors.append(
                _error(
                    "E006",
                    declaration.id,
                    "cron",
                    f"{quoted(declaration.cron)} is malformed: {error}",
                    f"{where} 5 fields: minute hour day-of-month month day-of-week, "
                    'e.g. "0 2 * * *" for 02:00 every day.',
                )
            )
    if declaration.timezone is not None:
        try:
            zoneinfo.ZoneInfo(declaration.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            errors.append(
                _error(
                    "E007",
                    declaration.id,
                    "timezone",
                    f"{quoted(declaration.timezone)} is not a known time zone",
                    "Use an IANA name such as Europe/Warsaw, or leave it out to use TIME_ZONE.",
                )
            )
    errors += _jitter_errors(declaration) + _timeout_errors(declaration)
    errors += _retry_errors(declaration) + _overlap_errors(declaration)
    if not _positive_number(declaration.misfire_grace_seconds):
        errors.append(
            _error(
                "E009",
                declaration.id,
                "misfire_grace_seconds",
                f"is {quoted(declaration.misfire_grace_seconds)}",
                "Use a whole number of seconds greater than 0.",
            )
        )
    return errors


def _interval_errors(declaration) -> list[Error]:
    seconds = declaration.interval_seconds
    fix = f"Use a number of seconds, {MIN_INTERVAL_SECONDS} or more."
    if not _positive_number(seconds):
        return [_error("E008", declaration.id, "interval_seconds", f"is {quoted(seconds)}", fix)]
    if seconds < MIN_INTERVAL_SECONDS:
        # Each run takes database queries and a row in the run history.
        problem = f"is {quoted(seconds)}, below the floor of {MIN_INTERVAL_SECONDS} second"
        return [_error("E010", declaration.id, "interval_seconds", problem, fix)]
    return []


def _run_at_errors(declaration) -> list[Error]:
    fix = 'Write an ISO 8601 time with its zone, e.g. run_at="2026-12-24T08:00+01:00".'
    try:
        run_at = datetime.fromisoformat(declaration.run_at)
    except (TypeError, ValueError):
        problem = f"is {quoted(declaration.run_at)}, not an ISO 8601 time"
        return [_error("E014", declaration.id, "run_at", problem, fix)]
    if run_at.tzinfo is None:
        problem = f"is {quoted(declaration.run_at)}, without a time zone"
        return [_error("E014", declaration.id, "run_at", problem, fix)]
    return []


def _jitter_errors(declaration) -> list[Error]:
    jitter = declaration.jitter_seconds
    if jitter == 0:
        return []
    fix = "Use a number of seconds greater than 0, or leave it out for no jitter."
    if not _positive_number(jitter):
        return [_error("E013", declaration.id, "jitter_seconds", f"is {quoted(jitter)}", fix)]
    interval = declaration.interval_seconds
    if _positive_number(interval) and jitter >= interval:
        problem = f"is {quoted(jitter)}, not less than its interval of {quoted(interval)} s"
        fix = "Use a jitter shorter than the interval, or a longer interval."
        return [_error("E013", declaration.id, "jitter_seconds", problem, fix)]
    return []


def _timeout_errors(declaration) -> list[Error]:
    timeout = declaration.timeout_seconds
    if timeout is None or _positive_number(timeout):
        return []
    return [
        _error(
            "E015",
            declaration.id,
            "timeout_seconds",
            f"is {quoted(timeout)}",
            "Use a number of seconds greater than 0, or leave it out for no timeout "
            "(the job then runs in a thread, not a process of its own).",
        )
    ]


def _retry_errors(declaration) -> list[Error]:
    retries, backoff = declaration.retries, declaration.retry_backoff_seconds
    if retries == 0 and backoff is None and not declaration.retry_on:
        return []
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        fix = "Use a whole number of retries: 0 (the default) for none, 3 for three more attempts."
        return [_error("E016", declaration.id, "retries", f"is {quoted(retries)}", fix)]
    if retries == 0:
        problem = "is 0, yet a backoff or retry_on is declared"
        fix = "Set retries to how many times a failed run is tried again, or leave out the rest."
        return [_error("E016", declaration.id, "retries", problem, fix)]
    if backoff is None:
        problem = f"is {retries} without a retry_backoff_seconds"
        fix = "Set retry_backoff_seconds, the wait before the first retry (it doubles after)."
        return [_error("E016", declaration.id, "retries", problem, fix)]
    errors = []
    longest = declaration.retry_backoff_max_seconds
    for name, value in (("retry_backoff_seconds", backoff), ("retry_backoff_max_seconds", longest)):
        if not _positive_number(value):
            fix = "Use a number of seconds greater than 0."
            errors.append(_error("E017", declaration.id, name, f"is {quoted(value)}", fix))
    if not errors and longest < backoff:
        problem = f"is {quoted(longest)}, shorter than retry_backoff_seconds ({quoted(backoff)})"
        fix = "Use a maximum wait at least as long as the first."
        errors.append(_error("E017", declaration.id, "retry_backoff_max_seconds", problem, fix))
    return errors + _retry_on_errors(declaration)


def _retry_on_errors(declaration) -> list[Error]:
    retry_on = declaration.retry_on
    fix = 'List dotted names of exception classes, e.g. ["smtplib.SMTPException"].'
    if isinstance(retry_on, str) or not isinstance(retry_on, list | tuple):
        return [_error("E018", declaration.id, "retry_on", f"is {quoted(retry_on)}", fix)]
    errors = []
    for name in retry_on:
        if not isinstance(name, str):
            errors.append(_error("E018", declaration.id, "retry_on", f"holds {quoted(name)}", fix))
            continue
        try:
            exception_class(name)
        except ImportError:
            problem = f"names {quoted(name)}, which cannot be imported"
            errors.append(_error("E018", declaration.id, "retry_on", problem, fix))
        except TypeError:
            problem = f"names {quoted(name)}, which is not an exception class"
            errors.append(_error("E018", declaration.id, "retry_on", problem, fix))
    return errors


def _overlap_errors(declaration) -> list[Error]:
    policy, limit = declaration.overlap, declaration.max_concurrent
    if policy not in POLICIES:
        fix = f"Use one of {', '.join(POLICIES)} (skip is the default)."
        return [_error("E019", declaration.id, "overlap", f"is {quoted(policy)}", fix)]
    if policy != ALLOW:
        if limit is None:
            return []
        problem = f"is {quoted(limit)}, but overlap is {quoted(policy)}"
        fix = 'Set overlap="allow" to let runs go on side by side, or leave max_concurrent out.'
        return [_error("E020", declaration.id, "max_concurrent", problem, fix)]
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 2:
        problem = f"is {quoted(limit)}" if limit is not None else 'is missing with overlap="allow"'
        fix = "Give the most runs that may go on at once: a whole number, 2 or more."
        return [_error("E020", declaration.id, "max_concurrent", problem, fix)]
    return []


def _url_errors(declaration) -> list[Error]:
    # The URL itself is not quoted: ping keys and webhook tokens are part of it.
    fixes = {
        "ping_url": "Use the check's ping URL, e.g. https://hc-ping.com/<uuid>, or leave it out.",
        "alert_webhook_url": "Use the webhook's https:// URL, or leave it out to use "
        "ALERT_WEBHOOK_URL.",
    }
    errors = []
    for name, fix in fixes.items():
        url = getattr(declaration, name)
        problem = url_problem(url) if url not in (None, "") else None
        if problem:
            errors.append(_error("E021", declaration.id, name, problem, fix))
    return errors


def _positive_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
