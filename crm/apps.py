from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "Helpdesk"
    default_auto_field = "django.db.models.BigAutoField"
    # What this process started (crm.scheduler.startup), if anything.
    scheduler_runner = None
    alert_watcher = None
    ping_sender = None  # crm.scheduler.pings: sends nothing until asked to
    sentry_check_ins = None  # crm.scheduler.sentry_crons: the runs' open check-ins

    def ready(self):
        # No database access here: the lease is taken in a background thread.
        from django.db.models.signals import post_migrate

        from crm import settings_checks  # noqa: F401  (registers the system checks)
        from crm.scheduler import (
            checks,  # noqa: F401  (registers the system checks)
            receivers,  # noqa: F401  (connects what follows a run)
        )
        from crm.scheduler.permissions import create_job_permissions
        from crm.scheduler.pings import PingSender
        from crm.scheduler.sentry_crons import SentryCheckIns
        from crm.scheduler.startup import start_if_wanted

        post_migrate.connect(create_job_permissions, sender=self)
        self.ping_sender = PingSender()  # before the scheduler: see its atexit
        self.sentry_check_ins = SentryCheckIns()

        start_if_wanted()
