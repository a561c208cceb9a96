"""Run history lives in django-apscheduler's DjangoJobExecution."""

from django_apscheduler.models import DjangoJobExecution

INTERRUPTED = "Interrupted"


def mark_interrupted_runs(previous_holder: str) -> int:
    """Runs still marked as started when a scheduler becomes active were cut
    short: only the lease holder runs jobs, and the previous one is gone."""
    return DjangoJobExecution.objects.filter(status=DjangoJobExecution.SENT).update(
        status=INTERRUPTED,
        exception=f"Interrupted: the process running it stopped ({previous_holder or 'unknown'}).",
    )
