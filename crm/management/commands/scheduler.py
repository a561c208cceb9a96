import argparse
import json
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError
from django.utils import timezone

from crm.scheduler import backfill, control, serializers, status
from crm.scheduler.connections import database_reachable, describe
from crm.scheduler.crontab import CronSyntaxError, CrontabTrigger, quoted
from crm.scheduler.history import RUNNING, detail_of
from crm.scheduler.models import JobPause

NOTE_LENGTH = JobPause._meta.get_field("note").max_length

ACTIONS = {
    "status": "The active scheduler and each job's state; exits 1 when something is wrong.",
    "list": "The declared jobs and their schedules.",
    "run": "Run a job now in the active scheduler (or --here, in this process).",
    "pause": "Stop running a job until resumed.",
    "resume": "Run a paused job again.",
    "skip": "Skip only the next fire of a job.",
    "backfill": "Run, in this process, the past fires of a range that never ran.",
    "sync": "Make the job store match the declared jobs.",
    "preview": "Print the next fire times of a cron expression.",
}


class Command(BaseCommand):
    help = "Operate the job scheduler: " + "; ".join(f"{a}: {t}" for a, t in ACTIONS.items())

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = {name: actions.add_parser(name, help=text) for name, text in ACTIONS.items()}
        for name in ("status", "list"):
            add[name].add_argument(
                "--json", dest="as_json", action="store_true", help="Print JSON for scripts."
            )
        for name in ("run", "pause", "resume", "skip", "backfill"):
            add[name].add_argument("job_id", metavar="JOB")
        add["run"].add_argument(
            "--here", action="store_true", help="Run it in this process instead."
        )
        add["run"].add_argument(
            "--timeout",
            type=float,
            default=600,
            help="Seconds to wait for the run's outcome (default 600).",
        )
        add["pause"].add_argument(
            "--until",
            type=_future_time,
            help="Resume it by itself at this time: ISO 8601, e.g. 2026-12-24T08:00 "
            "(in TIME_ZONE unless it names its own zone, e.g. 2026-12-24T08:00+01:00).",
        )
        add["pause"].add_argument(
            "--note", default="", help="Why, shown in status, the admin and health details."
        )
        for option, which in (("--from", "first"), ("--to", "last")):
            add["backfill"].add_argument(
                option,
                dest=option[2:] + "_time",
                required=True,
                type=_iso_time,
                help=f"The range's {which} fire time, ISO 8601 (in TIME_ZONE unless it "
                "names its own zone).",
            )
        add["backfill"].add_argument(
            "--dry-run", action="store_true", help="List the fires it would run; run nothing."
        )
        add["backfill"].add_argument(
            "--force",
            action="store_true",
            help="Also for a job that does not take its fire time, or more than "
            f"{backfill.MAX_FIRES:,} fires.",
        )
        add["sync"].add_argument(
            "--dry-run", action="store_true", help="Say what would change; change nothing."
        )
        add["preview"].add_argument("expression", metavar="EXPR", help='e.g. "0 2 * * *"')
        add["preview"].add_argument("--tz", default=None, help="Time zone (default: TIME_ZONE).")
        add["preview"].add_argument(
            "-n", type=int, default=10, help="How many fire times (default 10)."
        )

    def handle(self, *args, action, **options):
        try:
            getattr(self, f"handle_{action}")(**options)
        except control.ControlError as error:
            raise CommandError(str(error)) from None
        except DatabaseError as error:
            if not database_reachable():
                raise CommandError(
                    f"The database is unreachable: {describe(error)}. Nothing is known "
                    "about the scheduler meanwhile. Check that the database server is "
                    "running and DATABASE_URL points at it."
                ) from None
            raise CommandError(
                f"The database is not ready: {describe(error)}. "
                "Check DATABASE_URL and run `python manage.py migrate`."
            ) from None

    def handle_status(self, as_json, **options):
        now = timezone.now()
        active, jobs = status.active_scheduler(now), status.job_states(now)
        if as_json:
            self._print_json(
                serializers.scheduler_state(active, jobs, status.problems(active, jobs))
            )
        else:
            self._print_active(active, jobs)
            for job in jobs:
                self._print_job_state(job, now)
        problems = status.problems(active, jobs)
        if problems:
            raise CommandError("; ".join(problems) + ".", returncode=1)

    def handle_list(self, as_json, **options):
        jobs = status.job_states()
        if as_json:
            self._print_json([serializers.job_listing(job) for job in jobs])
            return
        for job in jobs:
            declaration = job.declaration
            if declaration is None:
                self.stdout.write(f"{job.id}  (in the job store, no longer declared)")
                continue
            state = _listing_state(job)
            self.stdout.write(
                f"{job.id}  {declaration.schedule}  ({declaration.describe_schedule()})  "
                f"[{state}]  {declaration.func}\n    {declaration.describe_policy()}"
            )

    def handle_run(self, job_id, here, timeout, **options):
        requested_by = control.on_the_command_line()
        if here:
            try:
                result = control.run_here(job_id, requested_by)
            except (control.ControlError, CommandError):
                raise
            except Exception as error:
                raise CommandError(
                    f"{job_id} failed: {type(error).__name__}: {error} "
                    "(traceback in the run history and the log)."
                ) from None
            self.stdout.write(self.style.SUCCESS(f"{job_id} succeeded: {result!r}"))
            return
        command = control.run_now(job_id, requested_by, wait=timeout)
        if command.finished_at is None:
            raise CommandError(
                f"{job_id} did not finish within {timeout:g} s"
                + (" (it is running; see `scheduler status`)." if command.taken_at else ".")
            )
        if not command.succeeded:
            raise CommandError(f"{job_id}: {command.outcome}")
        result = command.execution.detail.result if command.execution else None
        self.stdout.write(
            self.style.SUCCESS(f"{job_id} succeeded in the active scheduler: {result!r}")
        )

    def handle_pause(self, job_id, until, note, **options):
        if len(note) > NOTE_LENGTH:
            raise CommandError(f"--note is {len(note)} characters; at most {NOTE_LENGTH} fit.")
        outcome = control.pause_job(job_id, control.on_the_command_line(), until=until, note=note)
        self.stdout.write(self.style.SUCCESS(f"Paused {job_id}: {outcome}."))

    def handle_backfill(self, job_id, from_time, to_time, dry_run, force, **options):
        span = f"from {from_time.isoformat()} to {to_time.isoformat()}"
        try:
            if dry_run:
                plan = backfill.plan(job_id, from_time, to_time, force=force)
            else:
                plan, outcomes = control.backfill_here(
                    job_id,
                    from_time,
                    to_time,
                    control.on_the_command_line() + " (backfill)",
                    force=force,
                    progress=lambda fire, outcome: self.stdout.write(
                        f"  {fire.isoformat()}  {outcome}"
                    ),
                )
        except backfill.BackfillRefused as error:
            raise CommandError(str(error)) from None
        already = f"{plan.already_run:,} already run"
        if dry_run:
            self.stdout.write(
                f"Would run {len(plan.fires):,} fires of {job_id} {span} ({already}; "
                "dry run: nothing run)."
            )
            for fire in plan.fires:
                self.stdout.write(f"  {fire.isoformat()}")
            return
        failed = sum(outcome.startswith("failed") for _, outcome in outcomes)
        summary = f"Backfilled {job_id} {span}: ran {len(outcomes):,} fires ({already})"
        if failed:
            raise CommandError(f"{summary}; {failed:,} failed (see the run history).")
        self.stdout.write(self.style.SUCCESS(summary + "."))

    def handle_skip(self, job_id, **options):
        outcome = control.skip_next_fire(job_id, control.on_the_command_line())
        self.stdout.write(self.style.SUCCESS(f"Skipped {job_id}: {outcome}."))

    def handle_resume(self, job_id, **options):
        outcome = control.resume_job(job_id, control.on_the_command_line())
        next_run = next(job.next_run for job in status.job_states() if job.id == job_id)
        when = next_run.isoformat() if next_run else "unknown"
        self.stdout.write(self.style.SUCCESS(f"Resumed {job_id}: {outcome}; next run {when}."))

    def handle_sync(self, dry_run, **options):
        report = control.sync(control.on_the_command_line(), dry_run=dry_run)
        changes = [
            ("create", "Created", report.created),
            ("update", "Updated", report.updated),
            ("remove", "Removed", report.removed),
        ]
        for verb, past, job_ids in changes:
            for job_id in job_ids:
                self.stdout.write(f"Would {verb}: {job_id}" if dry_run else f"{past}: {job_id}")
        count = sum(len(job_ids) for _, _, job_ids in changes)
        if not count:
            self.stdout.write(self.style.SUCCESS("Nothing to change."))
        elif dry_run:
            self.stdout.write(self.style.SUCCESS(f"{count} change(s) found; nothing written."))
        else:
            self.stdout.write(self.style.SUCCESS(f"{count} change(s) made."))

    def handle_preview(self, expression, tz, n, **options):
        zone = tz or settings.TIME_ZONE
        try:
            zone_info = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise CommandError(
                f"--tz {quoted(zone)} is not a known time zone, e.g. Europe/Warsaw."
            ) from None
        try:
            trigger = CrontabTrigger(expression, zone_info)
        except CronSyntaxError as error:
            raise CommandError(f"Cron expression {quoted(expression)} {error}.") from None
        if n < 1:
            raise CommandError("-n must be 1 or more.")
        self.stdout.write(f"{trigger.describe()}, {zone}", self.style.MIGRATE_HEADING)
        for fire in trigger.next_fire_times(n, timezone.now()):
            self.stdout.write(fire.astimezone(trigger.timezone).isoformat())

    def _print_json(self, data) -> None:
        self.stdout.write(json.dumps(data, indent=2, cls=DjangoJSONEncoder))

    def _print_active(self, active, jobs) -> None:
        if active is None:
            self.stdout.write(self.style.ERROR("No scheduler is active."))
            return
        self.stdout.write(
            f"Active scheduler: host {active.host}, pid {active.pid}, "
            f"since {active.since.isoformat()}, heartbeat "
            f"{active.heartbeat_age.total_seconds():.0f} s ago"
        )
        stalled = active.stalled_since(jobs)
        if stalled is not None:
            self.stdout.write(
                self.style.ERROR(
                    f"  STALLED    it holds the lease but has dispatched nothing since "
                    f"{stalled.isoformat(timespec='seconds')}; see its log "
                    "(deploy/troubleshooting.md: the scheduler is stalled)"
                )
            )

    def _print_job_state(self, job, now) -> None:
        self.stdout.write("")
        if job.declaration is None:
            self.stdout.write(self.style.WARNING(f"{job.id}: in the job store, no longer declared"))
            return
        self.stdout.write(self.style.MIGRATE_HEADING(job.id))
        self.stdout.write(
            f"  schedule   {job.declaration.describe_schedule()} ({job.declaration.schedule})"
        )
        self.stdout.write(f"  next run   {_next_run_text(job, now)}")
        if job.pause is not None:
            self.stdout.write(f"  paused     {_pause_text(job.pause)}")
        self.stdout.write(f"  last run   {_last_run_text(job.last_run)}")
        if job.late:
            late = (now - job.late_since).total_seconds()
            self.stdout.write(
                self.style.ERROR(f"  LATE       due {_ago(late)} ago and not run (grace passed)")
            )
        if job.failing:
            self.stdout.write(
                self.style.ERROR(f"  FAILING    {job.last_finished.exception or 'last run failed'}")
            )


