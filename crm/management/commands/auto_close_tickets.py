from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from crm import services
from crm.jobs import auto_close_reason


class Command(BaseCommand):
    help = (
        "Close tickets resolved more than AUTO_CLOSE_AFTER_HOURS ago (what the "
        "auto_close_resolved_tickets job does), in batches; a ticket changed meanwhile is skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--hours", type=int, default=None, help="Close tickets resolved longer ago than this "
            "(default: AUTO_CLOSE_AFTER_HOURS)."
        )  # fmt: skip
        parser.add_argument(
            "--dry-run", action="store_true", help="Count the tickets; change nothing."
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            help="Tickets per transaction (default: sized so each takes about 0.4 s).",
        )

    def handle(self, *args, hours, dry_run, batch_size, verbosity, **options):
        hours = settings.AUTO_CLOSE_AFTER_HOURS if hours is None else hours
        if hours < 1:
            raise CommandError(f"--hours must be 1 or more, not {hours}.")
        if batch_size is not None and batch_size < 1:
            raise CommandError(f"--batch-size must be 1 or more, not {batch_size}.")

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
