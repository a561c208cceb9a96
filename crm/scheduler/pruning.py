"""Deleting old run history in batches, so no statement holds the table long."""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from crm.scheduler.history import RUNNING


@dataclass(frozen=True)
class PruneResult:
    deleted: int  # or, in a dry run, how many would be
    kept_latest: int  # old, but the latest run of its job
    kept_running: int  # old, but still marked running

    def as_dict(self) -> dict:
        return {
            "deleted": self.deleted,
            "kept_latest": self.kept_latest,
            "kept_running": self.kept_running,
        }


def prune_executions(
    *, older_than: datetime, batch_size: int = 2000, dry_run: bool = False, progress=None
) -> PruneResult:
    """Delete executions scheduled before `older_than`, except each job's most
    recent one and any still running."""
    latest_ids = set(
        DjangoJob.objects.annotate(
            latest=Subquery(
                DjangoJobExecution.objects.filter(job_id=OuterRef("id"))
                .order_by("-run_time")
                .values("id")[:1]
            )
        )
        .exclude(latest=None)
        .values_list("latest", flat=True)
    )
    old = DjangoJobExecution.objects.filter(run_time__lt=older_than)
    kept_running = old.filter(status=RUNNING).exclude(pk__in=latest_ids).count()
    kept_latest = old.filter(pk__in=latest_ids).count()
    doomed = old.exclude(status=RUNNING).exclude(pk__in=latest_ids)
    if dry_run:
        return PruneResult(doomed.count(), kept_latest, kept_running)
    deleted, last_id = 0, 0
    while ids := list(
        doomed.filter(pk__gt=last_id).order_by("pk").values_list("pk", flat=True)[:batch_size]
    ):
        last_id = ids[-1]
        with transaction.atomic():
            # Deleting through the ORM also removes each run's RunDetail.
            deleted += (
                DjangoJobExecution.objects.filter(pk__in=ids)
                .delete()[1]
                .get(DjangoJobExecution._meta.label, 0)
            )
        if progress:
            progress(deleted)
    return PruneResult(deleted, kept_latest, kept_running)