def _pause_text(pause) -> str:
    until = f"until {pause.until.isoformat()}" if pause.until else "until resumed"
    note = f": {pause.note}" if pause.note else ""
    return f"{until}, by {pause.by} at {pause.since.isoformat()}{note}"


def _iso_time(text: str):
    """An ISO 8601 time; in TIME_ZONE unless it names its own."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{quoted(text)} is not an ISO 8601 time; write e.g. 2026-12-24T08:00 "
            "or 2026-12-24T08:00+01:00"
        ) from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, ZoneInfo(settings.TIME_ZONE))
    return moment


def _future_time(text: str):
    """An --until argument: an ISO 8601 time in the future."""
    moment = _iso_time(text)
    if moment <= timezone.now():
        raise argparse.ArgumentTypeError(f"{text} is not in the future")
    return moment


def _listing_state(job) -> str:
    if job.done:
        return "done"
    if job.paused:
        return "paused"
    return "enabled" if job.stored else "not synced yet"


def _next_run_text(job, now) -> str:
    if not job.stored:
        return "not in the job store yet (run `scheduler sync`)"
    if job.done:
        return "none: done (its one fire has passed)"
    if job.next_run is None:
        return "paused"
    seconds = (job.next_run - now).total_seconds()
    relative = f"in {_ago(seconds)}" if seconds >= 0 else f"{_ago(-seconds)} ago"
    return f"{job.next_run.isoformat()} ({relative})"


def _last_run_text(execution) -> str:
    if execution is None:
        return "never"
    duration = f", {execution.duration} s" if execution.duration is not None else ""
    by = f", by {execution.detail.triggered_by}" if detail_of(execution) else ""
    state = "running" if execution.status == RUNNING else execution.status
    return f"{execution.run_time.isoformat()} {state}{duration}{by}"


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"
