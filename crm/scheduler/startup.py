"""Which processes start the scheduler from `CrmConfig.ready()`."""

import logging
import os
import signal
import sys
import threading
from pathlib import Path

from django.conf import settings

logger = logging.getLogger("crm.scheduler")
_runner = None


def wanted_in_this_process(argv: list[str], environ) -> bool:
    """Web servers (gunicorn, Passenger, runserver's serving child) start it;
    runserver's autoreloader parent and other management commands do not
    (`runscheduler` starts its own in the foreground)."""
    if not settings.ENABLE_SCHEDULER:
        return False
    program = Path(argv[0]).name if argv else ""
    if program not in {"manage.py", "django-admin", "__main__.py"}:
        return True
    command = argv[1] if len(argv) > 1 else ""
    if command != "runserver":
        return False
    return "--noreload" in argv or environ.get("RUN_MAIN") == "true"


def start_if_wanted() -> None:
    global _runner
    if _runner is not None or not wanted_in_this_process(sys.argv, os.environ):
        return
    from crm.scheduler.runner import SchedulerRunner

    _runner = SchedulerRunner()
    _runner.start()
    _release_lease_on_sigterm(_runner)
    logger.info("scheduler standby started (pid %s)", os.getpid())


def _release_lease_on_sigterm(runner) -> None:
    """Servers that handle SIGTERM themselves (gunicorn) exit through atexit,
    which stops the runner. Where SIGTERM would kill the process outright
    (runserver), stop the runner first, then die as before."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def stop_then_terminate(signum, frame):
        runner.stop()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop_then_terminate)
