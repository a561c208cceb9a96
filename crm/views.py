"""Views outside the admin: the scheduler's health and metrics for monitors, and waking it."""

import hmac
import time

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError
from django.http import Http404, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from prometheus_client import CONTENT_TYPE_LATEST

from crm.scheduler import metrics, serializers, startup, status
from crm.scheduler.connections import describe, drop_connection

WAKE_INTERVAL_SECONDS = 10  # at most one wake per process in this time
WAKE_WAIT_SECONDS = 3  # how long a wake waits for a scheduler to become active
FAILED_WAKES_ALLOWED = 5  # wrong or missing tokens per process in this window...
FAILED_WAKES_WINDOW_SECONDS = 60  # ...before the next one is a 429
# The limits are kept in Django's cache: per process with the default
# local-memory cache, shared by the processes that share a cache server.
LAST_WAKE_KEY = "crm:scheduler-wake:last"
FAILED_WAKES_KEY = "crm:scheduler-wake:failed"


@require_GET
@never_cache
def scheduler_health(request):
    """200 when the scheduler is healthy, 503 otherwise (HEALTH_CHECKS says which
    conditions count). Anonymous callers get the status only; staff users and
    `Authorization: Bearer <HEALTH_TOKEN>` get the details."""
    now = timezone.now()
    try:
        details = _may_see_details(request)
        jobs = status.job_states(now) if details else status.problem_states(now)
        active = status.active_scheduler(now)
    except DatabaseError as error:
        drop_connection()
        problem = f"the database is unreachable: {describe(error)}"
        # By token only: a staff login would need the database.
        details = {"problems": [problem]} if _token_shows_details(request) else {}
        return _unhealthy({"status": "unhealthy", **details})
    problems = status.problems(active, jobs, settings.HEALTH_CHECKS)
    body = {"status": "unhealthy" if problems else "ok"}
    if details:
        body.update(serializers.scheduler_state(active, jobs, problems))
    return _unhealthy(body) if problems else JsonResponse(body)


@require_GET
@never_cache
def scheduler_metrics(request):
    """The scheduler's metrics in the Prometheus text format (crm.scheduler.metrics),
    for `Authorization: Bearer <METRICS_TOKEN>` and staff users; 403 for others."""
    try:
        if not _may_see_metrics(request):
            return _text("wrong or missing bearer token (METRICS_TOKEN)", status=403)
        snapshot = metrics.read()
    except metrics.MetricsMisconfigured as error:
        return _text(f"metrics are off: {error} See `python manage.py check`.", status=503)
    except DatabaseError as error:
        drop_connection()
        return _text(f"the database is unreachable: {describe(error)}", status=503)
    return HttpResponse(metrics.exposition(snapshot), content_type=CONTENT_TYPE_LATEST)


def _may_see_metrics(request) -> bool:
    token = settings.METRICS_TOKEN
    if token and _bearer_matches(request, token):
        return True  # before the staff check, which needs the database
    return request.user.is_authenticated and request.user.is_staff


def _text(message: str, status: int) -> HttpResponse:
    response = HttpResponse(f"{message}\n", status=status, content_type="text/plain")
    response._has_been_logged = True  # an answer to a monitor, as in _unhealthy
    return response


def _unhealthy(body: dict) -> JsonResponse:
    response = JsonResponse(body, status=503)
    # The answer a monitor asked for, not a server error: Django's request
    # logger would mail ADMINS for every poll (alerts mail once per change).
    response._has_been_logged = True
    return response


@csrf_exempt  # called by a monitor with a bearer token, never from a browser form
@require_POST
@never_cache
def scheduler_wake(request):
    """Make sure a scheduler is active: if none is, this process's lease keeper
    tries to take the lease at once. For hosts that put idle apps to sleep.

    Limits, each per process (kept in the cache: see LAST_WAKE_KEY): one wake
    in WAKE_INTERVAL_SECONDS (10 s; a 429 with Retry-After otherwise), and
    FAILED_WAKES_ALLOWED (5) wrong or missing tokens in
    FAILED_WAKES_WINDOW_SECONDS (60 s), after which further wrong ones get a
    429 instead of a 403 until the window has passed. A right token is never
    held up by wrong ones (they must not lock the monitor out), so the 429 only
    tells a misconfigured or guessing client to back off; what keeps the token
    from being guessed is its length (`manage.py check` warns below 32
    characters, crm.W001)."""
    if not settings.SCHEDULER_WAKE_TOKEN:
        raise Http404
    if not _bearer_matches(request, settings.SCHEDULER_WAKE_TOKEN):
        return _refuse_wrong_token()
    now = time.time()
    if not cache.add(LAST_WAKE_KEY, now, timeout=WAKE_INTERVAL_SECONDS):
        last = cache.get(LAST_WAKE_KEY, now)
        return _too_many("woken a moment ago; try later", last + WAKE_INTERVAL_SECONDS - now)
    runner = startup.process_scheduler()
    active = status.active_scheduler()
    if active is None and runner is not None:
        runner.wake()
        deadline = time.monotonic() + WAKE_WAIT_SECONDS
        while active is None and time.monotonic() < deadline:
            time.sleep(0.1)
            active = status.active_scheduler()
    if active is None:
        reason = (
            "the scheduler is off in this process (ENABLE_SCHEDULER=0 or not a web server)"
            if runner is None
            else f"no scheduler became active within {WAKE_WAIT_SECONDS} s"
        )
        return JsonResponse({"status": "no active scheduler", "reason": reason}, status=503)
    # By the lease row, not runner.active: that is set only once sync is done.
    here = runner is not None and runner.holds(active)
    return JsonResponse(
        {"status": "active", "host": active.host, "pid": active.pid, "this_process": here}
    )


def _refuse_wrong_token():
    now = time.time()
    window = FAILED_WAKES_WINDOW_SECONDS
    recent = [at for at in cache.get(FAILED_WAKES_KEY, []) if at > now - window]
    full = len(recent) >= FAILED_WAKES_ALLOWED
    wait = recent[-FAILED_WAKES_ALLOWED] + window - now if full else 0
    # Refused ones count too, so that guessing at any pace stays refused.
    cache.set(FAILED_WAKES_KEY, [*recent[-FAILED_WAKES_ALLOWED + 1 :], now], timeout=window + 1)
    if wait > 0:
        return _too_many("too many wrong or missing bearer tokens; try later", wait)
    return JsonResponse({"error": "wrong or missing bearer token"}, status=403)


def _too_many(error: str, wait: float):
    response = JsonResponse({"error": error}, status=429)
    response["Retry-After"] = str(int(wait) + 1)
    return response


def _may_see_details(request) -> bool:
    if request.user.is_authenticated and request.user.is_staff:
        return True
    return _token_shows_details(request)


def _token_shows_details(request) -> bool:
    return bool(settings.HEALTH_TOKEN) and _bearer_matches(request, settings.HEALTH_TOKEN)


def _bearer_matches(request, token: str) -> bool:
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        offered.strip().encode(), token.encode()
    )
