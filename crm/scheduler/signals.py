"""Signals sent around every run, in the process that runs it: how a run tells
what happened, without knowing who listens (crm.scheduler.receivers).

job_started: job_id, scheduled_at, execution_id (its history row: the same for
each attempt of a retried fire)
job_finished: job_id, scheduled_at, status ("succeeded", "failed", or "retrying":
failed, and its fire waits for another attempt), duration
(seconds), exception (None on success), result (the function's return value),
execution_id (its history row), command_id (the run-now command, or None)
run_refused: job_id, command_id, error (why it was not run: the lease may
have passed on, or the job is no longer declared)
"""

from django.dispatch import Signal

job_started = Signal()
job_finished = Signal()
run_refused = Signal()
