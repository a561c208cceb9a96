"""Which processes start the scheduler from `CrmConfig.ready()`.

Servers say so: the entry points (config/wsgi.py, config/asgi.py and
passenger_wsgi.py) call `serve_with_scheduler()` before they load the app.
runserver's serving process is the only one recognised by its command line:
it imports config/wsgi.py only after the apps are ready, in a thread that
cannot take signals. Nothing else starts one (other management commands,
scripts calling django.setup(), pytest); `runscheduler` runs its own in the
foreground. ENABLE_SCHEDULER=0 turns it off everywhere.

What a process started is kept on the crm app's AppConfig (one per process),
and the mark "this process is a server" in its environment, under its pid:
the mark is made before Django sets up, and a child process the server
starts (a job running `manage.py`) inherits the environment but not the pid.
"""

import logging
import os
import signal
import sys
import threading

from django.apps import apps
from django.conf import settings
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV

logger = logging.getLogger("crm.scheduler")
SERVING_PID = "CRM_SERVING_PID"


def serve_with_scheduler() -> None:
    """Mark this process as a server: it starts a scheduler as Django sets up."""
    os.environ[SERVING_PID] = str(os.getpid())
    if apps.ready:
        # Set up before the entry point was imported: a worker forked by
        # `manage.py server web` (django-prodserver), or runserver's serving
        # process, which has started its scheduler already.
        start_if_wanted()


def serving(environ) -> bool:
    """Whether this process was marked by `serve_with_scheduler()`."""
    return environ.get(SERVING_PID) == str(os.getpid())


def wanted_in_this_process(argv: list[str], environ) -> bool:
    if not settings.ENABLE_SCHEDULER:
        return False
    return serving(environ) or runserver_serves_here(argv, environ)


def process_scheduler():
    """The SchedulerRunner this process started, or None."""
    return apps.get_app_config("crm").scheduler_runner


def runserver_serves_here(argv: list[str], environ) -> bool:
    """runserver's autoreloader child, or runserver --noreload. The autoreloader's
    parent only restarts the child (the child has RUN_MAIN=true)."""
    if len(argv) < 2 or argv[1] != "runserver":
        return False
    return "--noreload" in argv or environ.get(DJANGO_AUTORELOAD_ENV) == "true"


def start_if_wanted() -> None:
    crm = apps.get_app_config("crm")
    if crm.scheduler_runner is not None:
        return
    if not wanted_in_this_process(sys.argv, os.environ):
        _watch_alerts_if_serving(crm)
        return
    from crm.scheduler.runner import SchedulerRunner

    runner = crm.scheduler_runner = SchedulerRunner()
    runner.start()
    _release_lease_on_sigterm(runner)
    logger.info("scheduler standby started (pid %s)", os.getpid())


def _watch_alerts_if_serving(crm) -> None:
    """A server with the scheduler off still sends alerts (crm.scheduler.watcher)."""
    from crm.scheduler.alert_routes import any_route

    server = serving(os.environ) or runserver_serves_here(sys.argv, os.environ)
    if crm.alert_watcher is not None or not server or not any_route():
        return
    from crm.scheduler.watcher import AlertWatcher

    crm.alert_watcher = AlertWatcher()
    crm.alert_watcher.start()
    logger.info("scheduler off in this process; watching for alerts (pid %s)", os.getpid())


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
