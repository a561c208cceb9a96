"""Alerts from web processes that run no scheduler themselves.

With ENABLE_SCHEDULER=0 the jobs are left to `runscheduler` (or another
host). If that dies, no scheduler thread is left to notice: so each server
process with the scheduler off still looks for alerts now and then (no
scheduler for longer than the lease plus a minute, late or failing jobs),
and ADMINS get one mail per change, whichever process sees it first.
"""

import atexit
import logging
import threading

from django.apps import apps
from django.conf import settings
from django.db import close_old_connections, connection

from crm.scheduler import alerts

logger = logging.getLogger("crm.scheduler")


class AlertWatcher:
    def __init__(self):
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="crm-alerts", daemon=True)

    def start(self) -> None:
        self._thread.start()
        atexit.register(self._stopping.set)

    def _watch(self) -> None:
        while not apps.ready and not self._stopping.wait(0.05):
            pass
        try:
            while not self._stopping.wait(settings.SCHEDULER_ALERT_CHECK_SECONDS):
                alerts.check_safely()
                close_old_connections()
        finally:
            connection.close()  # this thread's own; it ends here
