from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "Helpdesk"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # No database access here: the lease is taken in a background thread.
        from crm.scheduler import checks  # noqa: F401  (registers the system checks)
        from crm.scheduler.startup import start_if_wanted

        start_if_wanted()
