from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from crm.scheduler.pruning import prune_executions


class Command(BaseCommand):
    help = (
        "Delete job run history older than EXECUTION_RETENTION_DAYS (what the "
        "delete_old_job_executions job does), keeping each job's latest run and runs "
        "still going."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, default=None, help="Keep this many days of history "
            "(default: EXECUTION_RETENTION_DAYS)."
        )  # fmt: skip
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would go; delete nothing."
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            help="Rows per transaction (default: sized so each takes about 0.4 s).",
        )

    def handle(self, *args, days, dry_run, batch_size, **options):
        days = settings.EXECUTION_RETENTION_DAYS if days is None else days
        if days < 1:
            raise CommandError(f"--days must be 1 or more, not {days}.")
        if batch_size is not None and batch_size < 1:
            raise CommandError(f"--batch-size must be 1 or more, not {batch_size}.")
        result = prune_executions(
            older_than=timezone.now() - timedelta(days=days),
            batch_size=batch_size,
            dry_run=dry_run,
        )
        kept = (
            f"kept {result.kept_latest:,} as their job's latest and "
            f"{result.kept_running:,} still running"
        )
        if dry_run:
            self.stdout.write(
                f"Would delete {result.deleted:,} job executions older than {days} days; "
                f"{kept} (dry run: nothing deleted)."
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {result.deleted:,} job executions older than {days} days; {kept}."
            )
        )
