from datetime import timedelta

from django.utils import timezone

from crm import services
from crm.jobs import auto_close_reason
from crm.management.batch_command import BatchCommand


class Command(BatchCommand):
    help = (
        "Close tickets resolved more than AUTO_CLOSE_AFTER_HOURS ago (what the "
        "auto_close_resolved_tickets job does), in batches; a ticket changed meanwhile is skipped."
    )

    age_option = "hours"
    age_setting = "AUTO_CLOSE_AFTER_HOURS"
    age_help = "Close tickets resolved longer ago than this"
    dry_run_help = "Count the tickets; change nothing."
    unit = "tickets"

    def handle(self, *args, hours, dry_run, batch_size, verbosity, **options):
        hours = self.checked(hours, batch_size)

        def progress(closed, skipped):
            if verbosity >= 2:
                self.stdout.write(f"  closed {closed:,}, skipped {skipped:,}")

        result = services.tickets_auto_close(
            resolved_before=timezone.now() - timedelta(hours=hours),
            reason=auto_close_reason(hours),
            batch_size=batch_size,
            dry_run=dry_run,
            progress=progress,
        )
        if dry_run:
            self.stdout.write(
                f"Would close {result.due:,} tickets resolved more than {hours} h ago "
                "(dry run: nothing changed)."
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Closed {result.closed:,} tickets resolved more than {hours} h ago; "
                f"skipped {result.skipped:,} changed meanwhile."
            )
        )
