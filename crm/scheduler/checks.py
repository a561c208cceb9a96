"""System checks for the job declarations (`python manage.py check`).

With any of these errors the scheduler does not start; the web app still serves.
"""

import zoneinfo
from dataclasses import fields

from django.conf import settings
from django.core.checks import Error, register
from django.utils.module_loading import import_string

from crm.scheduler.declarations import BUILTIN_SETTINGS, JobDeclaration, builtin_jobs

DECLARATION_FIELDS = {f.name for f in fields(JobDeclaration)}


@register("crm")
def check_job_declarations(app_configs=None, **kwargs) -> list[Error]:
    return declaration_errors()


def declaration_errors() -> list[Error]:
    errors, seen = [], set()
    entries = [*builtin_jobs(), *getattr(settings, "SCHEDULER_JOBS", [])]
    for position, entry in enumerate(entries):
        declaration, entry_errors = _as_declaration(entry, position)
        errors += entry_errors
        if declaration is None:
            continue
        if declaration.id in seen:
            errors.append(
                _error(
                    "E002", declaration.id, "id", "is declared twice", "Give each job its own id."
                )
            )
        seen.add(declaration.id)
        errors += _function_errors(declaration) + _trigger_errors(declaration)
    return errors


def _error(code, job_id, field_name, problem, fix) -> Error:
    return Error(f"Job {job_id!r}: {field_name} {problem}.", hint=fix, id=f"crm.{code}")


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
    try:
        func = import_string(declaration.func)
    except ImportError as error:
        return [
            _error(
                "E003",
                declaration.id,
                "func",
                f"{declaration.func!r} cannot be imported ({error})",
                "Give the dotted path of a function, e.g. crm.jobs.auto_close_resolved_tickets.",
            )
        ]
    if not callable(func):
        return [
            _error(
                "E004",
                declaration.id,
                "func",
                f"{declaration.func!r} is not callable",
                "Point func at a function.",
            )
        ]
    return []


def _trigger_errors(declaration) -> list[Error]:
    errors = []
    has_cron, has_interval = declaration.cron is not None, declaration.interval_seconds is not None
    if has_cron == has_interval:
        errors.append(
            _error(
                "E005",
                declaration.id,
                "trigger",
                "needs exactly one of cron and interval_seconds",
                'Set cron="0 2 * * *" or interval_seconds=60.',
            )
        )
    if has_interval and not _positive_number(declaration.interval_seconds):
        errors.append(
            _error(
                "E008",
                declaration.id,
                "interval_seconds",
                f"is {declaration.interval_seconds!r}",
                "Use a number of seconds greater than 0.",
            )
        )
    if has_cron:
        from crm.scheduler.crontab import CronSyntaxError, parse

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
                    f"{declaration.cron!r} is malformed: {error}",
                    f"{where} 5 fields: minute hour day-of-month month day-of-week, "
                    'e.g. "0 2 * * *" for 02:00 every day.',
                )
            )
    if declaration.timezone is not None:
        try:
            zoneinfo.ZoneInfo(declaration.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            errors.append(
                _error(
                    "E007",
                    declaration.id,
                    "timezone",
                    f"{declaration.timezone!r} is not a known time zone",
                    "Use an IANA name such as Europe/Warsaw, or leave it out to use TIME_ZONE.",
                )
            )
    if not _positive_number(declaration.misfire_grace_seconds):
        errors.append(
            _error(
                "E009",
                declaration.id,
                "misfire_grace_seconds",
                f"is {declaration.misfire_grace_seconds!r}",
                "Use a whole number of seconds greater than 0.",
            )
        )
    return errors


def _positive_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
