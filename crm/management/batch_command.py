"""What the commands that change rows in batches share: an age (older than N
hours or days, defaulting to a setting), --dry-run and --batch-size, each
checked with a one-line error."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class BatchCommand(BaseCommand):
    age_option = ""  # "hours" or "days": the option's name and its unit
    age_setting = ""  # the setting it defaults to
    age_help = ""
    dry_run_help = ""
    unit = "rows"  # what a batch holds

    def add_arguments(self, parser):
        parser.add_argument(
            f"--{self.age_option}",
            type=int,
            default=None,
            help=f"{self.age_help} (default: {self.age_setting}).",
        )
        parser.add_argument("--dry-run", action="store_true", help=self.dry_run_help)
        parser.add_argument(
            "--batch-size",
            type=int,
            help=f"{self.unit.capitalize()} per transaction "
            "(default: sized so each takes about 0.4 s).",
        )

    def checked(self, age: int | None, batch_size: int | None) -> int:
        """The age to use (the setting's when none was given), once both are checked."""
        age = getattr(settings, self.age_setting) if age is None else age
        if age < 1:
            raise CommandError(f"--{self.age_option} must be 1 or more, not {age}.")
        if batch_size is not None and batch_size < 1:
            raise CommandError(f"--batch-size must be 1 or more, not {batch_size}.")
        return age
