"""What follows a run, connected in CrmConfig.ready(): the run-now command
that asked for it is finished, and the job's alerts are checked."""

import logging

from django.db import DatabaseError
from django.dispatch import receiver

from crm.scheduler import alerts, commands
from crm.scheduler.connections import drop_connection
from crm.scheduler.signals import job_finished, run_refused

logger = logging.getLogger("crm.scheduler")


@receiver(job_finished, dispatch_uid="crm.scheduler.finish_command")
def finish_command(*, command_id, execution_id, status, exception, **kwargs):
    _finish(command_id, execution_id, status, exception)


@receiver(run_refused, dispatch_uid="crm.scheduler.refuse_command")
def refuse_command(*, command_id, error, **kwargs):
    _finish(command_id, None, "failed", error)


@receiver(job_finished, dispatch_uid="crm.scheduler.check_alerts")
def check_alerts_after_run(*, job_id, **kwargs):
    alerts.check_safely([job_id])


def _finish(command_id, execution_id, status, error) -> None:
    if command_id is None:
        return
    try:
        commands.finish(command_id, execution_id, status, error)
    except DatabaseError as database_error:
        drop_connection()
        logger.warning(
            "scheduler could not mark run-now command %s finished: %s", command_id, database_error
        )
