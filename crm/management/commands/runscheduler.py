import signal

from django.core.management.base import BaseCommand

from crm.scheduler.runner import SchedulerRunner


class Command(BaseCommand):
    help = (
        "Run the job scheduler in the foreground (for systemd or a process manager). "
        "It shares one lease with the web processes, so jobs never run twice. "
        "Stops cleanly on SIGTERM or Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--once",
            action="store_true",
            help="Run what is due and what was missed (within its grace), then exit: "
            "for hosts where cron starts it every few minutes. Exits at once if another "
            "scheduler is active.",
        )

    def handle(self, *args, once, **options):
        runner = SchedulerRunner()
        if once:
            self.stdout.write(runner.run_one_pass())
            return

        def request_stop(signum, frame):
            runner.request_stop()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        self.stdout.write(
            f"Scheduler running (pid {runner.lease.holder.pid}); waiting for the lease."
        )
        runner.run_in_foreground()
        self.stdout.write("Scheduler stopped.")
