from django.db import migrations

INDEX = "crm_execution_status_time_idx"
TABLE = "django_apscheduler_djangojobexecution"


def create(apps, schema_editor):
    schema_editor.execute(f"CREATE INDEX {INDEX} ON {TABLE} (status, run_time)")


def drop(apps, schema_editor):
    on_table = f" ON {TABLE}" if schema_editor.connection.vendor == "mysql" else ""
    schema_editor.execute(f"DROP INDEX {INDEX}{on_table}")


class Migration(migrations.Migration):
    """An index for the admin's status filter on run history, newest first.
    The table is django-apscheduler's, so the index is made here by hand."""

    atomic = False  # MySQL refuses DDL from RunPython inside a transaction
    dependencies = [
        ("crm", "0005_ticket_status_resolved_index"),
        ("django_apscheduler", "0009_djangojobexecution_unique_job_executions"),
    ]

    operations = [migrations.RunPython(create, drop)]
