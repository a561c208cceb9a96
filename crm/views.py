"""Views outside the admin: the scheduler's health for monitors, and waking it."""

import hmac
import threading
import time

from django.conf import settings
from django.http import Http404, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from crm.scheduler import startup, status

WAKE_INTERVAL_SECONDS = 10  # at most one wake per process in this time
WAKE_WAIT_SECONDS = 3  # how long a wake waits for a scheduler to become active
_last_wake = {"at": float("-inf")}
_wake_lock = threading.Lock()


@require_GET
@never_cache
def scheduler_health(request):
    """200 when the scheduler is healthy, 503 otherwise (HEALTH_CHECKS says which
    conditions count). Anonymous callers get the status only; staff users and
    `Authorization: Bearer <HEALTH_TOKEN>` get the details."""
    now = timezone.now()
    active, jobs = status.active_scheduler(now), status.job_states(now)
    problems = status.problems(active, jobs, settings.HEALTH_CHECKS)
    body = {"status": "unhealthy" if problems else "ok"}
    if _may_see_details(request):
        body.update(
            problems=problems,
            active_scheduler=active.as_dict() if active else None,
            jobs=[_job(job) for job in jobs],
        )
    return JsonResponse(body, status=503 if problems else 200)


@csrf_exempt  # called by a monitor with a bearer token, never from a browser form
@require_POST
@never_cache
def scheduler_wake(request):
    """Make sure a scheduler is active: if none is, this process's lease keeper
    tries to take the lease at once. For hosts that put idle apps to sleep."""
    if not settings.SCHEDULER_WAKE_TOKEN:
        raise Http404
    if not _bearer_matches(request, settings.SCHEDULER_WAKE_TOKEN):
        return JsonResponse({"error": "wrong or missing bearer token"}, status=403)
    with _wake_lock:
        wait = _last_wake["at"] + WAKE_INTERVAL_SECONDS - time.monotonic()
        if wait > 0:
            response = JsonResponse({"error": "woken a moment ago; try later"}, status=429)
            response["Retry-After"] = str(int(wait) + 1)
            return response
        _last_wake["at"] = time.monotonic()
    runner = startup._runner
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
    here = runner is not None and (active.host, active.pid) == (
        runner.lease.holder.host,
        runner.lease.holder.pid,
    )
    return JsonResponse(
        {"status": "active", "host": active.host, "pid": active.pid, "this_process": here}
    )


def _may_see_details(request) -> bool:
    if request.user.is_authenticated and request.user.is_staff:
        return True
    return bool(settings.HEALTH_TOKEN) and _bearer_matches(request, settings.HEALTH_TOKEN)


def _bearer_matches(request, token: str) -> bool:
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        offered.strip().encode(), token.encode()
    )


def _job(job):
    last = job.last_run
    return {
        "id": job.id,
        "paused": job.paused,
        "next_run": job.next_run,
        "last_run": {
            "scheduled": last.run_time,
            "status": last.status,
            "duration_seconds": float(last.duration) if last.duration is not None else None,
        }
        if last
        else None,
        "late": job.late,
        "failing": job.failing,
    }
