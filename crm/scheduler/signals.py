"""Signals sent around every scheduled run, in the process that runs it.

job_started: job_id, scheduled_at
job_finished: job_id, scheduled_at, status ("succeeded" or "failed"), duration
(seconds), exception (None on success), result (the function's return value)
"""

from django.dispatch import Signal

job_started = Signal()
job_finished = Signal()
