from django import template
from django.db import DatabaseError
from django.urls import reverse

from crm.scheduler import status
from crm.scheduler.connections import describe, drop_connection

register = template.Library()


@register.inclusion_tag("crm/scheduler_banner.html", takes_context=True)
def scheduler_banner(context):
    """On the admin index and the scheduler's pages: who runs jobs, and what
    is wrong (no active scheduler, a stalled one, late or failing jobs, the
    database unreachable)."""
    request = context.get("request")
    scheduler_pages = reverse("admin:app_list", args=["django_apscheduler"])
    if request is None or not (
        request.path == reverse("admin:index") or request.path.startswith(scheduler_pages)
    ):
        return {"show": False}
    try:
        jobs = status.problem_states()
        active = status.active_scheduler()
    except DatabaseError as error:
        drop_connection()
        return {"show": True, "unreachable": describe(error)}
    stalled = active.stalled_since(jobs) if active else None
    return {
        "show": True,
        "active": active,
        "stalled": stalled,
        "late": [job.id for job in jobs if job.late],
        "failing": [job.id for job in jobs if job.failing],
    }
