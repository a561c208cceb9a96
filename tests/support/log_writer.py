"""A process that writes numbered lines through the app's logging (the LOGGING
of config.settings), for tests/deploy/test_log_rotation.py.

Usage: python -m tests.support.log_writer NAME COUNT
Prints "ready" once set up, then waits for a line on stdin before writing, so
that the test starts all writers at once.
"""

import logging
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main(name: str, count: int) -> None:
    django.setup()
    logger = logging.getLogger("crm.log_writer")
    print("ready", flush=True)
    sys.stdin.readline()
    for number in range(count):
        logger.warning("writer %s line %d", name, number)
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
