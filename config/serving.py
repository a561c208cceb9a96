"""What the WSGI and ASGI entry points share: the process loading them is a server."""

from crm.scheduler.startup import serve_with_scheduler

# gunicorn's Arbiter.WORKER_BOOT_ERROR: a worker exiting with it stops the whole
# server. Any other status gets a new worker, which fails the same way.
BOOT_ERROR = 3


def load_application(get_application):
    """The app from Django's get_wsgi_application or get_asgi_application, in a
    process that runs a scheduler. A bad setting ends the process with status 3,
    after config/settings.py has printed its one-line message."""
    serve_with_scheduler()
    try:
        return get_application()
    except SystemExit as stop:
        if stop.code in (None, 0):
            raise
        raise SystemExit(BOOT_ERROR) from None
