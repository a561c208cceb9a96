"""What the WSGI and ASGI entry points share: the process loading them is a server."""

import gc

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
        application = get_application()
    except SystemExit as stop:
        if stop.code in (None, 0):
            raise
        raise SystemExit(BOOT_ERROR) from None
    keep_loaded_objects_out_of_collections()
    return application


def keep_loaded_objects_out_of_collections() -> None:
    """What is loaded by now (Django, the apps, the URLs: some 100,000 objects)
    lives as long as the process. Out of the garbage collector's sight, the
    full collections that a request allocating much triggers (a /metrics
    scrape of 1,000 jobs) no longer walk all of it: about half that scrape's
    Python time. The usual start-up step for servers (gc.freeze's documentation)."""
    gc.collect()
    gc.freeze()
