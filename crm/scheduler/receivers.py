"""What follows a run, connected in CrmConfig.ready(): the run-now command
that asked for it is finished, the job's alerts are checked, its ping URL is
pinged as it starts and ends, and it checks in with Sentry Crons when Sentry
is set up (crm.scheduler.sentry_crons)."""

import logging

from django.apps import apps
from django.db import DatabaseError
from django.dispatch import receiver

from crm.scheduler import alerts, commands, pings
from crm.scheduler.connections import drop_connection
from crm.scheduler.signals import job_finished, job_started, run_refused

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


@receiver(job_started, dispatch_uid="crm.scheduler.ping_start")
def ping_start(*, job_id, scheduled_at, **kwargs):
    pings.ping_run_started(job_id, scheduled_at)


@receiver(job_finished, dispatch_uid="crm.scheduler.ping_finish")
def ping_finish(*, job_id, status, duration, exception, **kwargs):
    pings.ping_run_finished(job_id, status, duration, exception)


@receiver(job_started, dispatch_uid="crm.scheduler.sentry_start")
def sentry_check_in_start(*, job_id, execution_id, **kwargs):
    _sentry_check_ins().started(job_id, execution_id)


@receiver(job_finished, dispatch_uid="crm.scheduler.sentry_finish")
def sentry_check_in_finish(*, job_id, execution_id, status, duration, **kwargs):
    _sentry_check_ins().finished(job_id, execution_id, status, duration)


def _sentry_check_ins():
    """This process's open check-ins (made in CrmConfig.ready())."""
    return apps.get_app_config("crm").sentry_check_ins


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
