from django.db import models


class SchedulerLease(models.Model):
    """Who may run jobs. One row per lease name; the holder renews it before
    `expires_at` (database time), and anyone may take it once that has passed."""

    name = models.CharField(primary_key=True, max_length=50)
    holder = models.CharField(max_length=200, blank=True, help_text="Empty when free.")
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    acquired_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "scheduler lease"

    def __str__(self):
        return f"{self.name}: {self.holder or 'free'}"


class JobAlert(models.Model):
    """When ADMINS were last mailed about a failing job (for the mail cooldown)."""

    job_id = models.CharField(primary_key=True, max_length=255)
    last_mailed_at = models.DateTimeField()

    def __str__(self):
        return f"{self.job_id}: mailed {self.last_mailed_at:%Y-%m-%d %H:%M}"
