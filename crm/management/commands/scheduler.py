from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from crm.scheduler import control
from crm.scheduler.crontab import CronSyntaxError, CrontabTrigger


class Command(BaseCommand):
    help = (
        "Operate the job scheduler: sync the declared jobs into the store, pause or resume a job."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        sync = actions.add_parser("sync", help="Make the job store match the declared jobs.")
        sync.add_argument(
            "--dry-run", action="store_true", help="Say what would change; change nothing."
        )
        preview = actions.add_parser(
            "preview", help="Print the next fire times of a cron expression."
        )
        preview.add_argument("expression", metavar="EXPR", help='e.g. "0 2 * * *"')
        preview.add_argument("--tz", default=None, help="Time zone (default: TIME_ZONE).")
        preview.add_argument("-n", type=int, default=10, help="How many fire times (default 10).")
        for name, text in [
            ("pause", "Stop running a job until resumed."),
            ("resume", "Run a paused job again."),
        ]:
            action = actions.add_parser(name, help=text)
            action.add_argument("job_id", metavar="JOB")

    def handle(self, *args, action, **options):
        try:
            getattr(self, f"handle_{action}")(**options)
        except control.UnknownJob as error:
            raise CommandError(str(error)) from None

    def handle_sync(self, dry_run, **options):
        report = control.sync(dry_run=dry_run)
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
            trigger = CrontabTrigger(expression, ZoneInfo(zone))
        except CronSyntaxError as error:
            raise CommandError(f"Cron expression {expression!r} {error}.") from None
        except (ZoneInfoNotFoundError, ValueError):
            raise CommandError(
                f"--tz {zone!r} is not a known time zone, e.g. Europe/Warsaw."
            ) from None
        if n < 1:
            raise CommandError("-n must be 1 or more.")
        self.stdout.write(f"{trigger.describe()}, {zone}", self.style.MIGRATE_HEADING)
        for fire in trigger.next_fire_times(n, timezone.now()):
            self.stdout.write(fire.astimezone(trigger.timezone).isoformat())

    def handle_pause(self, job_id, **options):
        control.pause_job(job_id)
        self.stdout.write(
            self.style.SUCCESS(
                f"Paused {job_id}; the active scheduler stops running it within seconds."
            )
        )

    def handle_resume(self, job_id, **options):
        job = control.resume_job(job_id)
        self.stdout.write(
            self.style.SUCCESS(f"Resumed {job_id}; next run {job.next_run_time.isoformat()}.")
        )
