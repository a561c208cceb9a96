"""gunicorn -c deploy/gunicorn.conf.py: the web processes.

Read from the environment or .env, like the app's own settings:
GUNICORN_BIND (127.0.0.1:8000), WEB_CONCURRENCY (workers, 2),
GUNICORN_MAX_REQUESTS (1000; 0 never recycles a worker) and
SCHEDULER_SHUTDOWN_WAIT_SECONDS (see the README).
"""

import os
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from config.env import ConfigurationError, Environment, exit_on_configuration_error  # noqa: E402

try:
    _env = Environment(BASE_DIR)
    bind = _env.strings("GUNICORN_BIND", "127.0.0.1:8000")
    workers = _env.integer("WEB_CONCURRENCY", 2, minimum=1)
    max_requests = _env.integer("GUNICORN_MAX_REQUESTS", 1000, minimum=0)
    _shutdown_wait = _env.integer("SCHEDULER_SHUTDOWN_WAIT_SECONDS", 10, minimum=0)
except ConfigurationError as error:
    exit_on_configuration_error(error)

chdir = str(BASE_DIR)
wsgi_app = "config.wsgi:application"
max_requests_jitter = max_requests // 10
# Not preloaded: each worker imports the app after the fork, so the scheduler
# thread that CrmConfig.ready() starts lives in the worker (a fork keeps no
# threads). Preloading would leave every worker without one.
preload_app = False
# A worker told to stop (a recycle, a restart) waits up to the scheduler's
# shutdown wait for running jobs, then gives up its lease: let it, with a
# margin, before gunicorn kills it.
graceful_timeout = _shutdown_wait + 5
timeout = 30
accesslog = "-"


def on_starting(server):
    """A bad app setting stops gunicorn here, with the settings' one-line message.
    Every worker would fail on it (config/serving.py then stops gunicorn), but
    several failing at once make gunicorn print a traceback of its own. In a
    child process: workers must read the settings afresh, on a HUP too."""
    env = {"DJANGO_SETTINGS_MODULE": "config.settings", **os.environ}
    read = "from django.conf import settings; settings.DEBUG"
    checked = subprocess.run([sys.executable, "-c", read], cwd=BASE_DIR, env=env, check=False)
    if checked.returncode != 0:
        raise SystemExit(checked.returncode)
