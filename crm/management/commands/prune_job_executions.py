from datetime import timedelta

from django.utils import timezone

from crm.management.batch_command import BatchCommand
from crm.scheduler.pruning import prune_executions


class Command(BatchCommand):
    help = (
        "Delete job run history older than EXECUTION_RETENTION_DAYS (what the "
        "delete_old_job_executions job does), keeping each job's latest run and runs "
        "still going."
    )

    age_option = "days"
    age_setting = "EXECUTION_RETENTION_DAYS"
    age_help = "Keep this many days of history"
    dry_run_help = "Count what would go; delete nothing."

    def handle(self, *args, days, dry_run, batch_size, **options):
        days = self.checked(days, batch_size)
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
