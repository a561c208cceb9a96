from itertools import islice

from django.core.management.base import BaseCommand, CommandError
from django_apscheduler.models import DjangoJobExecution

from crm import demo, demo_history
from crm.models import Ticket


class Command(BaseCommand):
    help = (
        "Create realistic demo tickets in every state, some resolved more than 24 h ago. "
        "Works in bounded batches, so millions of tickets take constant memory. "
        "With --history (DEBUG only), also a few weeks of demo run history for the jobs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tickets", type=int, default=500, help="How many tickets to create.")
        parser.add_argument(
            "--due",
            type=int,
            default=None,
            help="How many of them are resolved more than 24 h ago (default: 10%%).",
        )
        parser.add_argument("--batch-size", type=int, default=5000, help="Rows per INSERT batch.")
        parser.add_argument("--seed", type=int, default=1, help="Random seed, for repeatable data.")
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing when tickets already exist (with --history: no run history "
            "when there is some already).",
        )
        parser.add_argument(
            "--history",
            action="store_true",
            help="Also store the declared jobs and write weeks of demo run history for them "
            "(a failure and a missed fire among them; host 'demo'), and ask the first "
            "scheduler to start to run auto-close now. Refused when DEBUG is off.",
        )

    def handle(self, *args, tickets, due, batch_size, seed, if_empty, history, **options):
        due = tickets // 10 if due is None else due
        if tickets < 0 or batch_size < 1:
            raise CommandError("--tickets must be 0 or more and --batch-size 1 or more.")
        if not 0 <= due <= tickets:
            raise CommandError(f"--due must be between 0 and --tickets ({tickets}), not {due}.")
        if history:
            self.seed_history(seed, if_empty)
        if if_empty and Ticket.objects.exists():
            self.stdout.write("Demo data not loaded: tickets already exist.")
            return
        self.seed_tickets(tickets, due, batch_size, seed, options["verbosity"])

    def seed_tickets(self, tickets, due, batch_size, seed, verbosity) -> None:
        rows = demo.generate_tickets(tickets, due, seed, demo.demo_agents())
        created = 0
        progress_every = max(batch_size, tickets // 20)
        while batch := list(islice(rows, batch_size)):
            demo.save_batch(batch)
            created += len(batch)
            if verbosity >= 1 and (created % progress_every < batch_size):
                self.stdout.write(f"  {created:,}/{tickets:,} tickets")
        self.stdout.write(
            self.style.SUCCESS(f"Created {created:,} demo tickets, {due:,} of them due to close.")
        )

    def seed_history(self, seed, if_empty) -> None:
        try:
            demo_history.refuse_outside_development()
            if if_empty and DjangoJobExecution.objects.exists():
                self.stdout.write("Demo run history not written: there is run history already.")
                return
            seeded = demo_history.seed_run_history(seed=seed)
        except demo_history.DemoHistoryRefused as refusal:
            raise CommandError(str(refusal)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {seeded.runs:,} demo runs of {', '.join(seeded.jobs)} (host "
                f"'{demo_history.DEMO_HOST}')."
            )
        )
        if seeded.close_requested:
            self.stdout.write(
                "Asked the first scheduler to start to run auto_close_resolved_tickets now."
            )
