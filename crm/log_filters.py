"""Logging filters for the mail to ADMINS."""

import logging
import threading
import time

from django.db import InterfaceError, OperationalError

OUTAGE_MAIL_INTERVAL_SECONDS = 15 * 60


class OncePerDatabaseOutage(logging.Filter):
    """While the database is unreachable every request fails the same way:
    let one such error through per process in OUTAGE_MAIL_INTERVAL_SECONDS,
    not one mail per request."""

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()
        self._last_passed = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, OperationalError | InterfaceError):
            return True
        with self._lock:
            if time.monotonic() - self._last_passed < OUTAGE_MAIL_INTERVAL_SECONDS:
                return False
            self._last_passed = time.monotonic()
            return True
