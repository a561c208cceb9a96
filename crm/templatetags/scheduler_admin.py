from django import template
from django.urls import reverse

from crm.scheduler import status

register = template.Library()


@register.inclusion_tag("crm/scheduler_banner.html", takes_context=True)
def scheduler_banner(context):
    """On the admin index and the scheduler's pages: who runs jobs, and what
    is wrong (no active scheduler, late or failing jobs)."""
    request = context.get("request")
    scheduler_pages = reverse("admin:app_list", args=["django_apscheduler"])
    if request is None or not (
        request.path == reverse("admin:index") or request.path.startswith(scheduler_pages)
    ):
        return {"show": False}
    jobs = getattr(request, "scheduler_job_states", None) or status.job_states()
    return {
        "show": True,
        "active": status.active_scheduler(),
        "late": [job.id for job in jobs if job.late],
        "failing": [job.id for job in jobs if job.failing],
    }
