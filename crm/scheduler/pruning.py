"""Deleting old run history in batches, so no statement holds the table long."""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from crm.batching import BatchSize
from crm.scheduler.execution import current_context
from crm.scheduler.history import RUNNING
from crm.scheduler.models import RunDetail, SchedulerCommand


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
    *, older_than: datetime, batch_size: int | None = None, dry_run: bool = False, progress=None
) -> PruneResult:
    """Delete executions scheduled before `older_than`, except each job's most
    recent one and the runs going on in this process. A row still marked
    running that is older than that and not going on here never finished
    (its process died and no scheduler became active since to mark it
    interrupted): it goes like the rest."""
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
    going_here = current_context().runs.in_progress()
    kept_running = old.filter(status=RUNNING, pk__in=going_here).exclude(pk__in=latest_ids).count()
    kept_latest = old.filter(pk__in=latest_ids).count()
    doomed = old.exclude(pk__in=going_here).exclude(pk__in=latest_ids)
    if dry_run:
        return PruneResult(doomed.count(), kept_latest, kept_running)
    deleted, after = 0, 0
    in_order = doomed.order_by("pk").values_list("pk", flat=True)
    size = BatchSize(batch_size or 5000, fixed=batch_size is not None)
    while True:
        # Each batch is a range of ids, deleted by statements over that range:
        # only its last id is read.
        edge = in_order.filter(pk__gt=after)[size.current - 1 : size.current].first()
        batch = doomed.filter(pk__gt=after, **({} if edge is None else {"pk__lte": edge}))
        with size.timing():
            deleted += _delete(batch.order_by())
        if progress:
            progress(deleted)
        if edge is None:
            break
        after = edge
    return PruneResult(deleted, kept_latest, kept_running)


def _delete(executions) -> int:
    with transaction.atomic():
        RunDetail.objects.filter(execution__in=executions).delete()
        SchedulerCommand.objects.filter(execution__in=executions).update(execution=None)
        # What QuerySet.delete() ends with once related rows are dealt with;
        # without it, Django would load every row of the batch first.
        return executions._raw_delete(executions.db)
