"""The one module in crm/ that touches APScheduler's and django-apscheduler's private names.

The scheduler needs a few things neither library offers publicly (APScheduler
3.11, django-apscheduler 0.7): to wrap each pass over the due jobs and the end
of the scheduler's thread, to hand a job to its executor once, to write an
executor, and to change how the Django job store loads jobs. Each is done here,
once, behind a public name; every private use says why no public API does it.

Other modules subclass these three classes instead of the libraries' own, and
override only the public hooks they name. This module imports nothing from crm.

tests/scheduler/test_apscheduler_adapter.py fails, naming the attribute, if an upgrade
removes or changes one of the private names used here, and if any other module
in crm/ uses one. Check it first when upgrading either library.
"""

from abc import abstractmethod
from datetime import datetime
from threading import Event, RLock

from apscheduler.executors.base import BaseExecutor, MaxInstancesReachedError, run_job
from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from django_apscheduler.jobstores import DjangoJobStore


class HookedBackgroundScheduler(BackgroundScheduler):
    """APScheduler's BackgroundScheduler, with hooks to override under public names
    (`process_due_jobs`, `thread_ended`) and the few parts of its state we read."""

    def process_due_jobs(self) -> float | None:
        """One of APScheduler's passes over the due jobs: hands each to its
        executor and moves its next run time on. Returns the seconds to wait
        before the next pass (None: until woken). Override to wrap a pass."""
        return super()._process_jobs()  # the pass itself; APScheduler has no public one

    def thread_ended(self) -> None:
        """Called in the scheduler's own thread as it ends. Override."""

    @property
    def jobstores_lock(self) -> RLock:
        """The reentrant lock each pass, each job change and `shutdown` hold
        while they use the job stores."""
        return self._jobstores_lock  # no public API exposes it

    def job_stores(self) -> list[BaseJobStore]:
        return list(self._jobstores.values())  # no public API lists the job store instances

    def lookup_executor(self, alias: str) -> BaseExecutor:
        """Raises KeyError if there is no executor by that alias."""
        return self._lookup_executor(alias)  # no public API returns an executor instance

    def submit_once(self, job: Job, run_time: datetime, **kwargs) -> bool:
        """Hand `job` to its executor once, for `run_time`, without touching
        its schedule; `kwargs` go to the job's function. False if the job is
        running already (its max_instances)."""
        single = Job.__new__(Job)  # a copy, made the way a job store unpickles one
        single.__setstate__(job.__getstate__())
        # A Job's scheduler and store alias are set only by the scheduler and
        # its stores (no public setter); the executor names the alias in events.
        single._scheduler, single._jobstore_alias = self, job._jobstore_alias
        single.kwargs = kwargs
        single.misfire_grace_time = None
        try:
            self.lookup_executor(job.executor).submit_job(single, [run_time])
        except MaxInstancesReachedError:
            return False
        return True

    def _process_jobs(self):  # called by the thread once per pass; no public hook wraps a pass
        return self.process_due_jobs()

    def _main_loop(self):  # the scheduler thread's target; no public hook runs in it as it ends
        try:
            super()._main_loop()
        finally:
            self.thread_ended()


class HookedExecutor(BaseExecutor):
    """APScheduler's BaseExecutor for an executor that starts each run its own
    way: implement `start_run`, and have the run call `run_and_report`."""

    # How long `submit_job` waits for the run it started to begin.
    handoff_seconds = 0.1

    @abstractmethod
    def start_run(self, job: Job, run_times: list[datetime]) -> Event | None:
        """Start running `job` (for `run_times`) and return; the run calls
        `run_and_report(job, run_times)`. Called under the executor's lock
        once `max_instances` was checked. May return an event the run sets
        once it has begun, which `submit_job` then waits for (outside the
        lock, at most `handoff_seconds`): the caller's thread, the dispatch
        loop, holds back the rest of its pass until then, so that it does not
        keep the run waiting for the interpreter's lock."""

    def runs_elsewhere(self, job: Job) -> int:
        """How many runs of `job` go on outside this executor, counted against
        its max_instances with the runs going on here. Override."""
        return 0

    def submit_job(self, job: Job, run_times: list[datetime]) -> None:
        # BaseExecutor.submit_job, with runs elsewhere counted: it has no hook
        # for the check, and its lock and per-job count have no public names.
        with self._lock:
            if self._instances[job.id] + self.runs_elsewhere(job) >= job.max_instances:
                raise MaxInstancesReachedError(job)
            begun = self.start_run(job, run_times)
            self._instances[job.id] += 1
        if begun is not None:
            begun.wait(self.handoff_seconds)

    def run_and_report(self, job: Job, run_times: list[datetime]) -> None:
        """Run the job here and now, as APScheduler's own executors do: then
        count the instance as finished and dispatch the run's events (or log
        what escaped the job)."""
        try:
            # Job's store alias has no public reader; nor has the executor's logger.
            events = run_job(job, job._jobstore_alias, run_times, self._logger.name)
        except BaseException as error:
            # Only BaseExecutor's own method counts the instance done (and logs it).
            self._run_job_error(job.id, error, error.__traceback__)
        else:
            # Only BaseExecutor's own method counts it done and dispatches the events.
            self._run_job_success(job.id, events)

    def has_running_jobs(self) -> bool:
        """Whether any run submitted here has not yet reported its end."""
        return any(self._instances.values())  # BaseExecutor's count per job; no public reader

    def _do_submit_job(self, job, run_times):  # abstract in BaseExecutor; our submit_job skips it
        self.start_run(job, run_times)


class HookedDjangoJobStore(DjangoJobStore):
    """django-apscheduler's job store, with the one place every read loads its
    jobs (`load_jobs`: due jobs, all jobs) as a hook to override."""

    def load_jobs(self, **filters) -> list[Job]:
        """The stored jobs matching `filters` (DjangoJob fields). django-apscheduler's
        deletes a job it cannot load."""
        return super()._get_jobs(**filters)  # the loader itself; the public reads only call it

    def job_from_state(self, job_state: bytes) -> Job:
        """A stored job, unpickled and bound to this store and its scheduler."""
        return self._reconstitute_job(job_state)  # the only unpickler that binds the Job to both

    def _get_jobs(self, **filters):  # get_due_jobs and get_all_jobs load through it, and no hook
        return self.load_jobs(**filters)
