"""A separate process that writes tickets through the services as fast as it can.

Usage: python -m tests.support.sqlite_writer ITERATIONS [--naive]
--naive drops the project's SQLite options, to show what they prevent.
"""

import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main(iterations: int, naive: bool) -> int:
    django.setup()
    from django.conf import settings
    from django.db import OperationalError

    if naive:
        settings.DATABASES["default"]["OPTIONS"] = {}

    from crm import services

    try:
        for number in range(iterations):
            ticket = services.ticket_create(
                title=f"pid {os.getpid()} #{number}",
                requester_name="Load Test",
                requester_email="load@example.com",
            )
            # Reads, then writes, in one transaction: the pattern that fails
            # with "database is locked" when the write lock is taken late.
            services.ticket_update_details(ticket_id=ticket.pk, priority=3)
            services.ticket_open(ticket=ticket)
            services.ticket_resolve(ticket=ticket)
    except OperationalError as error:
        print(f"OperationalError: {error}", flush=True)
        return 2
    print(f"done {iterations}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), "--naive" in sys.argv))
