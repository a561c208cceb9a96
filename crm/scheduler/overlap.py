"""What happens to a fire due while a run of its job is still going, in this
process or in another (one that lost the lease and still runs it, saying so
with its heartbeat): the job's `overlap` policy.

* skip: the fire is recorded skipped (`Skipped!`), the default;
* queue: the fire waits as `Queued` in the history and runs as soon as no run
  of the job is going, in whichever scheduler is active then; fires due
  meanwhile are coalesced into it (recorded skipped, naming it);
* allow: the fire runs beside the others, up to `max_concurrent` at once.

APScheduler's max_instances (the declaration's `max_instances`) counts the runs,
with those going elsewhere (crm.scheduler.execution.FireTimeThreadExecutor).
"""

from datetime import timedelta

from django_apscheduler.models import DjangoJobExecution

from crm.scheduler import history
from crm.scheduler.models import DisabledJob, JobPause

SKIP, QUEUE, ALLOW = "skip", "queue", "allow"
POLICIES = (SKIP, QUEUE, ALLOW)


def start_queued(scheduler) -> int:
    """Hand each queued fire whose job has no run going to `scheduler` (the
    active one); returns how many were handed on. Fires of paused jobs wait."""
    queued = (
        DjangoJobExecution.objects.filter(status=history.QUEUED)
        .exclude(job_id__in=JobPause.objects.values("job_id"))
        .exclude(job_id__in=DisabledJob.objects.values("job_id"))
        .order_by("run_time")
    )
    started = 0
    for execution in queued:
        job = scheduler.get_job(execution.job_id)
        if job is not None and scheduler.submit_once(job, execution.run_time, waiting=execution.pk):
            started += 1
    return started


class RunsElsewhere:
    """The active scheduler's count of each job's runs going on in other
    processes, without a query at every fire: only a process that held the
    lease before can have started them, so the jobs that have any are looked
    up as the scheduler becomes active and at each pass of its lease keeper
    (`refresh`, about a second apart: a run whose row such a process writes
    late, after an outage, counts from then on), and only their fires count."""

    def __init__(self, *, host: str, pid: int, live_within: timedelta):
        self._who = {"host": host, "pid": pid, "live_within": live_within}
        self._with_runs: frozenset[str] = frozenset()

    def refresh(self) -> None:
        self._with_runs = history.jobs_running_elsewhere(**self._who)

    def count(self, job_id: str) -> int:
        if job_id not in self._with_runs:
            return 0
        return history.running_elsewhere(job_id, **self._who)
